"""Shard writer benchmark: `write_shards` against a plain copy of the same bytes, same run.

A fake OUT holds `--total-mb` of random-byte clips of about `--sample-mb` each (captioned, QA-passed). Each
repeat runs, in alternating order, (a) `shutil.copyfileobj` of every clip file into one file and (b)
`write_shards` (tar headers, JSON, sha256, index.parquet + manifest.json after each shard), both with and
without fsync; `os.sync()` runs before each timed step so none pays for the last one's writeback. MiB/s
counts the clip bytes (the same numerator for both); the table shows the median and the best run.

    python bench/shards_bench.py [--total-mb 512] [--sample-mb 2] [--shard-mb 128] [--repeats 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shards.schema import CLIP_SCHEMA  # noqa: E402
from shards.writer import write_shards  # noqa: E402

RESULTS = REPO / "bench" / "results"
MB = 1 << 20


def make_out(out: Path, total_bytes: int, sample_bytes: int) -> list[Path]:
    """A fake OUT with clips.parquet, captions.parquet and random clip files; returns the files in clip order."""
    rng = random.Random(0)
    (out / "clips").mkdir(parents=True)
    clips, captions, files, written = [], [], [], 0
    block = os.urandom(sample_bytes * 2)
    i = 0
    while written < total_bytes:
        cid = f"{i:016x}-0-{100 + i}"
        size = rng.randrange(sample_bytes * 9 // 10, sample_bytes * 11 // 10)
        start = rng.randrange(0, sample_bytes)
        path = out / "clips" / f"{cid}.mp4"
        path.write_bytes(os.urandom(64) + block[start:start + size - 64])
        files.append(path)
        written += size
        clips.append({"clip_id": cid, "source": "bench.mp4", "source_id": f"{i:016x}", "start_frame": 0,
                      "end_frame": 100 + i, "start_s": 0.0, "end_s": (100 + i) / 24, "fps": 24.0,
                      "num_frames": 100 + i, "width": 1280, "height": 720, "has_audio": False,
                      "camera_motion": "pan_left", "camera_timeline": [
                          {"start_s": 0.0, "end_s": 4.0, "label": "pan_left", "speed": 0.2, "confidence": 0.9}],
                      "keep": True})
        captions.append({"clip_id": cid, "caption": "The camera pans left. " * 40, "backend": "bench",
                         "model": "none", "prompt_version": "v1", "words": 160, "qa_passed": True,
                         "qa_reason": None, "error": None})
        i += 1
    pq.write_table(pa.Table.from_pylist(clips, schema=CLIP_SCHEMA), out / "clips.parquet")
    pq.write_table(pa.Table.from_pylist(captions), out / "captions.parquet")
    return files


def run_copy(files: list[Path], dest: Path, fsync: bool) -> float:
    start = time.perf_counter()
    with open(dest, "wb") as dst:
        for path in files:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, dst)
        dst.flush()
        if fsync:
            os.fsync(dst.fileno())
    elapsed = time.perf_counter() - start
    dest.unlink()
    return elapsed


def run_shards(out: Path, shard_bytes: int, fsync: bool, expect: int) -> tuple[float, dict]:
    start = time.perf_counter()
    summary = write_shards(out, target_bytes=shard_bytes, fsync=fsync)
    elapsed = time.perf_counter() - start
    assert summary["samples"] == expect, summary
    shutil.rmtree(out / "shards")
    return elapsed, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--total-mb", type=int, default=512)
    parser.add_argument("--sample-mb", type=float, default=2.0)
    parser.add_argument("--shard-mb", type=int, default=128, help="write_shards target_bytes, in MiB")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="where the fake OUT goes (default: a temp dir)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="shards_bench_", dir=args.dir))
    try:
        out = root / "out"
        files = make_out(out, args.total_mb * MB, int(args.sample_mb * MB))
        payload = sum(p.stat().st_size for p in files)
        times: dict[str, list[float]] = {k: [] for k in ("copy", "shards", "copy+fsync", "shards+fsync")}
        summary: dict = {}
        for r in range(args.repeats):
            for fsync in (False, True):
                suffix = "+fsync" if fsync else ""
                steps = [("copy", lambda f=fsync: run_copy(files, root / "copy.bin", f)),
                         ("shards", lambda f=fsync: run_shards(out, args.shard_mb * MB, f, len(files)))]
                for name, step in steps if r % 2 == 0 else steps[::-1]:
                    os.sync()
                    result = step()
                    if isinstance(result, tuple):
                        result, summary = result
                    times[name + suffix].append(result)
        speed = {k: payload / MB / statistics.median(v) for k, v in times.items()}
        best = {k: payload / MB / min(v) for k, v in times.items()}
        rows = [("plain copy (copyfileobj)", "copy", "copy"), ("write_shards(fsync=False)", "shards", "copy"),
                ("plain copy + fsync", "copy+fsync", "copy+fsync"),
                ("write_shards (fsync=True, default)", "shards+fsync", "copy+fsync")]
        print(f"\n{len(files)} samples, {payload / MB:.0f} MiB of clip bytes, {summary['new_shards']} shards of "
              f"<= {args.shard_mb} MiB, {args.repeats} alternating runs, {os.cpu_count()} CPUs\n")
        print(f"| {'method':<36} | {'MiB/s median':>12} | {'x copy':>6} | {'MiB/s best':>10} | {'x copy':>6} |")
        print(f"|{'-' * 38}|{'-' * 13}:|{'-' * 7}:|{'-' * 11}:|{'-' * 7}:|")
        for label, key, base in rows:
            print(f"| {label:<36} | {speed[key]:12.0f} | {speed[key] / speed[base]:6.2f} | {best[key]:10.0f} | "
                  f"{best[key] / best[base]:6.2f} |")
        RESULTS.mkdir(parents=True, exist_ok=True)
        record = {"samples": len(files), "payload_mib": payload / MB, "shards": summary["new_shards"],
                  "shard_mib": args.shard_mb, "repeats": args.repeats, "seconds": times, "mib_per_s_median": speed,
                  "mib_per_s_best": best}
        (RESULTS / "shards.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
