"""The default detector on the real music video, against the checked reference (tests/data), and the
anchors it must beat: PySceneDetect's default ContentDetector (run here) and TransNetV2 at 0.5 (the F1
recorded when the reference was made; the TransNetV2 path itself is tested in test_transnet.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scenedetect import ContentDetector, detect

from curation.config import CurateConfig
from curation.cuts import detect_cuts
from curation.evaluate import score_cuts

REFERENCE = json.loads((Path(__file__).parent / "data" / "music_video_cuts.json").read_text())


@pytest.fixture(scope="module")
def music_features(music_video_analysis) -> dict:
    assert music_video_analysis.num_frames == REFERENCE["num_frames"]
    return music_video_analysis.features


def score(cuts: list[int]):
    return score_cuts(cuts, REFERENCE["cuts"], tolerance=2, ignore=[tuple(g) for g in REFERENCE["gradual"]])


def test_default_detector_on_the_music_video(music_features):
    cuts, _ = detect_cuts(music_features, CurateConfig().scenes)
    result = score(cuts)
    assert result.f1 >= 0.97, (result.missed, result.spurious)


def test_default_detector_beats_both_anchors(music_features, sample_data):
    ours = score(detect_cuts(music_features, CurateConfig().scenes)[0]).f1
    scenes = detect(str(sample_data / "real" / "music_video.mp4"), ContentDetector())
    pyscenedetect = score([s[0].frame_num for s in scenes[1:]]).f1
    transnet = REFERENCE["anchor_f1"]["transnetv2_0.5"]
    assert ours > pyscenedetect and ours > transnet, (ours, pyscenedetect, transnet)


def test_flash_is_not_a_cut(music_features):
    """Frames the reference checked by eye as flashes, motion or lighting changes get no cut."""
    cuts, _ = detect_cuts(music_features, CurateConfig().scenes)
    not_cuts = [int(f) for f, d in REFERENCE["decisions"].items() if not d.startswith(("cut", "gradual"))]
    assert not_cuts and not [c for c in cuts if c in not_cuts]
