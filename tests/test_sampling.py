"""The data contract's frame sampling and motion intensity M, exact for known clip lengths."""

from __future__ import annotations

import pytest

from shards.sampling import largest_frame_count, sample_frames, sampling_window


def test_window_drops_ten_percent_each_end():
    assert sampling_window(100) == (10, 89)
    assert sampling_window(61) == (6, 54)
    assert sampling_window(105) == (10, 94)


def test_indices_and_motion_for_known_clips():
    s = sample_frames(61, 25.0, 49)
    assert s.indices == tuple(range(6, 55)) and s.clip_n == 49 and s.motion == 25.0
    s = sample_frames(100, 30.0, 5)  # a=10, b=89: 10, 29.75->30, 49.5->50 (half up), 69.25->69, 89
    assert s.indices == (10, 30, 50, 69, 89)
    assert s.motion == pytest.approx(5 * 30.0 / 80)
    s = sample_frames(250, 24.0, 49)
    assert s.indices[0] == 25 and s.indices[-1] == 224 and len(set(s.indices)) == 49
    assert s.motion == pytest.approx(49 * 24.0 / 200)


def test_largest_frame_count_that_fits():
    counts = [49, 85]
    assert largest_frame_count(60, counts) is None
    assert largest_frame_count(61, counts) == 49
    assert largest_frame_count(104, counts) == 49
    assert largest_frame_count(105, counts) == 85


def test_too_many_frames_is_an_error():
    with pytest.raises(ValueError):
        sample_frames(60, 25.0, 49)
