"""Exactly-once under the faults a cluster has, on a two-node Ray cluster on 127.0.0.1 (the test run's head and a
second node): a Ray worker killed (`kill -9`) during analysis, extraction and the clip checks, the curate driver
killed and run again, the caption process killed and run again, and the second node stopped mid-run. Each
faulted run is compared with one uninterrupted run of the same inputs: the same clip ids, the same clips.parquet
rows, byte-identical clip files and shards, no clip missing or twice.

The faults come from the test-only hook (`runtime.faults`: DROPLET_FAULT names a stage and the item count at which
the process handling it dies), so each lands at the same point every time.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import run_droplet

from droplet.sample_data.synthetic import _cam, write_video

MOVES = (("pan_left", "tilt_up"), ("zoom_in", "pan_right"), ("tilt_down", "roll_cw"), ("pan_right", "zoom_out"))
CONFIG = "ocr:\n  enabled: false\nray:\n  progress_bars: false\n"  # OCR is tested elsewhere: keep the runs short


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Four sources of two shots each (a hard cut between them), and the curate config."""
    folder = tmp_path_factory.mktemp("fault-inputs")
    for i, (first, second) in enumerate(MOVES):
        shots = [_cam(first, "slow", 90, 40 + i), _cam(second, "slow", 90, 50 + i)]
        write_video(folder / f"source{i}.mp4", 320, 180, shots)
    config = folder.parent / "curate.yaml"
    config.write_text(CONFIG)
    return {"folder": folder, "config": config}


def curate(inputs: dict, out: Path, env: dict, fault: str | None = None, faults_dir: Path | None = None):
    env = dict(env)
    if fault:
        env.update(DROPLET_FAULT=fault, DROPLET_FAULT_DIR=str(faults_dir))
    return run_droplet(["curate", str(inputs["folder"]), str(out), "--config", str(inputs["config"]),
                        "--address", env["RAY_ADDRESS_FOR_TEST"], "--no-progress"], env=env, timeout=600)


def caption(out: Path, env: dict, fault: str | None = None, faults_dir: Path | None = None):
    """`droplet caption OUT` (grounded captions, then shards), committing every 4 clips."""
    env = dict(env)
    if fault:
        env.update(DROPLET_FAULT=fault, DROPLET_FAULT_DIR=str(faults_dir))
    config = out.parent / "caption.yaml"
    config.write_text("commit_every: 4\n")
    return run_droplet(["caption", str(out), "--config", str(config)], env=env, timeout=600)


def snapshot(out: Path) -> dict:
    """What must not differ between an uninterrupted and a faulted run."""
    clips = sorted(pq.read_table(out / "clips.parquet").to_pylist(), key=lambda r: r["clip_id"])
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "clips").glob("*.mp4"))}
    shards = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "shards").glob("*"))
              if p.is_file()}
    return {"clips": clips, "files": digest, "shards": shards}


def assert_same(faulted: dict, baseline: dict) -> None:
    """Same clip ids (none twice), same clips.parquet rows, byte-identical clip files and shards."""
    ids = [r["clip_id"] for r in faulted["clips"]]
    assert len(ids) == len(set(ids)), "a clip id twice"
    assert ids == [r["clip_id"] for r in baseline["clips"]], "clip ids differ"
    for row, base in zip(faulted["clips"], baseline["clips"], strict=True):
        assert row == base, f"clips.parquet row of {row['clip_id']} differs"
    assert faulted["files"] == baseline["files"], "clip files differ"
    assert faulted["shards"] == baseline["shards"], "shards differ"


@pytest.fixture(scope="module")
def cluster(two_nodes: dict) -> dict:
    return {**two_nodes, "env": {**two_nodes["env"], "RAY_ADDRESS_FOR_TEST": two_nodes["address"]}}


@pytest.fixture(scope="module")
def baseline(inputs: dict, cluster: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The uninterrupted run: its snapshot, and a copy of its OUT before captioning."""
    out = tmp_path_factory.mktemp("baseline") / "out"
    result = curate(inputs, out, cluster["env"])
    assert result.returncode == 0, result.stderr[-3000:]
    curated = out.parent / "curated"
    shutil.copytree(out, curated)
    result = caption(out, cluster["env"])
    assert result.returncode == 0, result.stderr[-3000:]
    snap = snapshot(out)
    assert len(snap["clips"]) == 8 and sum(r["keep"] for r in snap["clips"]) == 8 and snap["shards"]
    return {**snap, "curated": curated}


def test_workers_killed_during_analysis_extraction_and_checks_are_retried(inputs, cluster, baseline,
                                                                          tmp_path: Path):
    """Three `kill -9`s in one run: the worker analysing the 2nd source, the one that has just written the 3rd
    clip file (not yet journaled), and the one checking the 4th clip. Ray runs each task again elsewhere."""
    out, faults = tmp_path / "out", tmp_path / "faults"
    result = curate(inputs, out, cluster["env"], "analysis:2,extraction:3,checks:4", faults)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    for stage, item in (("analysis", 2), ("extraction", 3), ("checks", 4)):
        assert (faults / f"{stage}.fired").exists(), f"the {stage} fault did not fire"
        assert f"fault hook: kill at {stage} item {item}" in log
    curate_log = (out / "curate.log").read_text()
    assert "retried after a failure: analysis 1, checks 1, extraction 1" in curate_log
    assert len(re.findall(r"retried: (analysis|extraction|checks) of \S+ took 2 attempts", curate_log)) == 3
    assert caption(out, cluster["env"]).returncode == 0
    assert_same(snapshot(out), baseline)


def test_the_driver_killed_then_run_again(inputs, cluster, baseline, tmp_path: Path):
    out, faults = tmp_path / "out", tmp_path / "faults"
    killed = curate(inputs, out, cluster["env"], "commit:2", faults)
    assert killed.returncode == -signal.SIGKILL
    assert len(list((out / "_work" / "sources").glob("*.json"))) == 2  # two sources committed, then the kill
    again = curate(inputs, out, cluster["env"])
    assert again.returncode == 0, again.stderr[-3000:]
    log = (out / "curate.log").read_text()
    assert "4 sources; 2 already done (skipped), 2 to do" in log
    assert caption(out, cluster["env"]).returncode == 0
    assert_same(snapshot(out), baseline)


def test_the_caption_process_killed_then_run_again(inputs, cluster, baseline, tmp_path: Path):
    out, faults = tmp_path / "out", tmp_path / "faults"
    shutil.copytree(baseline["curated"], out)  # the uninterrupted curate, before captioning
    killed = caption(out, cluster["env"], "caption:1", faults)  # killed once the first 4 captions are committed
    assert killed.returncode == -signal.SIGKILL
    assert not (out / "shards").exists() or not any((out / "shards").glob("*.tar"))
    again = caption(out, cluster["env"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 captioned already (skipped), 4 to caption" in again.stdout + again.stderr
    assert_same(snapshot(out), baseline)


def test_the_second_node_stopped_mid_run(inputs, cluster, baseline, tmp_path: Path):
    """Extraction pauses at its 3rd clip; the second node is killed meanwhile; the run goes on on the head."""
    import subprocess

    from conftest import PYTHON, REPO

    out, faults = tmp_path / "out", tmp_path / "faults"
    env = {**cluster["env"], "DROPLET_FAULT": "extraction:3:pause", "DROPLET_FAULT_DIR": str(faults)}
    run = subprocess.Popen([PYTHON, "-m", "droplet", "curate", str(inputs["folder"]), str(out), "--config",
                            str(inputs["config"]), "--address", cluster["address"], "--no-progress"],
                           env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = cluster["second_node"]
    try:
        deadline = time.time() + 300
        while not (faults / "extraction.paused").exists():
            assert run.poll() is None and time.time() < deadline, "extraction never reached its 3rd clip"
            time.sleep(0.1)
        node.stop()
        (faults / "extraction.resume").touch()
        output, _ = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
        node.start()  # the cluster has two nodes again for the tests after this one
    assert run.returncode == 0, output[-3000:]
    assert caption(out, cluster["env"]).returncode == 0
    assert_same(snapshot(out), baseline)
