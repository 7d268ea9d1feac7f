"""The trainer: buckets, exact frame sampling through the loader, loss falls, exact resume, precompute, EMA."""

from __future__ import annotations

import io
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import webdataset as wds

from shards.sampling import sample_frames
from train.buckets import assign_bucket, largest_size, token_count
from train.config import TrainConfig
from train.data import ClipBatches, StreamSpec, iterate_epoch
from train.decode import decode_frames
from train.optim import deepspeed_config

REPO = Path(__file__).resolve().parents[1]


def index_clip(num_frames: int, fps: float, width: int, height: int) -> bytes:
    """H.264 CFR clip whose frame k is grey level 5k (mod 250) with a bright square moving right."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "0", "g": str(max(1, round(fps)))}
        for k in range(num_frames):
            img = np.full((height, width, 3), (5 * k) % 250, dtype=np.uint8)
            x = (3 * k) % max(1, width - 8)
            img[2:10, x:x + 8] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


CLIPS = [  # (num_frames, fps, width, height)
    (40, 24.0, 96, 64),
    (60, 30.0, 64, 64),
    (25, 25.0, 128, 64),
    (13, 24.0, 64, 96),
    (8, 24.0, 64, 64),  # too short for N = 9: skipped
    (50, 12.0, 96, 64),
]


def write_index_shards(folder: Path, clips=CLIPS, per_shard: int = 3) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    urls = []
    for s in range(0, len(clips), per_shard):
        path = folder / f"shard-{s // per_shard:06d}.tar"
        with wds.TarWriter(str(path)) as tar:
            for i, (n, fps, w, h) in enumerate(clips[s:s + per_shard], start=s):
                key = f"clip{i:03d}"
                meta = {"clip_id": key, "num_frames": n, "fps": fps, "width": w, "height": h}
                tar.write({"__key__": key, "mp4": index_clip(n, fps, w, h), "json": json.dumps(meta).encode(),
                           "txt": f"The camera stays still while a white square slides to the right, clip {i}."})
        urls.append(str(path))
    return urls


@pytest.fixture(scope="module")
def index_shards(tmp_path_factory) -> list[str]:
    return write_index_shards(tmp_path_factory.mktemp("index_shards"))


def tiny_config(output: Path, **data) -> TrainConfig:
    config = TrainConfig.model_validate({
        "model": {"preset": "tiny"},
        "data": {"frame_counts": [9, 17], "token_budget": 48, "batch_size": 2, "num_workers": 0,
                 "shuffle_buffer": 4, "batches_per_epoch": 4, "latent_sample": False, **data},
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "train": {"max_steps": 6, "checkpoint_every": 100, "log_every": 1, "caption_dropout": 0.0,
                  "validation": {"at_end": False}},
        "output": str(output),
    })
    return config


# -- buckets ------------------------------------------------------------------------------------------------------
def test_token_budgets_of_the_two_phases() -> None:
    assert token_count(49, 512, 512) == 13_312 and token_count(85, 896, 896) == 68_992
    assert largest_size(1.0, 49, 13_312) == (512, 512)
    h, w = largest_size(16 / 9, 49, 13_312)
    assert token_count(49, h, w) <= 13_312 and h % 16 == 0 and w % 16 == 0 and 1.6 < w / h < 1.95


def test_bucket_never_upscales_and_takes_the_largest_frame_count() -> None:
    big = assign_bucket(200, 1920, 1080, [49, 85], 68_992)
    assert big.frames == 85 and big.tokens <= 68_992 and big.width > big.height
    assert assign_bucket(100, 1920, 1080, [49, 85], 68_992).frames == 49  # clip_n 80 < 85
    small = assign_bucket(100, 320, 240, [49], 13_312)
    assert small.height <= 240 and small.width <= 320 and small.height % 16 == 0
    assert assign_bucket(10, 640, 360, [49], 13_312) is None  # too short
    assert assign_bucket(60, 8, 8, [9], 48) is None  # smaller than one token


# -- loader -------------------------------------------------------------------------------------------------------
def test_decode_returns_exactly_the_sampled_frames(index_shards) -> None:
    data = index_clip(40, 24.0, 96, 64)
    sample = sample_frames(40, 24.0, 17)
    assert sample.indices == (4, 6, 8, 10, 12, 14, 16, 18, 20, 21, 23, 25, 27, 29, 31, 33, 35)
    assert sample.motion == pytest.approx(17 * 24.0 / 32)
    frames = decode_frames(data, sample.indices, 24.0, 48, 80)
    assert frames.shape == (17, 48, 80, 3)
    grey = frames[:, 40:, :, 0].astype(float).mean(axis=(1, 2))  # below the moving square
    assert np.abs(grey - 5 * np.array(sample.indices)).max() <= 2


def test_loader_batches_carry_the_right_frames_motion_and_bucket(index_shards) -> None:
    spec = StreamSpec(urls=index_shards, frame_counts=[9, 17], token_budget=48, batch_size=1, shuffle_buffer=1,
                      resampled=False)
    seen = {}
    for batch in ClipBatches(spec):
        key = batch["key"][0]
        n, fps, w, h = CLIPS[int(key[4:])]
        sample = sample_frames(n, fps, batch["video"].shape[1])
        seen[key] = batch["bucket"]
        assert batch["motion"][0].item() == pytest.approx(sample.motion)
        grey = batch["video"][0, :, -4:, :, 0].float().mean(dim=(1, 2)).numpy()
        assert np.abs(grey - 5 * np.array(sample.indices) % 250).max() <= 2, key
    assert "clip004" not in seen  # 8 frames: too short for N = 9
    assert seen["clip001"].startswith("N17-") and seen["clip003"] == "N9-48x32"  # 13 frames: window 11 -> N = 9; 2:3
    assert len(seen) == 5


def test_resampled_stream_is_reproducible_and_skips_consumed_batches(index_shards) -> None:
    spec = StreamSpec(urls=index_shards, frame_counts=[9], token_budget=48, batch_size=2, seed=7)

    def keys(dataset, n):
        out = []
        for batch in iterate_epoch(dataset, 0, n):
            out.append(tuple(batch["key"]))
        return out

    first, again = keys(ClipBatches(spec), 6), keys(ClipBatches(spec), 6)
    assert first == again and len(set(first)) > 1
    resumed = ClipBatches(spec)
    resumed.cursor.consumed = [4]
    assert keys(resumed, 6) == first[4:]
    other_rank = ClipBatches(spec, rank=1, world_size=2)
    assert keys(other_rank, 6) != first


# -- DeepSpeed config ---------------------------------------------------------------------------------------------
def test_deepspeed_config_takes_our_optimizer_and_refuses_torch_adam_with_offload(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    ds = deepspeed_config(config, torch.device("cpu"))
    assert ds["optimizer"]["params"]["torch_adam"] is True and ds["optimizer"]["params"]["eps"] == 1e-10
    assert ds["zero_optimization"]["stage"] == 2 and ds["bf16"]["enabled"]
    assert ds["train_micro_batch_size_per_gpu"] == 2
    five_b = TrainConfig()
    assert (five_b.optim.lr, five_b.optim.weight_decay, five_b.optim.eps) == (2e-5, 3e-2, 1e-10)
    offload = tmp_path / "offload.json"
    raw = json.loads((REPO / "configs" / "deepspeed-zero2-offload.json").read_text())
    assert "torch_adam" not in deepspeed_config(config.model_copy(update={"deepspeed": str(
        REPO / "configs" / "deepspeed-zero2-offload.json")}), torch.device("cpu"))["optimizer"]["params"]
    raw["optimizer"]["params"]["torch_adam"] = True
    offload.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="CPU Adam"):
        deepspeed_config(config.model_copy(update={"deepspeed": str(offload)}), torch.device("cpu"))


# -- training -----------------------------------------------------------------------------------------------------
def test_loss_falls_on_a_tiny_overfit_set(tmp_path: Path) -> None:
    from train.run import run_training

    urls = write_index_shards(tmp_path / "shards", clips=[(40, 24.0, 64, 64), (40, 24.0, 64, 64)], per_shard=2)
    config = tiny_config(tmp_path / "run", frame_counts=[9])
    config.optim.lr = 3e-3
    config.train.max_steps = 60
    losses = run_training(config, urls, progress=False).losses
    assert len(losses) == 60 and all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:10]), losses  # measured: 0.48 -> 0.16


def test_resume_continues_exactly(tmp_path: Path, index_shards) -> None:
    """Steps 4..6 after a stop at step 3 equal those of an uninterrupted run (2 loader workers, an epoch boundary
    inside the resumed steps)."""
    from train.run import run_training

    full = run_training(tiny_config(tmp_path / "full", num_workers=2), index_shards, progress=False).losses
    first = run_training(tiny_config(tmp_path / "split", num_workers=2), index_shards, max_steps=3,
                         progress=False).losses
    rest = run_training(tiny_config(tmp_path / "split", num_workers=2), index_shards, resume=True,
                        progress=False)
    assert rest.resumed_from == 3 and [s.step for s in rest.steps] == [4, 5, 6]
    assert first + rest.losses == full
    assert (tmp_path / "split" / "checkpoints" / "step-00000006" / "trainer_state_rank00000.pt").exists()
    assert (tmp_path / "split" / "pipeline" / "model_index.json").exists()
