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
        "model.image_to_video": True, "model.gradient_checkpointing": True, "train.image_to_video_share": 0.5,
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

    config = tiny_config(tmp_path, {"model.image_to_video": True, "train.reference_noise_sigma": 0.0,
                                    "train.image_to_video_share": 0.5}, frame_counts=[9])
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
    """2 CPU workers (gloo, ZeRO-2) on the session's head at 127.0.0.1: run to step 2, launch again to step 4.
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
