"""Quality-stage benchmark: clips/s of the technical-quality and OCR measures on CPU, beside decoding alone.

Input: a folder of clip files (`--clips OUT/clips`), or by default `--count` clips rendered the way
`droplet sample-data` renders its shots (slow camera moves over the sample photo and procedural textures;
three in four at 640x360, one in four at 1280x720; 4 s at 25 fps, H.264 crf 18, a keyframe every second, as
extraction writes clips), cached in bench/results/quality_clips.
Rows, each over the same clips in this one process: full decode (PyAV, every frame: what any stage that reads
whole clips pays), `sample_frames` alone, quality (sampling + measures + judgement), OCR (sampling + PP-OCR
on `OcrConfig.frames` frames), and extraction of a 1280x720 clip with and without black-border cropping
(bars absent: the cost of looking; bars present: the cost of cropping).

    python bench/quality_bench.py [--clips DIR] [--count 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curation.clip_sample import sample_frames  # noqa: E402
from curation.config import ExtractConfig  # noqa: E402
from curation.extract import ClipSpec, extract_clip  # noqa: E402
from curation.ocr import OcrConfig, TextOverlayReader  # noqa: E402
from curation.quality import QualityConfig, judge_quality, measure_quality  # noqa: E402
from droplet.sample_data.encode import H264Writer  # noqa: E402
from droplet.sample_data.synthetic import camera_frames  # noqa: E402

RESULTS = REPO / "bench" / "results"
MOVES = {"pan_right": 1.5, "tilt_up": 1.0, "zoom_in": 0.3, "pan_left": 6.0, "roll_cw": 0.15, "static": 0.0}
FRAMES, FPS = 100, 25


def rendered_clips(count: int) -> list[Path]:
    folder = RESULTS / "quality_clips"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        width, height = (1280, 720) if i % 4 == 3 else (640, 360)
        path = folder / f"clip{i:03d}_{width}x{height}.mp4"
        if not path.exists():
            move = list(MOVES)[i % len(MOVES)]
            frames = camera_frames(move, FRAMES, MOVES[move], 100 + i, width, height,
                                   style="photo" if i % 2 == 0 else "procedural")
            tmp = path.with_suffix(".tmp.mp4")
            with H264Writer(tmp, width, height, fps=FPS, crf=18, preset="veryfast", gop=FPS) as writer:
                for frame in frames:
                    writer.write(frame)
            tmp.replace(path)
        paths.append(path)
    return paths


def decode_all(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def timed(fn, paths: list[Path], repeats: int) -> float:
    """Median over `repeats` of the seconds `fn` takes over every path."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            fn(path)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def extraction_rows(repeats: int) -> dict:
    """Seconds to extract 4 s of a 1280x720 source, crop off / on, without and with letterbox bars; the four
    runs interleaved `repeats` times (a busy machine then slows them alike), min and median reported."""
    folder = Path(tempfile.mkdtemp(prefix="quality-bench-"))
    frames = list(camera_frames("pan_right", FRAMES, 1.5, 7, 1280, 720, style="photo"))
    sources = {}
    for bars in (False, True):
        sources[bars] = folder / f"src_{bars}.mp4"
        with H264Writer(sources[bars], 1280, 720, fps=FPS, gop=FPS) as writer:
            for frame in frames:
                if bars:
                    frame = frame.copy()
                    frame[:88], frame[-88:] = 0, 0
                writer.write(frame)
    runs: dict[tuple[bool, bool], list[float]] = {(b, c): [] for b in (False, True) for c in (False, True)}
    crops = {}
    for r in range(repeats):
        for bars, crop in runs:
            out = folder / f"clip_{bars}_{crop}_{r}.mp4"
            spec = ClipSpec(source=str(sources[bars]), start_frame=0, end_frame=FRAMES, start_pts=0, start_s=0.0,
                            end_s=FRAMES / FPS, fps=FPS, rotation=0, out_path=str(out))
            start = time.perf_counter()
            crops[bars, crop] = extract_clip(spec, ExtractConfig(crop_black_borders=crop))["crop"]
            runs[bars, crop].append(time.perf_counter() - start)
    return {f"extract 1280x720 4 s, bars={b}, crop={c}": {"min_s": min(v), "median_s": statistics.median(v),
                                                          "crop": crops[b, c]} for (b, c), v in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", help="a folder of clip files (default: render sample-data-like clips)")
    parser.add_argument("--count", type=int, default=20, help="clips to use")
    parser.add_argument("--repeats", type=int, default=3, help="runs per row (the median is reported; "
                        "extraction: 2 more)")
    parser.add_argument("--skip-extract", action="store_true", help="skip the extraction rows")
    args = parser.parse_args()

    paths = sorted(Path(args.clips).glob("*.mp4"))[:args.count] if args.clips else rendered_clips(args.count)
    qcfg, ocfg = QualityConfig(), OcrConfig()
    reader = TextOverlayReader(ocfg)
    verdicts: dict[str, str | None] = {}
    texts: dict[str, float] = {}

    def quality(path: Path) -> None:
        frames = sample_frames(str(path), qcfg.frames)
        height, width = frames[0].shape[:2]
        verdicts[path.name] = judge_quality(measure_quality(frames), width, height, qcfg)

    def ocr(path: Path) -> None:
        texts[path.name] = reader(sample_frames(str(path), ocfg.frames, max_side=ocfg.max_side))[0]

    frames_total = sum(decode_all(p) for p in paths)  # also warms the file cache
    n = len(paths)
    rows = {
        "decode (every frame)": timed(decode_all, paths, args.repeats),
        f"sample_frames ({qcfg.frames} frames)": timed(lambda p: sample_frames(str(p), qcfg.frames), paths,
                                                      args.repeats),
        f"quality ({qcfg.frames} frames)": timed(quality, paths, args.repeats),
        f"ocr ({ocfg.frames} frames at <= {ocfg.max_side} px)": timed(ocr, paths, max(1, args.repeats - 2)),
    }
    decode = rows["decode (every frame)"]
    print(f"\n{n} clips, {frames_total} frames, {os.cpu_count()} CPUs "
          f"(sizes: {sorted({'x'.join(map(str, sample_frames(str(p), 1)[0].shape[1::-1])) for p in paths})})")
    print(f"  {'row':<40} {'clips/s':>8} {'s/clip':>8} {'vs decode':>10}")
    for name, seconds in rows.items():
        print(f"  {name:<40} {n / seconds:8.2f} {seconds / n:8.3f} {decode / seconds:9.2f}x")
    rejected = {k: v for k, v in verdicts.items() if v}
    overlays = {k: round(v, 4) for k, v in texts.items() if v > ocfg.max_text_area}
    print(f"  low_quality: {len(rejected)} of {n} {rejected or ''}; text_overlay: {len(overlays)} of {n} "
          f"{overlays or ''}; largest text area {max(texts.values(), default=0):.4f}")
    result = {"clips": n, "frames": frames_total, "cpus": os.cpu_count(),
              "rows": {k: {"s": v, "clips_per_s": n / v, "vs_decode": decode / v} for k, v in rows.items()},
              "low_quality": rejected, "text_overlay": overlays}
    if not args.skip_extract:
        extract = extraction_rows(args.repeats + 2)
        for name, row in extract.items():
            print(f"  {name:<44} min {row['min_s']:.3f} s, median {row['median_s']:.3f} s, crop {row['crop']}")
        result["extract"] = extract
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality_bench.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
