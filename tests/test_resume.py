"""Kill `droplet curate` mid-run (the local executor, 2 CPUs) at a fixed point — right after its first source
is committed — and run it again on the same OUT: it finishes the rest, redoes nothing that was done, and ends
with exactly what an uninterrupted run gives (clip rows and clip file bytes). The uninterrupted run is Ray
Data's, on the test run's Ray head: the two executors agree row for row and byte for byte."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
from conftest import PYTHON, REPO, read_table, run_droplet

# The fault hook: the first commit is written, then the driver kills every process it started (its decoding
# children) and itself, as a power cut would. No timer, so it is the same on any machine.
CHILD = """
import os, signal, sys
import psutil
from curation.store import OutStore

commit = OutStore.commit

def commit_then_die(self, key, data):
    commit(self, key, data)
    for child in psutil.Process().children(recursive=True):
        child.kill()
    os.kill(os.getpid(), signal.SIGKILL)

OutStore.commit = commit_then_die
from droplet.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _snapshot(folder):
    """Finished files (not the temp files a killed writer leaves) and their modification times."""
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*") if p.is_file() and ".tmp-" not in p.name}


def _hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.mp4"))}


def _comparable(clips_parquet, clip_ids) -> list[dict]:
    """The rows of `clip_ids` without the source path (the inputs here are copies), in clip_id order."""
    rows = [r for r in pq.read_table(clips_parquet).to_pylist() if r["clip_id"] in set(clip_ids)]
    return sorted(({k: v for k, v in r.items() if k != "source"} for r in rows), key=lambda r: r["clip_id"])


def test_kill_and_resume(sample_data, curated, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("moves_a.mp4", "short_e.mp4", "moves_b.mp4"):  # three of the synthetic sources: a short run
        shutil.copy(sample_data / "synthetic" / name, inputs / name)
    total = len(list(inputs.glob("*.mp4")))
    out = tmp_path / "out"
    config = tmp_path / "curate.yaml"
    config.write_text("ray:\n  num_cpus: 2\n  progress_bars: false\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    args = ["curate", str(inputs), str(out), "--config", str(config), "--no-progress"]
    proc = subprocess.run([PYTHON, "-c", CHILD, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600, start_new_session=True)
    assert proc.returncode == -9, proc.stderr[-3000:]
    commits = out / "_work" / "sources"
    done_before = _snapshot(commits)
    clips_before = _snapshot(out / "clips")
    assert len(done_before) == 1 < total, "killed right after the first commit"
    assert not (out / "clips.parquet").exists()

    result = run_droplet(args, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 already done (skipped)" in result.stderr
    after = _snapshot(commits)
    assert len(after) == total
    assert all(after[name] == stamp for name, stamp in done_before.items()), "a committed source was redone"
    clips_after = _snapshot(out / "clips")
    assert all(clips_after[name] == stamp for name, stamp in clips_before.items()), "a written clip was redone"
    assert not [p for p in (out / "clips").iterdir() if "tmp" in p.name]

    clips = read_table(out, "clips")
    assert clips.clip_id.is_unique
    reference = curated["clips"]
    expected = reference[reference.source.str.contains("/synthetic/") & reference.source.map(
        lambda path: Path(path).name in {"moves_a.mp4", "short_e.mp4", "moves_b.mp4"})]
    assert _comparable(out / "clips.parquet", clips.clip_id) == _comparable(
        curated["out"] / "clips.parquet", expected.clip_id), "the resumed run's clip rows differ from a clean run's"
    reference_files = {f"{cid}.mp4" for cid in expected[expected.keep].clip_id}
    assert _hashes(out / "clips") == {k: v for k, v in _hashes(curated["out"] / "clips").items()
                                      if k in reference_files}, "a resumed clip file differs from a clean run's"

    again = run_droplet(args, env=env)
    assert again.returncode == 0 and f"{total} already done (skipped), 0 to do" in again.stderr
    assert _snapshot(out / "clips") == clips_after
