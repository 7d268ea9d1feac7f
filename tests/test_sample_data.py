"""The sample inputs are what truth.json says they are (decoded and measured, not just listed)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from droplet.sample_data import make_long_video
from droplet.sample_data.awkward import count_decodable_frames

LABELS = {"static", "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out", "roll_cw",
          "roll_ccw", "shaky", "edited"}


@pytest.fixture(scope="module")
def sample(sample_data: Path) -> tuple[Path, dict]:
    """The test run's sample data (conftest), with its truth."""
    return sample_data, json.loads((sample_data / "truth.json").read_text(encoding="utf-8"))


def luma_frames(path: Path, keep: set[int] | None = None, size: tuple[int, int] | None = None) -> dict:
    """Decode-order frame index -> luma plane (float32), optionally only ``keep`` and resized to ``size``."""
    frames = {}
    with av.open(str(path)) as container:
        last = max(keep) if keep else None
        for i, frame in enumerate(container.decode(video=0)):
            if last is not None and i > last:
                break
            if keep is not None and i not in keep:
                continue
            y = frame.to_ndarray(format="yuv420p")[: frame.height].astype(np.float32)
            frames[i] = cv2.resize(y, size, interpolation=cv2.INTER_AREA) if size else y
    return frames


def similarity(prev: np.ndarray, cur: np.ndarray) -> tuple[float, float, float, float]:
    """Scene motion prev -> cur on screen: centre shift (dx, dy), scale, angle (deg, y-down image coords).

    Features are tracked with pyramidal Lucas-Kanade and fitted by cv2.estimateAffinePartial2D, whose matrix
    is [[s cos a, -s sin a, tx], [s sin a, s cos a, ty]] in image coordinates (x right, y DOWN). There a
    positive a turns the x axis towards +y, i.e. down: a positive angle is a CLOCKWISE turn as a viewer sees
    it, and counter-clockwise on-screen rotation gives a negative angle.
    """
    a8, b8 = (np.clip(x, 0, 255).astype(np.uint8) for x in (prev, cur))
    pts = cv2.goodFeaturesToTrack(a8, maxCorners=600, qualityLevel=0.005, minDistance=7, blockSize=7)
    lk = {"winSize": (21, 21), "maxLevel": 3}
    nxt, st, _ = cv2.calcOpticalFlowPyrLK(a8, b8, pts, None, **lk)
    back, st_back, _ = cv2.calcOpticalFlowPyrLK(b8, a8, nxt, None, **lk)
    ok = (st.ravel() == 1) & (st_back.ravel() == 1) & (np.linalg.norm((back - pts)[:, 0], axis=1) < 0.3)
    assert ok.sum() > 50
    mat, _ = cv2.estimateAffinePartial2D(pts[ok], nxt[ok], method=cv2.LMEDS)
    h, w = prev.shape
    centre = np.array([(w - 1) / 2, (h - 1) / 2, 1.0])
    dx, dy = mat @ centre - centre[:2]
    scale = math.hypot(mat[0, 0], mat[1, 0])
    return float(dx), float(dy), float(scale), math.degrees(math.atan2(mat[1, 0], mat[0, 0]))


def phase_shift(prev: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """Content displacement prev -> cur (Hanning-windowed phase correlation; +dx right, +dy down).

    Copies first: with a window, cv2.phaseCorrelate multiplies DFT-sized inputs (640x360) in place.
    """
    window = cv2.createHanningWindow(prev.shape[::-1], cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(prev.astype(np.float32), cur.astype(np.float32), window)
    return float(dx), float(dy)


def camera_shots(truth: dict):
    for rel, info in truth["synthetic"].items():
        for shot in info["shots"]:
            if shot["kind"] == "camera":
                yield rel, shot


# --------------------------------------------------------------------------------------------- the files


def test_all_files_written_and_truth_saved(sample):
    out, truth = sample
    assert json.loads((out / "truth.json").read_text(encoding="utf-8")) == truth
    for rel in list(truth["inputs"]) + list(truth["synthetic"]) + list(truth["real"]):
        assert (out / rel).is_file(), rel
    assert set(truth["synthetic"]) >= {"synthetic/moves_a.mp4", "synthetic/hd_shots.mp4"}
    assert (out / "awkward" / "café scène – ünï 1.mp4").is_file()
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*.mp4")}
    assert on_disk == set(truth["inputs"])


def test_truth_shots_are_consistent(sample):
    _, truth = sample
    for info in truth["synthetic"].values():
        shots = info["shots"]
        assert shots[0]["start_frame"] == 0 and shots[-1]["end_frame"] == info["num_frames"]
        assert info["cuts"] == [s["start_frame"] for s in shots[1:]]
        for a, b in zip(shots, shots[1:], strict=False):
            assert a["end_frame"] == b["start_frame"]
        for s in shots:
            assert s["label"] in LABELS
            length = s["end_frame"] - s["start_frame"]
            assert 3 <= length <= 12 if s["kind"] == "short" else 80 <= length <= 100
            if "edit_span" in s:  # no gradual change touches a hard cut
                assert s["start_frame"] + 10 <= s["edit_span"][0] < s["edit_span"][1] <= s["end_frame"] - 10
    moves = {(s["label"], s["speed"]) for _, s in camera_shots(truth)}
    for label in LABELS - {"static", "shaky", "edited"}:
        assert {(label, "slow"), (label, "fast")} <= moves
    kinds = [s["kind"] for info in truth["synthetic"].values() for s in info["shots"]]
    assert {"static", "object", "shaky", "fade", "dissolve", "short", "flash", "reframe"} <= set(kinds)
    similar = [c for info in truth["synthetic"].values() for c in info["similar_cuts"]]
    assert len(similar) >= 3


def test_synthetic_videos_decode_to_truth(sample):
    out, truth = sample
    for rel, info in truth["synthetic"].items():
        with av.open(str(out / rel)) as container:
            stream = container.streams.video[0]
            assert (stream.width, stream.height) == (info["width"], info["height"])
            assert stream.average_rate == info["fps"] == 25
            assert stream.codec_context.name == "h264" and stream.format.name == "yuv420p"
            pts = [f.pts for f in container.decode(stream)]
        assert len(pts) == info["num_frames"], rel
        steps = np.diff(sorted(pts))
        assert len(set(steps.tolist())) == 1, f"{rel} is not constant frame rate"


def test_hard_cuts_spike_frame_difference(sample):
    out, truth = sample
    for rel, info in truth["synthetic"].items():
        frames = luma_frames(out / rel, size=(160, 90))
        diff = np.array([np.abs(frames[i] - frames[i - 1]).mean() for i in range(1, len(frames))])
        diff = np.concatenate([[0.0], diff])  # diff[i]: frame i-1 -> i
        others = set(info["cuts"]) | {f for s in info["shots"] if "flash_span" in s
                                      for f in range(s["flash_span"][0], s["flash_span"][1] + 1)}
        for cut in info["cuts"]:
            near = [i for i in range(cut - 8, cut + 9) if i != cut and i not in others and 0 < i < len(diff)]
            around = diff[near]
            assert diff[cut] > 2.0 * around.max() + 1.0, (rel, cut, diff[cut], around.max())


# ------------------------------------------------------------------------------- camera-move conventions


def test_pan_and_tilt_directions_by_phase_correlation(sample):
    out, truth = sample
    # calibration: the helper reports where the content went (np.roll by +3 along x moves it right)
    rng = np.random.default_rng(0)
    probe = cv2.GaussianBlur(rng.random((90, 160)).astype(np.float32), (0, 0), 2)
    assert phase_shift(probe, np.roll(probe, 3, axis=1)) == pytest.approx((3.0, 0.0), abs=0.05)

    checked = set()
    step = 2  # every pan/tilt rate (1.5, 6, 1, 4 px/frame) moves a whole number of pixels in 2 frames
    for rel, shot in camera_shots(truth):
        if shot["label"].split("_")[0] not in ("pan", "tilt"):
            continue
        mid = (shot["start_frame"] + shot["end_frame"]) // 2
        frames = luma_frames(out / rel, keep={mid, mid + step})
        dx, dy = phase_shift(frames[mid], frames[mid + step])
        want = shot["screen_motion"]
        expected = (step * want["dx"], step * want["dy"])
        assert (dx, dy) == pytest.approx(expected, abs=0.1), (rel, shot["label"], dx, dy)
        if shot["label"] == "pan_right":
            assert dx < -2  # camera turns right: the scene moves LEFT
        if shot["label"] == "tilt_up":
            assert dy > 1  # camera points higher: the scene moves DOWN (image y grows downwards)
        checked.add(shot["label"])
    assert checked == {"pan_left", "pan_right", "tilt_up", "tilt_down"}


def test_zoom_and_roll_rates_and_signs(sample):
    out, truth = sample
    checked = set()
    for rel, shot in camera_shots(truth):
        family = shot["label"].split("_")[0]
        if family not in ("zoom", "roll"):
            continue
        step = 4
        mid = (shot["start_frame"] + shot["end_frame"]) // 2 - step // 2
        frames = luma_frames(out / rel, keep={mid, mid + step})
        dx, dy, scale, angle = similarity(frames[mid], frames[mid + step])
        want = shot["screen_motion"]
        assert abs(dx) < 0.15 and abs(dy) < 0.15, (rel, shot["label"], dx, dy)  # about the frame centre
        assert scale == pytest.approx(want["scale"] ** step, abs=0.001), (rel, shot["label"], scale)
        # image-coordinate angle is clockwise-positive; truth's rotation_ccw_deg is counter-clockwise-positive
        assert -angle == pytest.approx(want["rotation_ccw_deg"] * step, abs=0.03), (rel, shot["label"], angle)
        if shot["label"] == "zoom_in":
            assert scale > 1.0  # the scene grows
        if shot["label"] == "roll_cw":
            assert angle < 0  # camera turns clockwise: the scene turns COUNTER-clockwise on screen
        checked.add(shot["label"])
    assert checked == {"zoom_in", "zoom_out", "roll_cw", "roll_ccw"}


def test_static_object_and_shaky_shots(sample):
    out, truth = sample
    for rel, info in truth["synthetic"].items():
        for shot in info["shots"]:
            if shot["kind"] not in ("static", "object", "shaky"):
                continue
            a, b = shot["start_frame"] + 20, shot["start_frame"] + 21
            frames = luma_frames(out / rel, keep={a, b})
            changed = np.abs(frames[b] - frames[a]) > 8
            if shot["kind"] == "static":
                assert shot["expect_keep"] is False and shot["expect_reason"] == "static"
                assert changed.mean() < 0.001
            elif shot["kind"] == "object":
                assert shot["label"] == "static" and shot["expect_keep"] is True
                assert 0.002 < changed.mean() < shot["object"]["area_fraction"]  # only the object moves
            else:
                dx, dy, _, _ = similarity(frames[a], frames[b])
                offsets = np.array(shot["jitter"]["camera_offsets_px_deg"])
                assert np.abs(offsets.mean(axis=0)).max() < 1e-3  # zero mean: no drift
                # the camera moving by +d on the canvas moves the scene by -d on screen
                want = -(offsets[21, :2] - offsets[20, :2])
                assert dx == pytest.approx(want[0], abs=0.3) and dy == pytest.approx(want[1], abs=0.3)


def test_fade_reaches_black_and_returns(sample):
    out, truth = sample
    for rel, info in truth["synthetic"].items():
        for shot in info["shots"]:
            if shot["kind"] != "fade":
                continue
            assert shot["label"] == "edited" and shot["expect_reason"] == "edited"
            frames = luma_frames(out / rel, keep=set(range(shot["start_frame"], shot["end_frame"])))
            mean = {i: float(f.mean()) for i, f in frames.items()}
            b0, b1 = shot["black"]
            assert all(mean[i] < 17.5 for i in range(b0, b1))  # limited-range black is Y=16
            out0, out1 = shot["fade_out"]
            assert all(mean[i] >= mean[i + 1] - 0.5 for i in range(out0, out1 - 1))
            assert mean[out0 - 1] > 60 and mean[shot["end_frame"] - 1] > 60


def test_contentdetector_misses_similar_cuts_only(sample):
    from scenedetect import ContentDetector, detect

    out, truth = sample
    for rel, info in truth["synthetic"].items():
        if not info["similar_cuts"]:
            continue
        found = [scene[0].frame_num for scene in detect(str(out / rel), ContentDetector())][1:]
        for cut in info["cuts"]:
            hit = any(abs(f - cut) <= 1 for f in found)
            assert hit is (cut not in info["similar_cuts"]), (rel, cut, found)


# ------------------------------------------------------------------------------- awkward and broken


def test_rotated_file_displays_landscape(sample):
    out, truth = sample
    info = truth["inputs"]["awkward/rotated_90.mp4"]
    path = out / "awkward/rotated_90.mp4"
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (info["stored_width"], info["stored_height"]) == (360, 640)
        stored = [f for _, f in zip(range(2), container.decode(stream), strict=False)]
    assert stored[0].rotation == info["rotation"] == -90
    # OpenCV's FFmpeg backend applies the display matrix as ffmpeg/players do
    cap = cv2.VideoCapture(str(path))
    ok0, disp0 = cap.read()
    ok1, disp1 = cap.read()
    cap.release()
    assert ok0 and ok1 and disp0.shape == (info["height"], info["width"], 3) == (360, 640, 3)
    # PyAV's rotation is counter-clockwise degrees: np.rot90 (also counter-clockwise) by rotation/90 shows it
    upright = np.rot90(stored[0].to_ndarray(format="bgr24"), k=stored[0].rotation // 90)
    assert np.abs(upright.astype(np.float32) - disp0).mean() < 2.0
    dx, dy = phase_shift(*(cv2.cvtColor(d, cv2.COLOR_BGR2GRAY) for d in (disp0, disp1)))
    assert info["camera_motion"] == "pan_right" and (dx, dy) == pytest.approx((-3.0, 0.0), abs=0.1)


def test_vfr_file_has_irregular_durations(sample):
    out, truth = sample
    info = truth["inputs"]["awkward/vfr.mp4"]
    with av.open(str(out / "awkward/vfr.mp4")) as container:
        stream = container.streams.video[0]
        times = sorted(float(f.pts * f.time_base) for f in container.decode(stream))
    durations = np.round(np.diff(times) * 1000).astype(int)
    assert len(times) == info["num_frames"]
    assert len(set(durations.tolist())) >= 3
    assert durations.tolist() == info["frame_durations_ms"][:-1]
    assert info["avg_fps"] == pytest.approx(25, abs=1.5) and info["vfr"] is True


def test_odd_name_and_damaged_prefix(sample):
    out, truth = sample
    odd = out / "awkward" / "café scène – ünï 1.mp4"
    assert count_decodable_frames(odd) == truth["inputs"]["awkward/café scène – ünï 1.mp4"]["num_frames"]
    info = truth["inputs"]["awkward/damaged_prefix.mp4"]
    path = out / "awkward/damaged_prefix.mp4"
    assert path.read_bytes()[4:8] == b"ftyp" and b"moov" in path.read_bytes()[:4096]  # index up front
    assert count_decodable_frames(path) == info["prefix_frames"]
    assert 3 * 25 < info["prefix_frames"] < info["original_frames"]


def test_broken_files_are_what_they_claim(sample):
    out, truth = sample
    broken = {k: v for k, v in truth["inputs"].items() if k.startswith("broken/")}
    assert {v["reason"] for v in broken.values()} == {"empty_file", "not_a_video", "truncated",
                                                      "no_video_stream", "too_short"}
    assert all(v["status"] == "rejected" for v in broken.values())
    assert (out / "broken/empty.mp4").stat().st_size == 0
    with pytest.raises(av.error.FFmpegError):
        av.open(str(out / "broken/not_a_video.mp4"))
    assert count_decodable_frames(out / "broken/truncated_half.mp4") == 0
    data = (out / "broken/truncated_half.mp4").read_bytes()
    assert data[4:8] == b"ftyp" and b"moov" not in data
    with av.open(str(out / "broken/audio_only.mp4")) as container:
        assert not container.streams.video and container.streams.audio[0].codec_context.name == "aac"
    assert count_decodable_frames(out / "broken/one_frame.mp4") == 1


def test_real_music_video_is_the_wheels_file(sample):
    out, truth = sample
    info = truth["real"]["real/music_video.mp4"]
    data = (out / "real/music_video.mp4").read_bytes()
    assert hashlib.sha256(data).hexdigest() == info["sha256"]
    assert (info["width"], info["height"], info["fps"]) == (160, 90, 25.0)
    assert 210 < info["duration_s"] < 214


def test_deterministic_bytes(tmp_path, sample):
    from droplet.sample_data.broken import write_broken
    from droplet.sample_data.synthetic import synthetic_plan, write_video

    out, truth = sample
    width, height, shots = synthetic_plan()["moves_c.mp4"]
    again = write_video(tmp_path / "moves_c.mp4", width, height, shots)
    assert again == truth["synthetic"]["synthetic/moves_c.mp4"]
    assert (tmp_path / "moves_c.mp4").read_bytes() == (out / "synthetic/moves_c.mp4").read_bytes()
    write_broken(tmp_path)
    for name in ("truncated_half.mp4", "audio_only.mp4", "one_frame.mp4"):
        assert (tmp_path / "broken" / name).read_bytes() == (out / "broken" / name).read_bytes(), name


def test_make_long_video_streams_with_cuts(tmp_path):
    path = make_long_video(tmp_path / "long.mp4", seconds=6, width=320, height=180)
    frames = luma_frames(path, size=(160, 90))
    assert len(frames) == 150
    diff = [np.abs(frames[i] - frames[i - 1]).mean() for i in range(1, 150)]
    assert int(np.argmax(diff)) + 1 == 100  # a hard cut every 4 s
