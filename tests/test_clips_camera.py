"""Clip planning and camera labelling on made-up measurements, where the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from curation.camera import camera_timeline, dominant_label
from curation.clips import _pieces, split_scene
from curation.config import CameraConfig, CurateConfig

FPS = 25.0


def motion(n: int, **per_frame: float) -> dict[str, np.ndarray]:
    """Features of n frames moving at constant per-frame rates (pan/tilt in widths, zoom log, roll deg)."""
    feats = {k: np.full(n, per_frame.get(k, 0.0)) for k in ("pan", "tilt", "zoom", "roll")}
    feats["inliers"] = np.ones(n)
    return feats


@pytest.mark.parametrize("move, value, label", [
    ("pan", 0.004, "pan_right"), ("pan", -0.004, "pan_left"), ("tilt", 0.004, "tilt_up"),
    ("tilt", -0.004, "tilt_down"), ("zoom", 0.005, "zoom_in"), ("zoom", -0.005, "zoom_out"),
    ("roll", 0.3, "roll_cw"), ("roll", -0.3, "roll_ccw"), ("pan", 0.0002, "static"),
])
def test_single_moves_get_their_label(move, value, label):
    segments, scores = camera_timeline(motion(100, **{move: value}), np.zeros(100, bool), FPS, CameraConfig())
    assert [s.label for s in segments] == [label]
    assert segments[0].confidence == 1.0 and dominant_label(segments) == label
    assert (scores["camera_motion_score"] > 0.015) == (label != "static")


def test_timeline_follows_a_pan_that_turns_into_a_zoom():
    feats = motion(150, pan=0.004)
    feats["pan"][75:] = 0.0
    feats["zoom"][75:] = 0.006
    segments, _ = camera_timeline(feats, np.zeros(150, bool), FPS, CameraConfig(), start_s=10.0)
    assert [s.label for s in segments] == ["pan_right", "zoom_in"]
    assert segments[0].start_s == 10.0 and abs(segments[1].start_s - 13.0) < 0.2
    assert segments[0].speed == pytest.approx(0.1, rel=0.01)  # 0.004 widths/frame at 25 fps


def test_jitter_is_shaky_and_edits_are_edited():
    rng = np.random.default_rng(0)
    feats = motion(100)
    feats["pan"] = rng.normal(0, 0.008, 100)
    feats["tilt"] = rng.normal(0, 0.008, 100)
    segments, _ = camera_timeline(feats, np.zeros(100, bool), FPS, CameraConfig())
    assert dominant_label(segments) == "shaky"
    edited = np.zeros(100, bool)
    edited[30:70] = True
    segments, _ = camera_timeline(motion(100, pan=0.004), edited, FPS, CameraConfig())
    assert [s.label for s in segments] == ["pan_right", "edited", "pan_right"]
    assert dominant_label(segments) == "edited"


def test_long_scenes_are_cut_into_equal_pieces():
    assert _pieces(0, 500, 61, 250) == [(0, 250), (250, 500)]
    assert _pieces(0, 600, 61, 250) == [(0, 200), (200, 400), (400, 600)]
    assert all(61 <= b - a <= 250 for a, b in _pieces(7, 1007, 61, 250))


def test_scene_is_trimmed_and_split_around_an_edit():
    cfg = CurateConfig()
    edited = np.zeros(400, bool)
    edited[200:230] = True
    ranges = split_scene(100, 400, edited, cfg)
    assert ranges == [(102, 200, None), (200, 230, "edited"), (230, 398, None)]
    assert split_scene(0, 50, np.zeros(50, bool), cfg) == [(2, 48, "too_short")]
