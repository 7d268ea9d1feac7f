"""Kill `droplet curate` mid-run (embedded local Ray) and run it again on the same OUT: it finishes the
rest, redoes nothing that was done, and ends with what an uninterrupted run gives."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import psutil
from conftest import PYTHON, REPO, kill_tree, read_table, run_droplet


def _snapshot(folder):
    """Finished files (not the temp files a killed writer leaves) and their modification times."""
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*") if p.is_file() and ".tmp-" not in p.name}


def test_kill_and_resume(sample_data, curated, tmp_path):
    inputs = tmp_path / "in"
    shutil.copytree(sample_data / "synthetic", inputs)
    total = len(list(inputs.glob("*.mp4")))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([PYTHON, "-m", "droplet", "curate", str(inputs), str(out), "--no-progress"], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    commits = out / "_work" / "sources"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(commits.glob("*.json"))) < 1 and proc.poll() is None:
        time.sleep(0.2)
    family = [proc.pid, *(p.pid for p in psutil.Process(proc.pid).children(recursive=True))]
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in family:
        kill_tree(pid, timeout=5)
    done_before = _snapshot(commits)
    clips_before = _snapshot(out / "clips")
    assert 1 <= len(done_before) < total, "killed after the first source committed, before the last"
    assert not (out / "clips.parquet").exists()

    result = run_droplet(["curate", str(inputs), str(out), "--no-progress"], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(done_before)} already done (skipped)" in result.stderr
    after = _snapshot(commits)
    assert len(after) == total
    assert all(after[name] == stamp for name, stamp in done_before.items()), "a committed source was redone"
    clips_after = _snapshot(out / "clips")
    assert all(clips_after[name] == stamp for name, stamp in clips_before.items()), "a written clip was redone"
    assert not [p for p in (out / "clips").iterdir() if "tmp" in p.name]

    clips = read_table(out, "clips")
    assert clips.clip_id.is_unique
    reference = curated["clips"]
    expected = reference[reference.source.str.contains("/synthetic/")]
    assert sorted(clips.clip_id) == sorted(expected.clip_id)
    assert sorted(clips[clips.keep].clip_id) == sorted(expected[expected.keep].clip_id)

    again = run_droplet(["curate", str(inputs), str(out), "--no-progress"], env=env)
    assert again.returncode == 0 and f"{total} already done (skipped), 0 to do" in again.stderr
    assert _snapshot(out / "clips") == clips_after
