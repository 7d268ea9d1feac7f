"""Trainer benchmarks.

CPU (default), same data, same run:
  * the loader's samples/s with 1 and 2 workers, beside the tiny model's training samples/s: the loader must not
    be the bottleneck (ratio loader / step > 1);
  * decoding 49 sampled frames with one seek to the window's start, beside one seek per frame (the anchor).
GPU (--gpu-5b): the 5B transformer's training step at 49x480x720 (13 x 30 x 45 = 17,550 video tokens + 400 text)
  in bf16 with gradient checkpointing under DeepSpeed ZeRO-2, without and with optimizer offload: step time, MFU
  (model FLOPs: 6 x params x tokens + attention) and peak GPU memory.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def textured_clip(num_frames: int, fps: float, width: int, height: int, seed: int) -> bytes:
    """A panning noise texture (x264, keyframe every second), the kind of clip curation writes."""
    from droplet.sample_data.encode import H264Writer

    rng = np.random.default_rng(seed)
    texture = (rng.random((height, width * 3, 3)) * 255).astype(np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        with H264Writer(path, width, height, int(fps), preset="veryfast", gop=round(fps)) as writer:
            for k in range(num_frames):
                writer.write(np.ascontiguousarray(texture[:, 4 * k:4 * k + width]))
        return path.read_bytes()


def write_shards(folder: Path, clips: int, num_frames: int, width: int, height: int) -> list[str]:
    import webdataset as wds

    folder.mkdir(parents=True, exist_ok=True)
    urls = []
    for s in range(4):
        path = folder / f"shard-{s:06d}.tar"
        with wds.TarWriter(str(path)) as tar:
            for i in range(s, clips, 4):
                meta = {"clip_id": f"c{i:04d}", "num_frames": num_frames, "fps": 30.0, "width": width, "height": height}
                tar.write({"__key__": f"c{i:04d}", "mp4": textured_clip(num_frames, 30.0, width, height, i),
                           "json": json.dumps(meta).encode(), "txt": "The camera pans left across a texture."})
        urls.append(str(path))
    return urls


def loader_rate(urls: list[str], workers: int, frame_counts: list[int], budget: int, batches: int,
                precomputed: bool = False) -> float:
    from train.data import ClipBatches, StreamSpec, iterate_epoch

    spec = StreamSpec(urls=urls, frame_counts=frame_counts, token_budget=budget, batch_size=2, shuffle_buffer=8,
                      precomputed=precomputed)
    dataset = ClipBatches(spec)
    it = iterate_epoch(dataset, workers, batches + 2)
    next(it), next(it)  # workers started
    start = time.perf_counter()
    n = sum(len(b["key"]) for b in it)
    return n / (time.perf_counter() - start)


def tiny_config():
    from runtime.config import load_config
    from train.config import TrainConfig

    return load_config(REPO / "configs" / "train-tiny.yaml", TrainConfig)


def step_rate(urls: list[str], steps: int) -> float:
    from train.run import run_training

    config = tiny_config().updated({"output": tempfile.mkdtemp(prefix="bench-run-"), "data.num_workers": 0,
                                    "train.validation.at_end": False, "train.checkpoint_every": 10**6})
    summary = run_training(config, urls, max_steps=steps, progress=False)
    timed = summary.steps[3:]
    return sum(s.samples for s in timed) / sum(s.seconds for s in timed)


def seek_per_frame(data: bytes, indices, fps: float) -> int:
    import av

    decoded = 0
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        tb = float(stream.time_base)
        for index in indices:
            container.seek(int(index / fps / tb), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if round(frame.pts * tb * fps) >= index:
                    frame.to_ndarray(format="rgb24")
                    decoded += 1
                    break
    return decoded


def cpu(args) -> None:
    from shards.sampling import sample_frames
    from train.decode import decode_frames

    folder = Path(tempfile.mkdtemp(prefix="train-bench-"))
    small = write_shards(folder / "small", 32, 120, 640, 360)
    rows = []
    for workers in (1, 2):
        rows.append((f"loader, {workers} worker(s), tiny buckets (9 frames, 48x80)",
                     loader_rate(small, workers, [9], 48, args.batches)))
    from train.precompute import precompute

    latents = precompute(tiny_config(), small, folder / "latents", progress=False)
    latent_urls = [str(folder / "latents" / s["name"]) for s in latents["shards"]]
    rows.append(("loader, 1 worker, precomputed latents (`droplet precompute`)",
                 loader_rate(latent_urls, 1, [9], 48, args.batches, precomputed=True)))
    train = step_rate(small, args.steps)
    print("\n| what (640x360 clips, 120 frames) | samples/s | loader / training |")
    print("|---|---:|---:|")
    for label, rate in rows:
        print(f"| {label} | {rate:.1f} | {rate / train:.1f}x |")
    print(f"| tiny model training step (batch 2, CPU, bf16 ZeRO-2) | {train:.1f} | |")

    large = write_shards(folder / "large", 8, 150, 1280, 720)
    for workers in (1, 2):
        rate = loader_rate(large, workers, [49], 13_312, 6)
        print(f"| loader, {workers} worker(s), phase-1 buckets (49 frames, 13,312 tokens) from 1280x720 | "
              f"{rate:.1f} | |")

    clip = textured_clip(300, 30.0, 1280, 720, 0)
    indices = sample_frames(300, 30.0, 49).indices
    times = {"one seek": [], "seek per frame": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        decode_frames(clip, indices, 30.0, 480, 720)
        times["one seek"].append(time.perf_counter() - start)
        start = time.perf_counter()
        seek_per_frame(clip, indices, 30.0)
        times["seek per frame"].append(time.perf_counter() - start)
    one, per = statistics.median(times["one seek"]), statistics.median(times["seek per frame"])
    print("\n| 49 of 300 frames, 1280x720, keyframe every 30 | seconds | |")
    print("|---|---:|---:|")
    print(f"| ours: one seek, decode in order, convert chosen | {one:.3f} | {per / one:.1f}x faster |")
    print(f"| anchor: seek per frame | {per:.3f} | |")


def gpu_5b(args) -> None:
    import torch

    from model.flops import PEAK_BF16_TFLOPS, training_flops
    from model.presets import preset
    from model.transformer import DropletVideoTransformer3DModel
    from train.config import TrainConfig
    from train.distributed import init_distributed
    from train.optim import build_engine

    info = init_distributed()
    for name in args.deepspeed:
        torch.cuda.reset_peak_memory_stats()
        cfg = preset("5b")["transformer"]
        with torch.device("cuda"):
            model = DropletVideoTransformer3DModel(**cfg)
        model.enable_gradient_checkpointing()
        model.set_sdpa_backends(["cudnn", "flash"])
        ds_file = REPO / "configs" / f"{name}.json"
        if args.torch_adam and "offload" not in name:  # skip building DeepSpeed's fused Adam on the machine
            ds = json.loads(ds_file.read_text())
            ds["optimizer"]["params"]["torch_adam"] = True
            ds_file = Path(tempfile.mkdtemp()) / f"{name}.json"
            ds_file.write_text(json.dumps(ds))
        config = TrainConfig.model_validate({"deepspeed": str(ds_file), "data": {"batch_size": 1},
                                             "optim": {"warmup_steps": 0}})
        start = time.perf_counter()
        engine = build_engine(config, model, info, Path(tempfile.mkdtemp()))
        setup = time.perf_counter() - start
        x = torch.randn(1, 13, cfg["in_channels"], 60, 90, device="cuda", dtype=torch.bfloat16)
        text = torch.randn(1, 400, 4096, device="cuda", dtype=torch.bfloat16)
        t, m = torch.tensor([500], device="cuda"), torch.tensor([8.0], device="cuda")
        times = []
        for i in range(args.steps):
            torch.cuda.synchronize()
            s = time.perf_counter()
            out = engine(x, text, t, motion=m, return_dict=False)[0]
            engine.backward(out.float().square().mean())
            engine.step()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - s)
            print(f"{name} step {i}: {times[-1]:.2f} s", flush=True)
        step = statistics.median(times[1:])
        tokens = 13 * 30 * 45 + 400
        flops = training_flops(model, tokens)
        peak = PEAK_BF16_TFLOPS["H100"] * 1e12
        print(f"| {name} | {setup:.0f} s | {step:.2f} s | {tokens / step:.0f} | {flops / step / peak:.1%} | "
              f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB |", flush=True)
        del engine, model, out
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu-5b", action="store_true")
    parser.add_argument("--deepspeed", nargs="+", default=["deepspeed-zero2-bf16", "deepspeed-zero2-offload"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--torch-adam", action="store_true", help="GPU runs without offload: torch's AdamW")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.gpu_5b:
        print("| DeepSpeed config | setup | step | tokens/s | MFU | peak GPU memory |\n|---|---:|---:|---:|---:|---:|")
        gpu_5b(args)
    else:
        cpu(args)


if __name__ == "__main__":
    main()
