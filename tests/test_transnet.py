"""`scenes.detector: transnetv2`: TransNetV2's bundled weights in a Ray actor, on a 300-frame excerpt of the
music video (a full run takes about a minute on 2 cores)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from conftest import read_table, run_droplet

from curation.config import ExtractConfig
from curation.evaluate import score_cuts
from curation.extract import ClipSpec, extract_clip
from curation.transnet import cuts_from_probabilities

REFERENCE = json.loads((Path(__file__).parent / "data" / "music_video_cuts.json").read_text())


def test_cuts_from_probabilities_follow_the_package():
    probs = [0.0, 0.1, 0.9, 0.95, 0.2, 0.0, 0.7, 0.1]
    assert cuts_from_probabilities(__import__("numpy").array(probs), 0.5) == [4, 7]


def test_transnetv2_detector_through_the_pipeline(sample_data, ray_head, tmp_path):
    excerpt = tmp_path / "in" / "excerpt.mp4"
    excerpt.parent.mkdir()
    spec = ClipSpec(source=str(sample_data / "real" / "music_video.mp4"), start_frame=0, end_frame=300, start_pts=0,
                    start_s=0.0, end_s=12.0, fps=25.0, rotation=0, out_path=str(excerpt))
    assert extract_clip(spec, ExtractConfig())["num_frames"] == 300
    out = tmp_path / "out"
    result = run_droplet(["curate", str(excerpt.parent), str(out), "--detector", "transnetv2",
                          "--address", ray_head["address"], "--no-progress"], env=ray_head["env"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TransNetV2Stage" in result.stderr  # the actor stage ran
    scenes = read_table(out, "scenes").sort_values("start_frame")
    cuts = scenes.start_frame.tolist()[1:]
    reference = [c for c in REFERENCE["cuts"] if c < 300]
    score = score_cuts(cuts, reference, tolerance=2)
    assert score.precision == 1.0 and score.recall >= 0.6, (cuts, reference)
    assert scenes.score.max() > 1.0  # probability / threshold at the cuts
    assert not torch.are_deterministic_algorithms_enabled()  # the model never touched this process
