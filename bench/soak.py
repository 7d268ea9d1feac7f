"""Soak run: many generated sources of mixed kinds through curate -> caption -> shards on a two-node Ray cluster
on 127.0.0.1 (`ray.cluster_utils.Cluster`: a head and a second node, 1 CPU each unless told), with worker kills
injected by the fault hook (`runtime.faults`). It prints sources in, clips out, shards, clips missing from the
shards, clip ids twice, tasks retried, and the wall time; `--json` writes them too.

Mixed kinds: two- and three-shot camera moves (pan, tilt, zoom, roll, static, shaky), a few exact copies of other
sources (`duplicate`), text files named .mp4 (`not_a_video`), mp4s cut in half (`truncated`), empty files, and
one-frame videos (`too_short`).

    python bench/soak.py [--sources 300] [--kills analysis:37,extraction:211,checks:400] [--keep DIR]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before ray is imported: every address stays 127.0.0.1

MOVES = ("pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out", "roll_cw", "static", "shaky")
HEALTH = {"health_check_period_ms": 1000, "health_check_timeout_ms": 3000, "health_check_failure_threshold": 3}


def _shot(move: str, frames: int, seed: int, rng: random.Random):  # noqa: ANN202 - a synthetic Shot
    from droplet.sample_data.synthetic import Shot, _cam

    if move in ("static", "shaky"):
        return Shot(move, "static", frames, seed)
    return _cam(move, rng.choice(("slow", "fast")), frames, seed)


def write_sources(folder: Path, count: int, seed: int = 0) -> collections.Counter:
    """`count` sources of mixed kinds in `folder`; returns how many of each kind."""
    from droplet.sample_data.encode import H264Writer
    from droplet.sample_data.synthetic import camera_frames, write_video

    rng = random.Random(seed)
    kinds: collections.Counter = collections.Counter()
    folder.mkdir(parents=True, exist_ok=True)
    videos: list[Path] = []
    for i in range(count):
        path = folder / f"source{i:04d}.mp4"
        roll = rng.random()
        if roll < 0.04:
            path.write_bytes(b"not a video, only text with an .mp4 name\n" * 4)
            kinds["not_a_video"] += 1
        elif roll < 0.07:
            path.write_bytes(b"")
            kinds["empty_file"] += 1
        elif roll < 0.10 and videos:
            path.write_bytes(rng.choice(videos).read_bytes())
            kinds["duplicate"] += 1
        elif roll < 0.13 and videos:
            data = rng.choice(videos).read_bytes()
            path.write_bytes(data[: len(data) // 2])
            kinds["truncated"] += 1
        elif roll < 0.15:
            with H264Writer(path, 320, 180) as writer:
                writer.write(next(camera_frames("static", 1, 0.0, 700 + i, 320, 180)))
            kinds["too_short"] += 1
        else:
            shots = [_shot(rng.choice(MOVES), rng.choice((70, 90, 110)), 1000 + 7 * i + k, rng)
                     for k in range(rng.choice((2, 2, 3)))]
            write_video(path, 320, 180, shots)
            videos.append(path)
            kinds["video"] += 1
    return kinds


def shard_clip_ids(out: Path) -> list[str]:
    """Every clip id in OUT's shards, once per sample (a clip twice shows up twice)."""
    ids = []
    for path in sorted((out / "shards").glob("*.tar")):
        with tarfile.open(path) as tar:
            ids.extend(sorted({m.name.split(".", 1)[0] for m in tar.getmembers() if m.isfile()}))
    return ids


def run(args: argparse.Namespace) -> dict:
    import pyarrow.parquet as pq
    import ray
    from ray.cluster_utils import Cluster

    work = Path(args.keep or tempfile.mkdtemp(prefix="droplet-soak-"))
    inputs, out, faults = work / "inputs", work / "out", work / "faults"
    started = time.time()
    kinds = write_sources(inputs, args.sources)
    print(f"wrote {args.sources} sources in {time.time() - started:.0f} s: {dict(kinds)}", flush=True)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": args.cpus_per_node,
                                                            "_system_config": HEALTH})
    cluster.add_node(num_cpus=args.cpus_per_node)
    env = {**os.environ, "DROPLET_FAULT": args.kills, "DROPLET_FAULT_DIR": str(faults)}
    env.pop("RAY_ADDRESS", None)
    config = work / "curate.yaml"
    config.write_text("ray:\n  progress_bars: false\n")
    try:
        began = time.time()
        curate = subprocess.run([sys.executable, "-m", "droplet", "curate", str(inputs), str(out), "--config",
                                 str(config), "--address", cluster.address, "--no-progress"], env=env, cwd=REPO,
                                capture_output=True, text=True)
        curate_s = time.time() - began
        if curate.returncode != 0:
            raise SystemExit(f"curate failed ({curate.returncode}):\n{curate.stderr[-4000:]}")
        began = time.time()
        caption = subprocess.run([sys.executable, "-m", "droplet", "caption", str(out)], env=env, cwd=REPO,
                                 capture_output=True, text=True)
        caption_s = time.time() - began
        if caption.returncode != 0:
            raise SystemExit(f"caption failed ({caption.returncode}):\n{caption.stderr[-4000:]}")
    finally:
        ray.shutdown()
        cluster.shutdown()
    sources = pq.read_table(out / "sources.parquet").to_pylist()
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    kept = {c["clip_id"] for c in clips if c["keep"]}
    in_shards = shard_clip_ids(out)
    log = (out / "curate.log").read_text()
    retried = re.search(r"retried after a failure: (.*)", log)
    fired = sorted(p.stem for p in faults.glob("*.fired"))
    reasons = collections.Counter(s["reason"] for s in sources if s["status"] != "ok")
    result = {
        "sources_in": len(sources), "sources_ok": sum(s["status"] == "ok" for s in sources),
        "source_rejections": dict(reasons), "clips_out": len(clips), "clips_kept": len(kept),
        "shards": len(list((out / "shards").glob("*.tar"))), "clips_in_shards": len(in_shards),
        "missing": len(kept - set(in_shards)), "duplicated": len(in_shards) - len(set(in_shards)),
        "clip_rows_twice": len(clips) - len({c["clip_id"] for c in clips}),
        "kills_fired": fired, "retried": retried.group(1) if retried else "none",
        "curate_s": round(curate_s, 1), "caption_and_shard_s": round(caption_s, 1),
        "wall_s": round(time.time() - started, 1), "out": str(out),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=300)
    parser.add_argument("--kills", default="analysis:37,extraction:211,checks:400",
                        help="DROPLET_FAULT: stage:count,... (each kills the worker at that item once)")
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--keep", help="work folder (default: a new temp folder, kept)")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    result = run(args)
    for key, value in result.items():
        print(f"{key:22s}{value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if result["missing"] or result["duplicated"] or result["clip_rows_twice"] or len(result["kills_fired"]) < 3:
        raise SystemExit("soak: FAILED (missing, duplicated, or a kill did not fire)")


if __name__ == "__main__":
    main()
