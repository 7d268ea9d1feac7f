"""The trainer: buckets, exact frame sampling through the loader, loss falls, exact resume, precompute, EMA."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from conftest import run_droplet

from droplet.sample_data.encode import H264Writer
from shards.sampling import sample_frames
from train.buckets import assign_bucket, largest_size, token_count
from train.config import TrainConfig
from train.data import ClipBatches, StreamSpec, iterate_epoch
from train.decode import decode_frames
from train.optim import deepspeed_config

REPO = Path(__file__).resolve().parents[1]


def index_clip(num_frames: int, fps: float, width: int, height: int) -> bytes:
    """H.264 CFR clip whose frame k is grey level 5k (mod 250) with a bright square moving right."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        with H264Writer(path, width, height, int(fps), crf=0, gop=max(1, round(fps))) as writer:
            for k in range(num_frames):
                img = np.full((height, width, 3), (5 * k) % 250, dtype=np.uint8)
                x = (3 * k) % max(1, width - 8)
                img[2:10, x:x + 8] = 255
                writer.write(img)
        return path.read_bytes()


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


PROCESS_GROUP_ENV = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")


@pytest.fixture(autouse=True)
def one_process_group_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher variables of a one-process group (what `init_distributed` would set, and DeepSpeed reads even
    when the group of an earlier test is still up), set through monkeypatch: undone after each test. So is the
    DeepSpeed op folder that in-process training sets."""
    from conftest import free_ports

    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": str(free_ports(1)[0])}.items():
        monkeypatch.setenv(name, value)
    if "TORCH_EXTENSIONS_DIR" not in os.environ:
        monkeypatch.setenv("TORCH_EXTENSIONS_DIR", "")  # records "unset" for the undo
        monkeypatch.delenv("TORCH_EXTENSIONS_DIR")


@pytest.fixture
def no_launcher_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """For subprocesses that make their own process group: none of the launcher variables."""
    for name in PROCESS_GROUP_ENV:
        monkeypatch.delenv(name, raising=False)


def tiny_config(output: Path, changes: dict | None = None, **data) -> TrainConfig:
    """The tiny model's test config; `changes` by dotted key ({"optim.lr": 3e-3}), `data` into the data section."""
    config = TrainConfig.model_validate({
        "model": {"preset": "tiny"},
        "data": {"frame_counts": [9, 17], "token_budget": 48, "batch_size": 2, "num_workers": 0,
                 "shuffle_buffer": 4, "batches_per_epoch": 4, "latent_sample": False, **data},
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "train": {"max_steps": 6, "checkpoint_every": 100, "log_every": 1, "caption_dropout": 0.0,
                  "validation": {"at_end": False}},
        "output": str(output),
    })
    return config.updated(changes or {})


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
    config = tiny_config(tmp_path / "run", {"optim.lr": 3e-3, "train.max_steps": 60}, frame_counts=[9])
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


def test_image_to_video_training_and_ema_export(tmp_path: Path, index_shards) -> None:
    """The 33-channel layout trains through the shared conditioning function; the EMA is what gets exported."""
    from safetensors.torch import load_file

    from train.run import run_training

    config = tiny_config(tmp_path / "run", {
        "model.image_to_video": True, "model.gradient_checkpointing": True, "train.text_to_video_share": 0.5,
        "train.ema.enabled": True, "train.ema.decay": 0.5, "train.max_steps": 3})
    summary = run_training(config, index_shards, progress=False)
    assert len(summary.losses) == 3 and all(np.isfinite(summary.losses))
    exported = load_file(tmp_path / "run" / "pipeline" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert exported["patch_embed.proj.weight"].shape[1] == 33
    state = torch.load(tmp_path / "run" / "checkpoints" / "step-00000003" / "trainer_state_rank00000.pt",
                       weights_only=False)
    ema = state["ema"]["shadow"]["proj_out.weight"]
    assert torch.equal(exported["proj_out.weight"].float(), ema.float().to(exported["proj_out.weight"].dtype).float())
    assert json.loads((tmp_path / "run" / "pipeline" / "training.json").read_text()) == {"step": 3, "ema": True}


def test_sharded_ema_follows_the_formula() -> None:
    from train.ema import ShardedEMA

    layer = torch.nn.Linear(3, 2)
    ema = ShardedEMA(layer, decay=0.9)
    start = layer.weight.detach().clone()
    with torch.no_grad():
        layer.weight.add_(1.0)
    ema.update()
    assert torch.allclose(ema.shadow["weight"], start + 0.1)
    assert torch.allclose(ema.full_state_dict()["weight"], start + 0.1)


@pytest.fixture(scope="module")
def latent_folder(tmp_path_factory, index_shards) -> tuple[Path, dict]:
    """`droplet precompute` of the index shards with the tiny model (N = 9): the folder and its manifest."""
    from train.precompute import precompute

    folder = tmp_path_factory.mktemp("latents")
    config = tiny_config(folder / "unused", frame_counts=[9])
    return folder, precompute(config, index_shards, folder, progress=False)


def test_precompute_then_train_from_latent_shards(tmp_path: Path, latent_folder) -> None:
    from safetensors.torch import load

    from model.tiny import build_tiny_pipeline
    from model.vae import encode_pixels, video_to_pixels
    from train.run import run_training

    config = tiny_config(tmp_path / "run", frame_counts=[9])
    folder, manifest = latent_folder
    assert manifest["kind"] == "precomputed" and manifest["skipped"] == {"too_short": 1}
    assert sum(s["samples"] for s in manifest["shards"]) == 5
    assert all(s["name"].startswith(f"latents-{s['bucket']}-") for s in manifest["shards"])
    pipe = build_tiny_pipeline(seed=config.train.seed)
    pipe.text.max_length = config.model.text_length  # captions are encoded to 400 tokens, not the preset's 32
    sample = next(iter(wds.WebDataset(str(folder / manifest["shards"][0]["name"]), shardshuffle=False)))
    meta, tensors = json.loads(sample["json"]), load(sample["safetensors"])
    n, fps, w, h = CLIPS[int(meta["clip_id"][4:])]
    b = meta["bucket"]
    frames = decode_frames(index_clip(n, fps, w, h), meta["indices"], fps, b["height"], b["width"])
    expected = encode_pixels(pipe.vae, video_to_pixels(torch.from_numpy(frames)))[0]
    assert torch.allclose(tensors["latents"].float(), expected, atol=0.02)
    assert torch.allclose(tensors["text"].float(), pipe.text.encode([meta["caption"]])[0], atol=0.02)
    assert meta["motion"] == pytest.approx(sample_frames(n, fps, 9).motion)
    summary = run_training(config, str(folder), max_steps=3, progress=False)
    assert len(summary.losses) == 3 and all(np.isfinite(summary.losses))
    assert not config.data.precomputed  # the caller's config is never changed; the run records the data kind
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["data"]["precomputed"] is True


def test_the_data_kind_is_decided_once_from_the_data_and_the_config(tmp_path: Path, index_shards,
                                                                     latent_folder) -> None:
    from pydantic import ValidationError

    from train.setup import RunError, plan_run

    config = tiny_config(tmp_path / "run")
    folder, manifest = latent_folder
    latents = plan_run(config, str(folder), output=str(tmp_path / "other"))
    assert latents.data.kind == "latents" and len(latents.data.urls) == len(manifest["shards"])
    assert latents.config.data.precomputed and latents.config.output == str(tmp_path / "other")
    assert not config.data.precomputed and config.output == str(tmp_path / "run")
    named = plan_run(config, [str(folder / s["name"]) for s in manifest["shards"]])
    assert named.data.kind == "latents" and named.config.output == config.output
    pixels = plan_run(config, index_shards)
    assert pixels.data.kind == "pixels" and not pixels.config.data.precomputed
    assert plan_run(config.updated({"data.precomputed": True}), index_shards).data.kind == "latents"
    with pytest.raises(RunError, match="mixes"):
        plan_run(config, [str(folder), *index_shards])
    with pytest.raises(ValidationError, match="frozen"):
        config.output = "elsewhere"
    with pytest.raises(ValidationError, match="frozen"):
        config.train.validation.at_end = True
    with pytest.raises(KeyError, match="train.nope"):
        config.updated({"train.nope": 1})


def test_latent_batches_get_the_same_image_to_video_channels_as_pixel_batches(tmp_path: Path,
                                                                                index_shards) -> None:
    """Both data kinds build the inpaint channels through `inpaint_conditioning` (precomputed: the stored
    first-frame reference latents instead of the pixels)."""
    from model.conditioning import first_frame_mask, inpaint_conditioning
    from model.vae import encode_pixels, video_to_pixels
    from train.components import build_components
    from train.encode import BatchEncoder

    config = tiny_config(tmp_path, {"model.image_to_video": True, "train.reference_noise.enabled": False,
                                    "train.text_to_video_share": 0.5}, frame_counts=[9])
    parts = build_components(config, torch.device("cpu"))
    spec = StreamSpec(urls=index_shards, frame_counts=[9], token_budget=48, batch_size=2, shuffle_buffer=1,
                      resampled=False)
    batch = next(iter(ClipBatches(spec)))
    pixels = video_to_pixels(batch["video"])
    latents = encode_pixels(parts.vae, pixels)
    reference = inpaint_conditioning(parts.vae, pixels, first_frame_mask(2, 9), tuple(latents.shape))[:, :, 1:]
    stored = {"latents": latents, "text": parts.text.encode(batch["caption"]), "reference": reference,
              "motion": batch["motion"]}
    from_pixels = BatchEncoder("pixels", parts, config, torch.device("cpu"))(batch, torch.Generator().manual_seed(5))
    from_latents = BatchEncoder("latents", parts, config, torch.device("cpu"))(stored,
                                                                              torch.Generator().manual_seed(5))
    given = from_pixels.conditioning[:, 0, 0, 0, 0] != 0
    assert int(given.sum()) == 1  # a mixed batch: image-to-video and text-to-video rows
    assert torch.allclose(from_pixels.latents, from_latents.latents)
    assert torch.allclose(from_pixels.conditioning, from_latents.conditioning, atol=1e-5)
    with pytest.raises(ValueError, match="reference latents"):
        BatchEncoder("latents", parts, config, torch.device("cpu"))(
            {k: v for k, v in stored.items() if k != "reference"}, torch.Generator())


def test_an_epoch_without_a_trainable_batch_stops_training(tmp_path: Path, latent_folder) -> None:
    """Latent shards read as clips (the old `train.ray_launch` bug): every batch fails to decode; `fit` stops."""
    from train.setup import TrainData
    from train.trainer import EmptyEpochError, Trainer

    folder, manifest = latent_folder
    urls = tuple(str(folder / s["name"]) for s in manifest["shards"])
    trainer = Trainer(tiny_config(tmp_path / "run", frame_counts=[9]), TrainData(urls, "pixels"), tmp_path / "run")
    with pytest.raises(EmptyEpochError, match="no trainable batch"):
        trainer.fit(max_steps=2, progress=False)
    assert trainer.step == 0 and trainer.data.cursor.epoch == 0


def test_droplet_train_cli_refuses_an_existing_run_and_a_changed_config(tmp_path: Path, index_shards,
                                                                       no_launcher_env) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text((REPO / "configs" / "train-tiny.yaml").read_text())
    base = ["train", "--config", str(config), "--data", *index_shards, "--output", str(tmp_path / "run"),
            "--no-progress"]
    first = run_droplet([*base, "--max-steps", "2"])
    assert first.returncode == 0, first.stderr[-3000:]
    assert "trained steps 1..2" in first.stdout and (tmp_path / "run" / "pipeline" / "model_index.json").exists()
    again = run_droplet([*base, "--max-steps", "3"])
    assert again.returncode == 2 and "--resume" in again.stderr
    config.write_text(config.read_text().replace("lr: 1.0e-3", "lr: 5.0e-4"))
    changed = run_droplet([*base, "--max-steps", "3", "--resume"])
    assert changed.returncode == 2 and "optim.lr" in changed.stderr
    bad = run_droplet(["train", "--config", str(config), "--data", str(tmp_path / "nothing")])
    assert bad.returncode == 2 and "no such file" in bad.stderr
    sample = run_droplet(["sample", "--checkpoint", str(tmp_path / "run" / "pipeline"), "--prompt", "A pan.",
                          "--steps", "2", "--out", str(tmp_path / "x.mp4")])
    assert sample.returncode == 0 and (tmp_path / "x.mp4").stat().st_size > 0


@pytest.mark.slow
def test_ray_train_launcher_two_workers_stops_and_resumes(tmp_path: Path, latent_folder, ray_head: dict) -> None:
    """2 CPU workers (gloo, ZeRO-2) on the test run's head at 127.0.0.1: run to step 2, launch again to step 4.
    The data are a `droplet precompute` folder and the config does not say `data.precomputed`: the launcher finds
    the kind itself (it used to read the latents as clips and loop over empty epochs forever)."""
    import math
    import re
    import subprocess

    from conftest import PYTHON

    env = {k: v for k, v in ray_head["env"].items() if k not in PROCESS_GROUP_ENV}
    assert "precomputed" not in (REPO / "configs" / "train-tiny.yaml").read_text()

    def launch(steps: int) -> subprocess.CompletedProcess:
        run = subprocess.run(
            [PYTHON, "-m", "train.ray_launch", "--config", str(REPO / "configs" / "train-tiny.yaml"),
             "--data", str(latent_folder[0]), "--name", "tiny", "--storage-path", str(tmp_path / "store"),
             "--num-workers", "2", "--max-steps", str(steps), "--address", ray_head["address"]],
            capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        loss = re.search(r"last metrics \{.*'loss': ([^,}]+)", run.stdout)
        assert loss and math.isfinite(float(loss.group(1))), run.stdout[-3000:]
        return run

    launch(2)
    checkpoints = sorted(p for p in (tmp_path / "store" / "tiny").glob("checkpoint_*") if p.is_dir())
    assert len(checkpoints) == 1
    files = {p.name for p in checkpoints[0].iterdir()}
    assert {"trainer_state_rank00000.pt", "trainer_state_rank00001.pt", "mp_rank_00_model_states.pt",
            "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt", "bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt",
            "pipeline"} <= files
    second = launch(4)
    log = second.stdout + second.stderr
    assert "rank 0 resumed at step 2" in log and "rank 1 resumed at step 2" in log
    last = sorted(p for p in (tmp_path / "store" / "tiny").glob("checkpoint_*") if p.is_dir())[-1]
    state = torch.load(last / "trainer_state_rank00001.pt", weights_only=False)
    assert state["step"] == 4 and (last / "pipeline" / "model_index.json").exists()


def test_a_batch_whose_clips_all_fail_to_decode_still_moves_the_cursor(tmp_path: Path) -> None:
    """With batch size 1, a broken clip yields no batch; a resume from the cursor continues exactly."""
    import copy

    from train.data import Cursor

    urls = write_index_shards(tmp_path / "good", clips=CLIPS[:3], per_shard=3)
    broken = tmp_path / "good" / "shard-000009.tar"
    with wds.TarWriter(str(broken)) as tar:
        meta = {"clip_id": "clip009", "num_frames": 40, "fps": 24.0, "width": 64, "height": 64}
        tar.write({"__key__": "clip009", "mp4": b"not a video", "json": json.dumps(meta).encode(), "txt": "x"})
    spec = StreamSpec(urls=[*urls, str(broken)], frame_counts=[9], token_budget=48, batch_size=1, seed=3,
                      shuffle_buffer=2)
    full = [b["key"][0] for b in iterate_epoch(ClipBatches(spec), 0, 12)]
    first = ClipBatches(spec)
    head = []
    for batch in iterate_epoch(first, 0, 12):
        head.append(batch["key"][0])
        if len(head) == 4:
            break
    assert sum(first.cursor.consumed) > 4  # a broken clip was drawn and counted
    resumed = ClipBatches(spec)
    resumed.cursor = Cursor(**copy.deepcopy(vars(first.cursor)))
    assert head + [b["key"][0] for b in iterate_epoch(resumed, 0, 12)] == full


def test_gradient_accumulation_counts_optimizer_steps(tmp_path: Path, index_shards) -> None:
    from train.run import run_training

    config = tiny_config(tmp_path / "run", {"train.gradient_accumulation": 2, "train.ema.enabled": True},
                         frame_counts=[9])
    summary = run_training(config, index_shards, max_steps=3, progress=False)
    assert [s.step for s in summary.steps] == [1, 2, 3] and all(s.samples == 4 for s in summary.steps)
    state = torch.load(tmp_path / "run" / "checkpoints" / "step-00000003" / "trainer_state_rank00000.pt",
                       weights_only=False)
    assert state["step"] == 3 and sum(state["cursor"]["consumed"]) + 4 * state["cursor"]["epoch"] == 6


# -- the recipe (CogVideoX-Fun / DropletVideo defaults) and the generative side -------------------------------------
def binomial_ok(hits: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    """`hits` of `n` draws with probability `p`, within `sigmas` binomial standard deviations."""
    return abs(hits / n - p) <= sigmas * (p * (1 - p) / n) ** 0.5


def test_the_recipe_defaults_are_the_cited_ones(tmp_path: Path) -> None:
    from runtime.config import load_config

    defaults = TrainConfig()
    assert defaults.model.text_length == 400  # the paper; the released inference.py's max_sequence_length
    assert defaults.optim.grad_clip == 0.05  # CogVideoX-Fun scripts/train.sh --max_grad_norm
    assert (defaults.optim.lr, defaults.optim.warmup_steps) == (2e-5, 100)  # train.sh
    assert defaults.train.text_to_video_share == 0.3  # CogVideoX-Fun V1.1 get_random_mask
    noise = defaults.train.reference_noise
    assert (noise.enabled, noise.log_mean, noise.log_std) == (True, -3.0, 0.5)  # add_noise_to_reference_video
    assert deepspeed_config(defaults, torch.device("cpu"))["gradient_clipping"] == 0.05
    five_b = load_config(REPO / "configs" / "train-5b.yaml", TrainConfig)
    assert (five_b.model.text_length, five_b.optim.grad_clip, five_b.train.text_to_video_share) == (400, 0.05, 0.3)
    assert five_b.train.reference_noise == noise


def test_reference_noise_goes_on_the_given_pixels_with_one_sigma_per_sample() -> None:
    """`inpaint_conditioning` adds sigma_i x N(0, 1) to sample i's given frames before the VAE sees them (a VAE
    that records its input shows it); a scalar sigma still works as before."""
    from types import SimpleNamespace

    from model.conditioning import first_frame_mask, inpaint_conditioning

    class RecordingVAE:
        dtype = torch.float32
        config = SimpleNamespace(scaling_factor=0.7)

        def encode(self, pixels):
            self.seen = pixels.clone()
            b, _, f, h, w = pixels.shape
            zeros = torch.zeros(b, 16, (f - 1) // 4 + 1, h // 8, w // 8)
            return SimpleNamespace(latent_dist=SimpleNamespace(mode=lambda: zeros))

    vae, pixels = RecordingVAE(), torch.rand(2, 3, 9, 64, 64) * 1.6 - 0.8
    shape = (2, 3, 16, 8, 8)
    sigma = torch.tensor([0.01, 0.1])
    inpaint_conditioning(vae, pixels, first_frame_mask(2, 9), shape, sigma, generator=torch.Generator().manual_seed(0))
    added = vae.seen[:, :, 0] - pixels[:, :, 0]
    assert added.flatten(1).std(dim=1).tolist() == pytest.approx(sigma.tolist(), rel=0.03)
    assert abs(float(added.mean())) < 1e-3 and torch.all(vae.seen[:, :, 1:] == -1)  # generated frames: -1, no noise
    inpaint_conditioning(vae, pixels, first_frame_mask(2, 9), shape, 0.05, generator=torch.Generator().manual_seed(0))
    assert float((vae.seen[:, :, 0] - pixels[:, :, 0]).std()) == pytest.approx(0.05, rel=0.03)
    inpaint_conditioning(vae, pixels, first_frame_mask(2, 9), shape)
    assert torch.equal(vae.seen[:, :, 0], pixels[:, :, 0])
    with pytest.raises(ValueError, match="one per sample"):
        inpaint_conditioning(vae, pixels, first_frame_mask(2, 9), shape, torch.ones(3))


def test_training_draws_the_mode_mix_and_log_normal_reference_noise(tmp_path: Path, index_shards) -> None:
    """Over many samples: a share 0.3 is text-to-video (within a binomial tolerance) and the image-to-video
    samples' sigmas have log-mean -3 and log-sd 0.5 (CogVideoX-Fun's exp(N(-3, 0.5))). A real batch carries
    its draws: text-to-video rows get zero channels, the others the first frame."""
    from train.components import build_components
    from train.encode import BatchEncoder

    config = tiny_config(tmp_path, {"model.image_to_video": True}, frame_counts=[9])
    parts = build_components(config, torch.device("cpu"))
    encoder = BatchEncoder("pixels", parts, config, torch.device("cpu"))
    n = 40_000
    draws = encoder.draw(n, torch.Generator().manual_seed(0))
    t2v = draws.text_to_video
    assert binomial_ok(int(t2v.sum()), n, 0.3), float(t2v.float().mean())
    assert torch.all(draws.sigma[t2v] == 0)
    log_sigma = draws.sigma[~t2v].log()
    assert float(log_sigma.mean()) == pytest.approx(-3.0, abs=0.02)  # standard error 0.003
    assert float(log_sigma.std()) == pytest.approx(0.5, abs=0.02)
    half = BatchEncoder("pixels", parts, config.updated({"train.text_to_video_share": 0.9}), torch.device("cpu"))
    assert binomial_ok(int(half.draw(n, torch.Generator().manual_seed(1)).text_to_video.sum()), n, 0.9)

    spec = StreamSpec(urls=index_shards, frame_counts=[9], token_budget=48, batch_size=2, shuffle_buffer=1,
                      resampled=False)
    batch = next(iter(ClipBatches(spec)))
    seen = set()
    for seed in range(6):
        encoded = encoder(batch, torch.Generator().manual_seed(seed))
        for row in range(2):
            cond, text_to_video = encoded.conditioning[row], bool(encoded.text_to_video[row])
            seen.add(text_to_video)
            if text_to_video:
                assert torch.count_nonzero(cond) == 0 and encoded.reference_sigma[row] == 0
            else:
                assert torch.allclose(cond[0, 0], torch.tensor(0.7)) and torch.all(cond[1:, 0] == 0)
                assert 0 < encoded.reference_sigma[row] < 1
    assert seen == {True, False}


def test_the_loss_target_is_the_closed_form_velocity(tmp_path: Path, index_shards) -> None:
    """v = sqrt(a_t) noise - sqrt(1 - a_t) x0 and x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise with a_t the
    scheduler's alphas_cumprod; at the last timestep (zero terminal SNR) v = -x0 and x_t = noise exactly. The
    trainer's step inputs are built this way."""
    from model.scheduler import make_scheduler
    from train.objective import noisy_and_target
    from train.setup import TrainData
    from train.trainer import Trainer

    scheduler = make_scheduler()
    x0 = torch.arange(24, dtype=torch.float32).reshape(3, 1, 2, 2, 2) / 10 - 1
    noise = torch.linspace(-2, 2, 24).reshape(3, 1, 2, 2, 2)
    t = torch.tensor([0, 500, 999])
    noisy, target = noisy_and_target(scheduler, x0, noise, t)
    a = scheduler.alphas_cumprod[t].float().reshape(3, 1, 1, 1, 1)
    assert float(a[2]) == 0.0 and 0 < float(a[1]) < float(a[0]) < 1
    assert torch.allclose(target, a.sqrt() * noise - (1 - a).sqrt() * x0, atol=1e-6)
    assert torch.allclose(noisy, a.sqrt() * x0 + (1 - a).sqrt() * noise, atol=1e-6)
    assert torch.allclose(target[2], -x0[2]) and torch.allclose(noisy[2], noise[2])

    config = tiny_config(tmp_path / "run", {"model.image_to_video": True}, frame_counts=[9])
    trainer = Trainer(config, TrainData(tuple(index_shards), "pixels"), tmp_path / "run")
    spec = StreamSpec(urls=index_shards, frame_counts=[9], token_budget=48, batch_size=2, shuffle_buffer=1,
                      resampled=False)
    x = trainer.prepare(next(iter(ClipBatches(spec))))
    a = trainer.parts.scheduler.alphas_cumprod[x.timesteps].float().reshape(-1, 1, 1, 1, 1)
    assert torch.allclose(x.target, a.sqrt() * x.noise - (1 - a).sqrt() * x.latents, atol=1e-5)
    assert torch.allclose(x.model_input[:, :, :16], a.sqrt() * x.latents + (1 - a).sqrt() * x.noise, atol=1e-5)
    assert x.model_input.shape[2] == 33 and x.text.shape[1] == 400


def test_caption_and_motion_dropout_rates_and_what_they_drop() -> None:
    from train.objective import dropout_masks, step_inputs

    n = 40_000
    captions, motions = dropout_masks(n, torch.Generator().manual_seed(0), 0.1, 0.25)
    assert binomial_ok(int(captions.sum()), n, 0.1) and binomial_ok(int(motions.sum()), n, 0.25)
    assert binomial_ok(int((captions & motions).sum()), n, 0.025)  # independent draws
    none, _ = dropout_masks(n, torch.Generator(), 0.0, 1.0)
    assert not none.any()

    from model.scheduler import make_scheduler

    text, empty = torch.randn(64, 5, 4), torch.full((1, 5, 4), 7.0)
    x = step_inputs(make_scheduler(), torch.randn(64, 2, 16, 2, 2), text, None, torch.full((64,), 8.0),
                    lambda k: empty.expand(k, -1, -1), torch.Generator().manual_seed(3), 0.5, 0.5)
    assert 0 < int(x.caption_dropped.sum()) < 64 and 0 < int(x.motion_dropped.sum()) < 64
    assert torch.all(x.text[x.caption_dropped] == 7.0) and torch.equal(x.text[~x.caption_dropped],
                                                                       text[~x.caption_dropped])
    assert torch.all(x.motion[x.motion_dropped] == 0) and torch.all(x.motion[~x.motion_dropped] == 8.0)


def test_gradients_reach_both_motion_layers(tmp_path: Path, index_shards) -> None:
    """The training loss reaches fps_embedding.linear_1 and linear_2; with linear_2 zero (how weights without
    the motion keys load) linear_2 learns first and linear_1 follows once linear_2 has moved."""
    from train.components import build_components
    from train.encode import BatchEncoder
    from train.objective import step_inputs

    config = tiny_config(tmp_path, {"model.image_to_video": True}, frame_counts=[9])
    parts = build_components(config, torch.device("cpu"))
    encoder = BatchEncoder("pixels", parts, config, torch.device("cpu"))
    spec = StreamSpec(urls=index_shards, frame_counts=[9], token_budget=48, batch_size=2, shuffle_buffer=1,
                      resampled=False)
    batch = next(iter(ClipBatches(spec)))
    model = parts.transformer
    motion = model.fps_embedding

    def grads() -> tuple[float, float]:
        model.zero_grad()
        encoded = encoder(batch, torch.Generator().manual_seed(0))
        x = step_inputs(parts.scheduler, encoded.latents, encoded.text, encoded.conditioning, batch["motion"],
                        parts.text.empty, torch.Generator().manual_seed(1), 0.0, 0.0)
        pred = model(x.model_input, x.text, x.timesteps, motion=x.motion, return_dict=False)[0]
        torch.nn.functional.mse_loss(pred, x.target).backward()
        return float(motion.linear_1.weight.grad.norm()), float(motion.linear_2.weight.grad.norm())

    first, second = grads()
    assert first > 0 and second > 0
    with torch.no_grad():
        motion.linear_2.weight.zero_()
        motion.linear_2.bias.zero_()
    first, second = grads()
    assert first == 0 and second > 0
    with torch.no_grad():
        motion.linear_2.weight.sub_(1e-2 * motion.linear_2.weight.grad.sign())  # one step on linear_2
    first, second = grads()
    assert first > 0 and second > 0


def test_gradient_clipping_bounds_the_norm_the_optimizer_applies(tmp_path: Path, index_shards) -> None:
    """DeepSpeed clips to optim.grad_clip (0.05) before AdamW steps: the gradient the optimizer sees has norm
    0.05 when the step's norm was larger; without clipping it keeps its norm."""
    from train.setup import TrainData
    from train.trainer import Trainer

    spec = StreamSpec(urls=index_shards, frame_counts=[9], token_budget=48, batch_size=2, shuffle_buffer=1,
                      resampled=False)
    batch = next(iter(ClipBatches(spec)))
    applied = {}
    for clip in (0.05, 0.0):
        trainer = Trainer(tiny_config(tmp_path / f"run{clip}", {"optim.grad_clip": clip}, frame_counts=[9]),
                          TrainData(tuple(index_shards), "pixels"), tmp_path / f"run{clip}")
        norms = []

        def before_step(optimizer, args, kwargs, norms=norms) -> None:
            squares = [p.grad.double().pow(2).sum() for g in optimizer.param_groups for p in g["params"]
                       if p.grad is not None]
            norms.append(float(torch.stack(squares).sum().sqrt()))

        # the torch AdamW inside DeepSpeed's ZeRO optimizer: its fp32 partitions hold the clipped gradient
        trainer.engine.optimizer.optimizer.register_step_pre_hook(before_step)
        result = trainer.train_step([batch])
        applied[clip] = (result.grad_norm, sum(n * n for n in norms) ** 0.5)
    (pre, post), (pre_unclipped, post_unclipped) = applied[0.05], applied[0.0]
    assert pre == pytest.approx(pre_unclipped, rel=1e-3) and pre > 0.05  # the same step, before clipping
    assert post == pytest.approx(0.05, rel=1e-3)
    assert post_unclipped == pytest.approx(pre, rel=1e-3)


def test_training_starts_from_a_pretrained_folder_at_400_text_tokens(tmp_path: Path, index_shards) -> None:
    """A `droplet init-model` folder (its transformer config says 32 text tokens): the run starts from its
    weights, encodes captions to model.text_length (400), and the exported pipeline records 400."""
    from safetensors.torch import load_file

    from model.pipeline import DropletVideoPipeline
    from model.tiny import write_tiny_pipeline
    from train.components import build_components
    from train.run import run_training

    folder = write_tiny_pipeline(tmp_path / "ckpt", seed=5, in_channels=33)
    assert json.loads((folder / "transformer" / "config.json").read_text())["max_text_seq_length"] == 32
    config = tiny_config(tmp_path / "run", {"model.pretrained": str(folder)}, frame_counts=[9])
    parts = build_components(config, torch.device("cpu"))
    stored = load_file(folder / "transformer" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(p, stored[name]) for name, p in parts.transformer.state_dict().items())
    assert parts.inpaint and parts.text.encode(["a pan"]).shape == (1, 400, 32)
    assert parts.text.empty().shape == (1, 400, 32)
    kept = build_components(config.updated({"model.text_length": None}), torch.device("cpu"))
    assert kept.text.encode(["a pan"]).shape == (1, 32, 32)

    summary = run_training(config, index_shards, max_steps=2, progress=False)
    assert len(summary.losses) == 2 and all(np.isfinite(summary.losses))
    exported = Path(summary.pipeline)
    assert json.loads((exported / "transformer" / "config.json").read_text())["max_text_seq_length"] == 400
    assert DropletVideoPipeline.from_pretrained(exported).text.encode(["a pan"]).shape == (1, 400, 32)


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory, index_shards) -> tuple[Path, list]:
    """One short image-to-video run with the default text-to-video share: warmup 3, 4 steps, a checkpoint every step
    (keep 2), validation every 2 steps and at the end, MFU against a stated peak."""
    from conftest import free_ports

    from train.run import run_training

    output = tmp_path_factory.mktemp("recipe") / "run"
    config = tiny_config(output, {"model.image_to_video": True, "optim.warmup_steps": 3, "train.max_steps": 4,
                                  "train.checkpoint_every": 1, "train.keep_checkpoints": 2,
                                  "train.peak_tflops": 1.0, "train.validation.every": 2,
                                  "train.validation.at_end": True, "train.validation.steps": 2}, frame_counts=[9])
    with pytest.MonkeyPatch.context() as env:
        for name, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                            "MASTER_PORT": str(free_ports(1)[0])}.items():
            env.setenv(name, value)
        if "TORCH_EXTENSIONS_DIR" not in os.environ:
            env.setenv("TORCH_EXTENSIONS_DIR", "")
            env.delenv("TORCH_EXTENSIONS_DIR")
        summary = run_training(config, index_shards, progress=False)
    return output, summary.steps


def test_warmup_is_linear_to_the_configured_lr(recipe_run) -> None:
    _, steps = recipe_run
    assert [s.lr for s in steps] == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3, 1e-3])


def test_checkpoints_keep_the_last_n(recipe_run) -> None:
    output, _ = recipe_run
    checkpoints = output / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("step-*")) == ["step-00000003", "step-00000004"]
    assert (checkpoints / "latest").read_text().strip() == "step-00000004"


def test_validation_writes_mp4s_in_the_trained_modes(recipe_run) -> None:
    """Text-to-video share 0.3 of an image-to-video model: both modes are trained, both are validated (the
    image-to-video one from the first training clip's first frame)."""
    import av

    output, _ = recipe_run
    samples = output / "samples"
    names = sorted(p.name for p in samples.glob("*.mp4"))
    assert names == [f"step-0000000{s}-0-{m}.mp4" for s in (2, 4) for m in ("i2v", "t2v")]
    for name in names:
        with av.open(str(samples / name)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 9 and frames[0].shape == (64, 64, 3)
    assert (samples / "validation-image.png").exists()


def test_tensorboard_has_the_training_scalars(recipe_run) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    output, steps = recipe_run
    events = EventAccumulator(str(output / "tensorboard"), size_guidance={"scalars": 0, "images": 0}).Reload()
    tags = events.Tags()
    expected = {"train/loss", "train/lr", "train/grad_norm", "perf/samples_per_s", "perf/tokens_per_s", "perf/mfu"}
    assert expected <= set(tags["scalars"]), tags["scalars"]
    for tag in expected:
        assert [e.step for e in events.Scalars(tag)] == [1, 2, 3, 4], tag
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([s.loss for s in steps], rel=1e-5)
    assert [e.value for e in events.Scalars("train/lr")] == pytest.approx([s.lr for s in steps], rel=1e-5)
    assert {"samples/t2v/0", "samples/i2v/0"} <= set(tags["images"])


def test_training_flops_match_a_hand_count_for_one_block() -> None:
    """Per block and sequence of T tokens, forward: 2 x 12 d² x T for the token-wise matmuls (q, k, v, out:
    4 d²; MLP 4x: 8 d²), 2 x 2 x (cond x 6d) for the two AdaLN projections (once per sequence), 4 T² d for
    QKᵀ and AV; backward twice the forward. torch's FLOP counter agrees on the matmuls."""
    from torch.utils.flop_counter import FlopCounterMode

    from model.flops import training_flops
    from model.presets import preset
    from model.transformer import DropletVideoTransformer3DModel

    def hand(d: int, cond: int, tokens: int) -> int:
        return 3 * (2 * 12 * d * d * tokens + 2 * 2 * cond * 6 * d + 4 * tokens * tokens * d)

    tiny = DropletVideoTransformer3DModel(**preset("tiny")["transformer"])
    assert training_flops(tiny, 80) == 2 * hand(64, 32, 80)  # two blocks
    with torch.device("meta"):
        five_b = DropletVideoTransformer3DModel(**preset("5b")["transformer"])
    assert training_flops(five_b, 13_712) == 42 * hand(3072, 512, 13_712)

    block, tokens = tiny.transformer_blocks[0], 80
    video, text = torch.randn(1, 48, 64, requires_grad=True), torch.randn(1, 32, 64, requires_grad=True)
    cond = torch.randn(1, 32, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        out_video, out_text = block(video, text, cond)
        (out_video.sum() + out_text.sum()).backward()
    attention = 3 * 4 * tokens * tokens * 64  # SDPA's CPU kernel is not counted by the FLOP counter
    assert counter.get_total_flops() == hand(64, 32, tokens) - attention


def test_the_curated_clip_length_bounds_the_motion_range() -> None:
    """The README's numbers: clips of at most 250 frames (curation's default) never give M below 7.35 (N 49) or
    12.75 (N 85) at 30 fps; M <= 4 at N 85 takes 796 frames at 30 fps, 636 at 24 fps."""
    from curation.config import CurateConfig

    assert CurateConfig().clips.max_frames == 250
    assert sample_frames(250, 30.0, 49).motion == pytest.approx(7.35)
    assert sample_frames(250, 30.0, 85).motion == pytest.approx(12.75)
    assert sample_frames(796, 30.0, 85).motion <= 4 < sample_frames(795, 30.0, 85).motion
    assert sample_frames(636, 24.0, 85).motion <= 4 < sample_frames(635, 24.0, 85).motion


def test_precompute_stores_noisy_reference_draws_and_training_picks_one(tmp_path: Path, caplog) -> None:
    """Image-to-video precompute: K = 2 noisy encodings of the first frame per clip, each with its sigma,
    reproducible from (seed, clip key); a latents batch gets one of them per sample. K = 0 stores one clean
    encoding, and training from it says it adds no reference noise."""
    import logging

    from safetensors.torch import load

    from model.vae import video_to_pixels
    from train.components import build_components
    from train.data import precomputed_batch
    from train.encode import BatchEncoder
    from train.precompute import clip_generator, precompute, reference_latents

    clips = [(40, 24.0, 64, 64), (60, 30.0, 64, 64)]  # one bucket
    urls = write_index_shards(tmp_path / "shards", clips=clips, per_shard=2)
    changes = {"model.image_to_video": True, "train.reference_noise.precompute_draws": 2}
    config = tiny_config(tmp_path / "unused", changes, frame_counts=[9])
    with caplog.at_level(logging.INFO, logger="train.precompute"):
        manifest = precompute(config, urls, tmp_path / "latents", progress=False)
    assert "2 noisy encoding(s) per clip" in caplog.text
    assert manifest["reference_noise"] == {"draws": 2, "log_mean": -3.0, "log_std": 0.5}
    assert manifest["text_length"] == 400
    raws = list(wds.WebDataset(str(tmp_path / "latents" / manifest["shards"][0]["name"]), shardshuffle=False))
    tensors = load(raws[0]["safetensors"])
    reference, sigma = tensors["reference"], tensors["reference_sigma"]
    assert reference.shape == (2, *tensors["latents"].shape) and sigma.shape == (2,)
    assert torch.all(sigma > 0) and sigma[0] != sigma[1] and not torch.equal(reference[0], reference[1])
    assert tensors["text"].shape[0] == 400

    parts = build_components(config, torch.device("cpu"))
    meta = json.loads(raws[0]["json"])
    n, fps, w, h = clips[int(meta["clip_id"][4:])]
    frames = decode_frames(index_clip(n, fps, w, h), meta["indices"], fps, meta["bucket"]["height"],
                           meta["bucket"]["width"])
    again = reference_latents(parts.vae, video_to_pixels(torch.from_numpy(frames)), (1, *reference.shape[1:]),
                              config.train.reference_noise, clip_generator(config.train.seed, raws[0]["__key__"]))
    assert torch.equal(again["reference_sigma"], sigma) and torch.equal(again["reference"], reference)

    for raw in raws:
        raw["json"] = json.loads(raw["json"])
    batch = precomputed_batch(assert_one_bucket(raws), raws)
    assert batch["reference"].shape[:2] == (2, 2) and batch["reference_sigma"].shape == (2, 2)
    encoder = BatchEncoder("latents", parts, config.updated({"train.text_to_video_share": 0.0}), torch.device("cpu"))
    picked = set()
    for seed in range(6):
        encoded = encoder(batch, torch.Generator().manual_seed(seed))
        for row in range(2):
            stored = [k for k in range(2) if torch.allclose(encoded.conditioning[row, :, 1:],
                                                            batch["reference"][row, k].float())]
            assert len(stored) == 1 and encoded.reference_sigma[row] == batch["reference_sigma"][row, stored[0]]
            picked.add(stored[0])
    assert picked == {0, 1}

    clean_config = config.updated({"train.reference_noise.precompute_draws": 0})
    clean = precompute(clean_config, urls[:1], tmp_path / "clean", progress=False)
    assert clean["reference_noise"]["draws"] == 0
    raws = list(wds.WebDataset(str(tmp_path / "clean" / clean["shards"][0]["name"]), shardshuffle=False))
    assert load(raws[0]["safetensors"])["reference"].ndim == 4 and "reference_sigma" not in load(raws[0]["safetensors"])
    for raw in raws:
        raw["json"] = json.loads(raw["json"])
    with caplog.at_level(logging.WARNING, logger="train.encode"):
        encoded = BatchEncoder("latents", parts, clean_config, torch.device("cpu"))(
            precomputed_batch(assert_one_bucket(raws), raws), torch.Generator())
    assert "reference latents are clean" in caplog.text and torch.all(encoded.reference_sigma == 0)
    with pytest.raises(ValueError, match="model.text_length"):
        BatchEncoder("latents", parts, config, torch.device("cpu"))({**batch, "text": batch["text"][:, :32]},
                                                                    torch.Generator())


def assert_one_bucket(raws: list[dict]):
    from train.buckets import Bucket

    buckets = {json.dumps(raw["json"]["bucket"], sort_keys=True) for raw in raws}
    assert len(buckets) == 1, buckets
    b = raws[0]["json"]["bucket"]
    return Bucket(b["frames"], b["height"], b["width"])
