"""The analysis pass: PySceneDetect's content score, flow residuals and the fade/dissolve probe."""

from __future__ import annotations

import numpy as np
from scenedetect import ContentDetector, FrameTimecode, StatsManager

from curation.analyze import ContentScore
from curation.edits import blend_gain
from curation.frames import iter_small_frames


def test_content_score_is_pyscenedetects(sample_data):
    detector = ContentDetector(min_scene_len=1)
    detector.stats_manager = StatsManager()
    ours = ContentScore()
    mine, theirs = [], []
    for frame in iter_small_frames(str(sample_data / "real" / "music_video.mp4"), 90):
        if frame.index >= 200:
            break
        code = FrameTimecode(timecode=frame.index, fps=25.0)
        detector.process_frame(code, frame.bgr)
        mine.append(ours(frame.bgr))
        if frame.index:
            theirs.append(detector.stats_manager.get_metrics(code, ["content_val"])[0])
    np.testing.assert_allclose(mine[1:], theirs, rtol=1e-9, atol=1e-9)
    assert max(mine) > 27  # the excerpt has cuts


def test_blend_gain_tells_a_dissolve_from_a_change():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 255, (27, 48, 3)), rng.integers(0, 255, (27, 48, 3))
    gain, spread = blend_gain(a, 0.3 * a + 0.7 * b, b)
    assert gain > 0.95 and spread > 50
    gain, _ = blend_gain(a, rng.integers(0, 255, (27, 48, 3)), b)
    assert gain < 0.3
    assert blend_gain(a, a, a) == (0.0, 0.0)


def test_prefetching_stops_cleanly(sample_data):
    frames = iter_small_frames(str(sample_data / "synthetic" / "moves_a.mp4"), 90)
    first = [next(frames).index for _ in range(3)]
    frames.close()  # the decode thread must let go
    assert first == [0, 1, 2]
