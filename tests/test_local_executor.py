"""The local executor: curate's stages on this machine without Ray — it never starts Ray, keeps every outcome,
writes a source's clips before it analyses the next source, and a Ctrl-C ends its children without journaling
them as bad sources. (That it gives what Ray Data gives, row for row and byte for byte, is in test_resume.py:
the resumed run is local, the reference run is on the Ray head.)"""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest
from conftest import PYTHON, REPO, read_table, run_droplet

from curation import local, sandbox
from curation.config import CurateConfig
from curation.rows import ClipPlan, ClipResult, Probe, SourcePlan, unwrap, wrap

# `droplet curate` with ray.init replaced by a function that fails: a run that reaches Ray fails loudly.
NO_RAY = """
import sys
import ray

def refuse(*args, **kwargs):
    raise RuntimeError("the local executor started Ray")

ray.init = refuse
from droplet.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_local_run_never_starts_ray_and_keeps_every_outcome(tiny_input, tmp_path):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([PYTHON, "-c", NO_RAY, "curate", str(tiny_input), str(out), "--no-progress"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sources = read_table(out, "sources").set_index("source")
    assert len(sources) == 2
    assert sources.loc[str(tiny_input / "not_a_video.mp4"), "reason"] == "not_a_video"
    assert sources.loc[str(tiny_input / "hd_shots.mp4"), "status"] == "ok"
    clips = read_table(out, "clips")
    kept = clips[clips.keep]
    assert len(kept) >= 1 and (kept.width == 1280).all()
    assert sorted(p.stem for p in (out / "clips").glob("*.mp4")) == sorted(kept.clip_id)
    log = (out / "curate.log").read_text()
    assert "local executor (no Ray)" in log
    assert f"skipped {tiny_input / 'voice.m4a'}: extension .m4a is not in limits.extensions" in log


def test_the_local_executor_refuses_a_named_cluster(tiny_input, tmp_path):
    result = run_droplet(["curate", str(tiny_input), str(tmp_path / "out"), "--executor", "local", "--address",
                          "127.0.0.1:1", "--no-progress"])
    assert result.returncode == 2
    assert "ray.executor is local, but a Ray cluster is named (127.0.0.1:1)" in result.stderr


def test_clips_go_before_the_next_analysis(monkeypatch, tmp_path):
    """One worker, two sources of two clips: A's clips are written before B is analysed, so A commits first."""
    calls: list[str] = []

    def analyze(row, cfg, store=None):
        probe = unwrap(row)
        calls.append(f"analyze {probe.key}")
        return row

    def plan(row, cfg, store):
        probe = unwrap(row)
        return [wrap(SourcePlan(probe.key, probe.source, {}))] + [
            wrap(ClipPlan(probe.key, f"{probe.key}{i}", None)) for i in range(2)]

    def extract(row, cfg, store):
        item = unwrap(row)
        calls.append(f"extract {item.clip_id}")
        return wrap(ClipResult(item.key, item.clip_id, facts={}))

    monkeypatch.setattr(local, "analyze_stage", analyze)
    monkeypatch.setattr(local, "plan_stage", plan)
    monkeypatch.setattr(local, "extract_stage", extract)
    delivered = []
    off = {"enabled": False}  # the clip checks read clip files: none here
    cfg = CurateConfig(quality=off, ocr=off, dedup=off)
    executor = local.LocalExecutor(cfg, store=None, workers=1)
    executor.run([Probe("A", "/a.mp4", info={}), Probe("B", "/b.mp4", info={})], [], delivered.append)
    assert calls == ["analyze A", "extract A0", "extract A1", "analyze B", "extract B0", "extract B1"]
    assert [type(d).__name__ for d in delivered] == ["SourcePlan", "ClipResult", "ClipResult"] * 2


def test_workers_follow_num_cpus_and_memory(monkeypatch):
    import psutil

    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("M", (), {"available": 5 * 1536 * 2**20})())
    assert local.local_workers(CurateConfig.model_validate({"ray": {"num_cpus": 3}})) == 3
    assert local.local_workers(CurateConfig.model_validate({"ray": {"num_cpus": 8}})) == 5  # 5 analyses fit


def _sleep_in_a_child(results: list) -> None:
    try:
        results.append(sandbox.run_isolated(time.sleep, 30, timeout_s=60))
    except BaseException as exc:  # noqa: BLE001 - what the caller sees is the test's subject
        results.append(exc)


def test_stopping_the_children_is_an_interruption_not_a_reason(monkeypatch):
    monkeypatch.setattr(sandbox, "_stopping", threading.Event())
    results: list = []
    thread = threading.Thread(target=_sleep_in_a_child, args=(results,))
    thread.start()
    deadline = time.time() + 30
    while not sandbox._live and time.time() < deadline:
        time.sleep(0.05)
    started = time.time()
    sandbox.stop_all_children()
    thread.join(10)
    assert time.time() - started < 5, "the child was not ended"
    assert len(results) == 1 and isinstance(results[0], sandbox.Interrupted), results
    with pytest.raises(sandbox.Interrupted):  # nothing new starts once the run is stopping
        sandbox.run_isolated(time.sleep, 0, timeout_s=60)


# A Ctrl-C at a fixed point: KeyboardInterrupt in the driver right after the first good source is committed,
# while the other source's child is still at work (what a Ctrl-C in the terminal gives the driver's main thread).
CTRL_C = """
import sys
from curation.store import OutStore

commit = OutStore.commit

def commit_then_ctrl_c(self, key, data):
    commit(self, key, data)
    if data["source"]["status"] == "ok":
        raise KeyboardInterrupt

OutStore.commit = commit_then_ctrl_c
from droplet.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_ctrl_c_ends_the_children_and_journals_no_reason(sample_data, tmp_path):
    import psutil

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("moves_a.mp4", "short_e.mp4", "moves_b.mp4"):
        (inputs / name).symlink_to(sample_data / "synthetic" / name)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    config = tmp_path / "curate.yaml"
    config.write_text("ocr:\n  enabled: false\n")  # this test is about the processes, not the checks
    args = ["curate", str(inputs), str(out), "--config", str(config), "--no-progress"]
    proc = subprocess.Popen([PYTHON, "-c", CTRL_C, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    children: set[int] = set()
    while proc.poll() is None:  # every process the run starts, to check none outlives it
        try:
            children |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    stderr = proc.communicate(timeout=600)[1]
    assert proc.returncode == 130, stderr[-3000:]
    assert "droplet curate: interrupted (what was finished is kept; a re-run resumes)" in stderr
    assert children

    def alive() -> list[int]:
        running = []
        for pid in children:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    running.append(pid)
            except psutil.NoSuchProcess:
                pass
        return running

    deadline = time.time() + 10  # the forkserver and a killed child's watchdog notice their parent is gone
    while alive() and time.time() < deadline:
        time.sleep(0.1)
    assert not alive(), "a child outlived the interrupted run"
    journal = "\n".join(p.read_text() for p in (out / "_work").rglob("*.json"))
    assert '"ok": false' not in journal and "decode_error" not in journal
    assert len(list((out / "_work" / "sources").glob("*.json"))) == 1

    again = run_droplet(args, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    sources = read_table(out, "sources")
    assert (sources.status == "ok").all() and len(sources) == 3
