"""The whole chain as `ray job submit` jobs on the two-node test cluster, typed as the README has it (the head was
started, and the jobs are submitted, after `source .venv/bin/activate` from a PATH without the venv: the job's
`python` is whatever the head's PATH finds): curate -> caption (+ shards) -> Ray Train with two workers on
different nodes (`--placement strict-spread`), OUT on a path both nodes see."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

from conftest import REPO, in_venv, read_table

from droplet.sample_data.synthetic import _cam, write_video


def submit(cluster: dict, *command: str) -> str:
    """`ray job submit` as the README types it: after `source .venv/bin/activate`, from a PATH without the venv."""
    cmd = ["ray", "job", "submit", "--address", cluster["dashboard"], "--working-dir", ".", "--", *command]
    result = subprocess.run(in_venv(shlex.join(cmd)), env=cluster["clean_env"], capture_output=True, text=True,
                            timeout=900, cwd=REPO)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "succeeded" in output, output[-4000:]
    return output


def test_curate_caption_and_train_on_two_nodes_as_ray_jobs(two_nodes, sample_data, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_video(inputs / "two_shots.mp4", 320, 180, [_cam("pan_left", "slow", 90, 7), _cam("zoom_in", "slow", 90, 8)])
    shutil.copy(sample_data / "broken" / "not_a_video.mp4", inputs / "not_a_video.mp4")
    shutil.copy(sample_data / "broken" / "audio_only.mp4", inputs / "voice.m4a")
    (inputs / "NOTES").write_text("not a video\n")
    out = tmp_path / "out"
    output = submit(two_nodes, "python", "-m", "droplet", "curate", str(inputs), str(out), "--no-progress")
    sources = read_table(out, "sources").set_index("source")
    assert len(sources) == 2, "the .m4a and the file without extension are no sources"
    assert sources.loc[str(inputs / "not_a_video.mp4"), "reason"] == "not_a_video"
    assert sources.loc[str(inputs / "two_shots.mp4"), "status"] == "ok"
    log = (out / "curate.log").read_text()
    for name, ext in (("voice.m4a", ".m4a"), ("NOTES", "(none)")):  # every input file is a row or named
        assert f"skipped {inputs / name}: extension {ext} is not in limits.extensions" in log
    assert re.search(r"input files skipped: extension \.m4a +1\n", output)
    assert read_table(out, "clips").keep.sum() == 2
    submit(two_nodes, "python", "-m", "droplet", "caption", str(out))
    assert list((out / "shards").glob("*.tar"))
    output = submit(two_nodes, "python", "-m", "train.ray_launch", "--config", "configs/train-tiny.yaml",
                    "--data", str(out), "--name", "chain", "--storage-path", str(tmp_path / "store"),
                    "--num-workers", "2", "--placement", "strict-spread", "--max-steps", "1")
    nodes = dict(re.findall(r"rank (\d) of 2 on node (\w+)", output))
    assert set(nodes) == {"0", "1"} and nodes["0"] != nodes["1"], output[-4000:]
    assert re.search(r"last metrics \{.*'loss': ", output), output[-4000:]
