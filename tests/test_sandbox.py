"""A hung or crashing decoder costs one source: the child is killed or its death becomes a reason code."""

from __future__ import annotations

import os
import time

import pytest

from curation import reasons
from curation.config import CurateConfig
from curation.probe import probe_source
from curation.reasons import Rejected
from curation.sandbox import run_isolated


def _hang(seconds: float) -> None:
    time.sleep(seconds)


def _crash() -> None:
    os.abort()  # what a segfault in native decoding code looks like to the parent


def _boom() -> None:
    raise RuntimeError("decoder exploded")


def _reject() -> None:
    raise Rejected(reasons.TRUNCATED, "cut short")


def test_result_comes_back():
    assert run_isolated(sum, [1, 2, 3], timeout_s=30) == 6


def test_hang_becomes_timeout():
    """A child that would hang for an hour is killed at its 1 s limit (the bound is that limit plus a minute of
    slack for a loaded machine: this is no speed test)."""
    started = time.monotonic()
    with pytest.raises(Rejected) as info:
        run_isolated(_hang, 3600, timeout_s=1.0)
    assert info.value.reason == reasons.TIMEOUT
    assert time.monotonic() - started < 1.0 + 60


@pytest.mark.parametrize("fn", [_crash, _boom])
def test_crash_and_error_become_decode_error(fn):
    with pytest.raises(Rejected) as info:
        run_isolated(fn, timeout_s=30)
    assert info.value.reason == reasons.DECODE_ERROR


def test_child_reason_is_kept():
    with pytest.raises(Rejected) as info:
        run_isolated(_reject, timeout_s=30)
    assert info.value.reason == reasons.TRUNCATED and info.value.message == "cut short"


def test_probe_under_a_tiny_time_limit_is_a_timeout(sample_data):
    with pytest.raises(Rejected) as info:
        run_isolated(probe_source, str(sample_data / "real" / "music_video.mp4"), CurateConfig(), timeout_s=0.001)
    assert info.value.reason == reasons.TIMEOUT


def test_a_source_past_its_time_limit_costs_only_itself(ray_head, tiny_input, tmp_path):
    """End to end: the analysis child of one source is killed at its limit; the run goes on and exits 0."""
    from conftest import read_table, run_droplet

    config = tmp_path / "tight.yaml"
    config.write_text("timeouts:\n  analyze_base_s: 0.05\n  analyze_per_video_s: 0.0\n")
    out = tmp_path / "out"
    result = run_droplet(["curate", str(tiny_input), str(out), "--config", str(config), "--address",
                          ray_head["address"], "--no-progress"], env=ray_head["env"])
    assert result.returncode == 0, result.stderr[-3000:]
    sources = read_table(out, "sources").set_index("source")
    assert sources.loc[str(tiny_input / "hd_shots.mp4"), "reason"] == "timeout"
    assert sources.loc[str(tiny_input / "not_a_video.mp4"), "reason"] == "not_a_video"
    assert "timeout" in result.stderr
