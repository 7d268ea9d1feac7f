"""Embeddings + aesthetics on the CPU: clips/s of the CLIP stage (open_clip ViT-B-32-quickgelu built with random
weights of that shape, loaded from a local safetensors file as the real weights would be, plus a B/32-shaped
linear aesthetic head) beside the decode-only time of the same clips, and what it would add to a curate run.

Input: `--clips DIR` (e.g. OUT/clips of `droplet curate demo/inputs OUT`), else `--count` clips like the demo's
(640x360, 80 frames at 25 fps, H.264 CRF 18 with a keyframe every second). Rows: full decode of every frame, the
stage's own decode (one pass up to the last sampled frame), embeddings + aesthetic score one clip per call and
`--batch` clips per call, and the same with scene tags. With `--curate-seconds S` (the wall time of that curate)
it prints the estimated slowdown of curate with the stage on all its clips, for one worker and for all cores.

    python bench/embedding_bench.py [--clips DIR] [--count 20] [--threads 1] [--batch 8] [--curate-seconds S]
    python bench/embedding_bench.py --curate-both demo/inputs   # the same curate without and with the stage
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import av

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curation.aesthetic import AestheticConfig  # noqa: E402
from curation.clip_scoring import ClipScorer  # noqa: E402
from curation.embeddings import EmbeddingConfig  # noqa: E402
from curation.scene_tags import SceneTagConfig  # noqa: E402

RESULTS = REPO / "bench" / "results"


def demo_like_clips(folder: Path, count: int) -> list[Path]:
    """`count` clips shaped like the demo's: 640x360, 80 frames at 25 fps, as extraction encodes them."""
    from droplet.sample_data.encode import H264Writer
    from droplet.sample_data.synthetic import camera_frames

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"clip{i:03d}.mp4"
        if not path.exists():
            label = ("pan_right", "tilt_up", "zoom_in", "roll_cw")[i % 4]
            with H264Writer(path, 640, 360, fps=25, crf=18, preset="veryfast", gop=25) as writer:
                for frame in camera_frames(label, 80, 1.0, seed=100 + i, width=640, height=360):
                    writer.write(frame)
        paths.append(path)
    return paths


class Clock:
    """Wall and CPU seconds (this process, all its threads) of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def full_decode(paths: list[Path]) -> Clock:
    with Clock() as clock:
        for path in paths:
            with av.open(str(path)) as container:
                for frame in container.decode(video=0):
                    frame.to_ndarray(format="rgb24")
    return clock


def curate_run(inputs: Path, out: Path, config: Path | None = None) -> tuple[float, float]:
    """Wall and CPU seconds of `droplet curate INPUTS OUT --executor local`, CPU summed over its process tree
    (sampled every 0.1 s: each process's last reading, its reaped children included)."""
    import subprocess

    import psutil

    start = time.perf_counter()
    extra = ["--config", str(config)] if config else []
    proc = subprocess.Popen([sys.executable, "-m", "droplet", "curate", str(inputs), str(out), "--executor", "local",
                             "--no-progress", *extra], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root, seen = psutil.Process(proc.pid), {}
    while proc.poll() is None:
        try:
            for p in [root, *root.children(recursive=True)]:
                try:
                    t = p.cpu_times()
                    seen[(p.pid, p.create_time())] = t.user + t.system + t.children_user + t.children_system
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    if proc.returncode:
        raise SystemExit(f"curate failed (exit {proc.returncode})")
    return time.perf_counter() - start, sum(seen.values())


def random_b32(folder: Path) -> tuple[EmbeddingConfig, AestheticConfig]:
    """ViT-B-32-quickgelu with random weights and a 512->1 linear head, saved as local files."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None)
    weights = folder / "vit_b_32_random.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    head = folder / "b32_linear_random.pth"
    torch.save({"weight": torch.randn(1, 512) * 0.1, "bias": torch.tensor([5.0])}, head)
    return EmbeddingConfig(model="ViT-B-32-quickgelu", weights=str(weights)), AestheticConfig(head=str(head))


def curate_with_and_without(inputs: Path, tmp: Path) -> int:
    """Wall time of the same curate run without and with the CLIP stage (random B/32 + a linear head): the
    stage as the pipeline runs it, not an estimate."""
    import yaml

    embeddings, aesthetic = random_b32(tmp)
    config = yaml.safe_load((REPO / "configs" / "curate.yaml").read_text())
    config["embeddings"] = {**config.get("embeddings", {}), "model": embeddings.model, "weights": embeddings.weights}
    config["aesthetic"] = {**config.get("aesthetic", {}), "head": aesthetic.head}
    with_clip = tmp / "curate-clip.yaml"
    with_clip.write_text(yaml.safe_dump(config))
    base_wall, base_cpu = curate_run(inputs, tmp / "without", REPO / "configs" / "curate.yaml")
    clip_wall, clip_cpu = curate_run(inputs, tmp / "with", with_clip)
    print(f"curate {inputs} without CLIP: {base_wall:.1f} s wall, {base_cpu:.1f} s CPU")
    print(f"curate {inputs} with CLIP B/32 + aesthetic head: {clip_wall:.1f} s wall, {clip_cpu:.1f} s CPU")
    print(f"with / without: {clip_wall / base_wall:.2f}x wall, {clip_cpu / base_cpu:.2f}x CPU (target <= 1.5x)")
    return 0


def timed(scorer: ClipScorer, paths: list[Path], batch: int) -> Clock:
    with Clock() as clock:
        for i in range(0, len(paths), batch):
            results = scorer.score_files(paths[i:i + batch])
            assert all(r.error is None for r in results), [r.error for r in results]
    return clock


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, help="folder of clip files (default: demo-like clips made here)")
    parser.add_argument("--count", type=int, default=20, help="clips to time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a Ray worker has one CPU)")
    parser.add_argument("--batch", type=int, default=8, help="clips per call in the batched row")
    parser.add_argument("--curate", type=Path, metavar="INPUTS", help="run `droplet curate INPUTS` (local executor) "
                        "first, measure its wall and CPU time, and time its clips (e.g. demo/inputs)")
    parser.add_argument("--curate-both", type=Path, metavar="INPUTS", help="only run `droplet curate INPUTS` twice, "
                        "without and with the CLIP stage, and print the wall and CPU ratio (e.g. demo/inputs)")
    parser.add_argument("--curate-seconds", type=float, help="wall seconds of the curate run these clips came from")
    parser.add_argument("--curate-clips", type=int, help="clip files that run wrote (default: all in --clips)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="embedding-bench-"))
    if args.curate_both:
        return curate_with_and_without(args.curate_both, tmp)
    curate_cpu = None
    if args.curate:
        args.curate_seconds, curate_cpu = curate_run(args.curate, tmp / "out")
        args.clips = tmp / "out" / "clips"
        print(f"curate {args.curate}: {args.curate_seconds:.1f} s wall, {curate_cpu:.1f} s CPU")
    if args.clips:
        every = sorted(args.clips.glob("*.mp4"))
        paths = every[:args.count]
    else:
        every = paths = demo_like_clips(RESULTS / "embedding_clips", args.count)
    if not paths:
        raise SystemExit(f"no .mp4 clips in {args.clips}")
    frames = 0
    for path in paths:
        with av.open(str(path)) as container:
            frames += container.streams.video[0].frames

    start = time.perf_counter()
    embeddings, aesthetic = random_b32(tmp)
    built = time.perf_counter() - start
    with Clock() as load:
        scorer = ClipScorer(embeddings, aesthetic, SceneTagConfig(enabled=False))
    loaded = load.cpu
    tagger_scorer = ClipScorer(embeddings, aesthetic, SceneTagConfig())
    decode = full_decode(paths)
    with Clock() as stage_decode:
        for path in paths:
            scorer.embedder.read_frames(path)
    scorer.score_files(paths[:1])  # warm-up
    one = timed(scorer, paths, 1)
    batched = timed(scorer, paths, args.batch)
    tags = timed(tagger_scorer, paths, args.batch)

    n = len(paths)
    rows = [
        ("full decode, every frame (rgb24)", decode),
        (f"stage decode, {embeddings.frames} frames read", stage_decode),
        ("embeddings + aesthetic, 1 clip per call", one),
        (f"embeddings + aesthetic, {args.batch} clips per call", batched),
        (f"embeddings + aesthetic + scene tags, {args.batch} per call", tags),
    ]
    print(f"\n{n} clips, {frames} frames, {args.threads} torch thread(s), ViT-B-32-quickgelu random weights; "
          f"model built + saved in {built:.1f} s, loaded in {load.wall:.1f} s ({loaded:.1f} s CPU, once per worker)")
    print(f"{'row':<58} {'wall s':>7} {'clips/s':>8} {'ms/clip':>8} {'CPU ms/clip':>12}")
    for name, clock in rows:
        print(f"{name:<58} {clock.wall:7.2f} {n / clock.wall:8.1f} {1000 * clock.wall / n:8.1f} "
              f"{1000 * clock.cpu / n:12.1f}")
    result = {"clips": n, "frames": frames, "threads": args.threads, "load_s": loaded,
              "rows": {name: {"wall_per_clip_s": c.wall / n, "cpu_per_clip_s": c.cpu / n} for name, c in rows}}
    if args.curate_seconds:
        total = args.curate_clips or len(every)
        per_clip_wall = min(one.wall, batched.wall) / n  # measured now, under the machine's present load
        per_clip_cpu = min(one.cpu, batched.cpu) / n  # what the stage takes from a worker's core, load or not
        cores = os.cpu_count() or 1
        for workers in sorted({1, cores}):
            added = total * per_clip_wall / workers + load.wall
            print(f"curate {args.curate_seconds:.1f} s wall with {total} clips: + {added:.1f} s wall with {workers} "
                  f"worker(s) -> {(args.curate_seconds + added) / args.curate_seconds:.2f}x")
        if curate_cpu:
            added_cpu = total * per_clip_cpu + loaded
            ratio = (curate_cpu + added_cpu) / curate_cpu
            print(f"curate {curate_cpu:.1f} s CPU: + {added_cpu:.1f} s CPU -> {ratio:.2f}x the CPU work")
        result.update(curate_s=args.curate_seconds, curate_cpu_s=curate_cpu, curate_clips=total,
                      per_clip_wall_s=per_clip_wall, per_clip_cpu_s=per_clip_cpu)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "embedding_bench.json").write_text(json.dumps(result, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)  # the random ViT-B/32 weights are 600 MB
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
