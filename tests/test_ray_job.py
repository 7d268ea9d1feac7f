"""The curate entry point through `ray job submit --working-dir .` against the test run's local head, typed as the
README has it: the head was started, and the job is submitted, after `source .venv/bin/activate` from a PATH
without the venv (the job's `python` is whatever the head's PATH finds)."""

from __future__ import annotations

import re
import shlex
import subprocess

from conftest import REPO, in_venv, read_table


def test_curate_as_a_ray_job(ray_head, tiny_input, tmp_path):
    out = tmp_path / "out"
    submit = ["ray", "job", "submit", "--address", ray_head["dashboard"], "--working-dir", ".", "--", "python", "-m",
              "droplet", "curate", str(tiny_input), str(out), "--no-progress"]
    result = subprocess.run(in_venv(shlex.join(submit)), env=ray_head["clean_env"], capture_output=True, text=True,
                            timeout=900, cwd=REPO)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "succeeded" in result.stdout + result.stderr
    sources = read_table(out, "sources").set_index("source")
    assert sources.loc[str(tiny_input / "not_a_video.mp4"), "reason"] == "not_a_video"
    assert sources.loc[str(tiny_input / "hd_shots.mp4"), "status"] == "ok"
    clips = read_table(out, "clips")
    assert clips.keep.sum() >= 1 and (clips[clips.keep].width == 1280).all()
    assert len(sources) == 2, "the .m4a and the file without extension are no sources"
    log = (out / "curate.log").read_text()
    for name, ext in (("voice.m4a", ".m4a"), ("NOTES", "(none)")):  # every input file is a row or named
        assert f"skipped {tiny_input / name}: extension {ext} is not in limits.extensions" in log
    assert re.search(r"input files skipped: extension \.m4a +1\n", result.stdout + result.stderr)
