"""One `droplet curate` and one `droplet caption` per OUT at a time (`runtime/out_lock.py`): a second run on the
same OUT exits 2 with one line naming the holder, writes nothing, and the first run ends as if alone. A curate
and a caption on the same OUT may run together. The first run is held at a fixed point (right after it took the
lock, before it wrote anything) by a hook that waits for a file, so nothing here depends on timing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import PYTHON, REPO, kill_tree, read_table, run_droplet

from curation.store import OutStore
from droplet.sample_data.synthetic import Shot, write_video
from runtime.out_lock import FolderBusy, hold_folder_lock

# `droplet ARGS` with TARGET (module:attribute, the first call after the lock is taken) made to wait: it creates
# HELD, then waits until RELEASE exists, then goes on.
HOLD = """
import importlib, sys, time
from pathlib import Path

held, release, target = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
module, _, name = target.partition(":")
owner = importlib.import_module(module)
*parents, attr = name.split(".")
for part in parents:
    owner = getattr(owner, part)
original = getattr(owner, attr)

def wait_then(*args, **kwargs):
    held.touch()
    deadline = time.time() + 300
    while not release.exists():
        if time.time() > deadline:
            raise SystemExit("never released")
        time.sleep(0.05)
    return original(*args, **kwargs)

setattr(owner, attr, wait_then)
from droplet.cli import main
sys.exit(main(sys.argv[4:]))
"""
CURATE_HOLD = "curation.store:OutStore.lock_config"  # run_curate's first step once it holds curate.lock
CAPTION_HOLD = "captioning.pipeline:lock_caption_config"  # run_caption's first step once it holds caption.lock


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}


def _start_held(tmp_path: Path, target: str, args: list[str]) -> tuple[subprocess.Popen, Path]:
    """`droplet ARGS` held at `target`; returns it and the file that releases it, once it is held."""
    held, release = tmp_path / f"{target}.held", tmp_path / f"{target}.release"
    proc = subprocess.Popen([PYTHON, "-c", HOLD, str(held), str(release), target, *args], cwd=REPO, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 180
    while not held.exists():
        if proc.poll() is not None or time.time() > deadline:
            kill_tree(proc.pid)
            pytest.fail(f"the held run never got to {target}: {proc.communicate()[1][-3000:]}")
        time.sleep(0.05)
    return proc, release


def _finish(proc: subprocess.Popen, release: Path) -> tuple[int, str]:
    release.touch()
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        kill_tree(proc.pid)
    return proc.returncode, err


def _busy_line(stderr: str, command: str, out: Path, lock: Path, holder: subprocess.Popen) -> str:
    lines = [line for line in stderr.splitlines() if "is busy" in line]
    assert len(lines) == 1, stderr[-3000:]
    expected = (f"droplet {command}: error: {out} is busy: {lock} is held by `droplet {command}` (pid {holder.pid} "
                f"on {socket.gethostname()}, started ")
    assert lines[0].startswith(expected), lines[0]
    assert lines[0].endswith("); wait for it to end, or use another folder"), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def curate_race(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A curate held inside its lock, a second curate on the same OUT meanwhile, then the first let go."""
    tmp = tmp_path_factory.mktemp("race")
    inputs = tmp / "in"
    inputs.mkdir()
    write_video(inputs / "two_shots.mp4", 320, 180, [Shot("camera", "pan_right", 100, 501, speed="fast"),
                                                     Shot("camera", "zoom_in", 100, 502, speed="slow")])
    config = tmp / "curate.yaml"
    config.write_text("ray:\n  executor: local\n  num_cpus: 2\n  progress_bars: false\n")
    out = tmp / "out"
    args = ["curate", str(inputs), str(out), "--config", str(config), "--no-progress"]
    first, release = _start_held(tmp, CURATE_HOLD, args)
    try:
        second = run_droplet(args, env=_env(), timeout=300)
        written_meanwhile = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    finally:
        code, err = _finish(first, release)
    return {"out": out, "args": args, "config": config, "tmp": tmp, "first": first, "first_code": code,
            "first_err": err, "second": second, "written_meanwhile": written_meanwhile}


def test_a_second_curate_on_the_same_out_exits_2_and_writes_nothing(curate_race) -> None:
    out, second = curate_race["out"], curate_race["second"]
    assert second.returncode == 2, second.stderr[-3000:]
    _busy_line(second.stderr, "curate", out, out / "_work" / "curate.lock", curate_race["first"])
    # the first run was held before it wrote anything, and the second wrote nothing at all
    assert curate_race["written_meanwhile"] == ["_work", "_work/curate.lock"]


def test_the_held_curate_then_completes_with_the_right_tables(curate_race) -> None:
    out = curate_race["out"]
    assert curate_race["first_code"] == 0, curate_race["first_err"][-3000:]
    sources = read_table(out, "sources")
    assert len(sources) == 1 and (sources.status == "ok").all()
    assert len(read_table(out, "scenes")) == 2  # the cut at frame 100 found
    clips = read_table(out, "clips")
    assert sorted(c.split("-", 1)[1] for c in clips.clip_id) == ["102-198", "2-98"]  # each shot, 2 frames trimmed
    assert clips.keep.all()
    assert sorted(p.stem for p in (out / "clips").glob("*.mp4")) == sorted(clips.clip_id)
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_a_second_caption_exits_2_while_a_curate_may_run_beside_it(curate_race) -> None:
    out, tmp = curate_race["out"], curate_race["tmp"]
    assert curate_race["first_code"] == 0, curate_race["first_err"][-3000:]
    first, release = _start_held(tmp, CAPTION_HOLD, ["caption", str(out)])
    try:
        second = run_droplet(["caption", str(out)], env=_env(), timeout=300)
        curate = run_droplet(curate_race["args"], env=_env(), timeout=300)  # allowed beside a caption
    finally:
        code, err = _finish(first, release)
    assert second.returncode == 2, second.stderr[-3000:]
    _busy_line(second.stderr, "caption", out, out / "_work" / "caption.lock", first)
    assert curate.returncode == 0 and "1 already done (skipped)" in curate.stderr, curate.stderr[-3000:]
    assert code == 0, err[-3000:]
    captions = pq.read_table(out / "captions.parquet").to_pylist()
    assert sorted(c["clip_id"] for c in captions) == sorted(read_table(out, "clips").clip_id)
    assert all(c["qa_passed"] for c in captions) and len(list((out / "_work" / "captions").glob("*.parquet"))) == 1
    assert len(list((out / "shards").glob("shard-*.tar"))) == 1


def test_a_second_shard_writer_exits_2_with_one_line(curate_race) -> None:
    import fcntl

    out = curate_race["out"]
    assert curate_race["first_code"] == 0, curate_race["first_err"][-3000:]
    (out / "shards").mkdir(exist_ok=True)
    with open(out / "shards" / ".lock", "a") as held:  # a shard writer at work
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        result = run_droplet(["shard", str(out)], env=_env(), timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"droplet shard: error: another shard writer is running on {out / 'shards'} (it holds "
        f"{out / 'shards' / '.lock'}); wait for it to end")


# -- the lock itself ----------------------------------------------------------------------------------------------
def test_the_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    lock = tmp_path / "OUT" / "_work" / "curate.lock"
    with hold_folder_lock(lock, tmp_path / "OUT", "curate"):
        with pytest.raises(FolderBusy) as busy, hold_folder_lock(lock, tmp_path / "OUT", "caption"):
            pass
        message = str(busy.value)
        assert "\n" not in message and f"`droplet curate` (pid {os.getpid()} on {socket.gethostname()}" in message
    with hold_folder_lock(lock, tmp_path / "OUT", "caption"):  # free again once released
        assert '"command": "caption"' in lock.read_text()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    lock, held = tmp_path / "curate.lock", tmp_path / "held"
    code = ("import sys, time; from pathlib import Path; from runtime.out_lock import hold_folder_lock\n"
            "with hold_folder_lock(sys.argv[1], 'OUT', 'curate'):\n    Path(sys.argv[2]).touch(); time.sleep(300)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(lock), str(held)], cwd=REPO, start_new_session=True)
    try:
        deadline = time.time() + 60
        while not held.exists():
            assert proc.poll() is None and time.time() < deadline, "the holder never took the lock"
            time.sleep(0.05)
        with pytest.raises(FolderBusy, match=f"pid {proc.pid} "):
            with hold_folder_lock(lock, "OUT", "curate"):
                pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        kill_tree(proc.pid)
    with hold_folder_lock(lock, "OUT", "curate"):  # the kernel dropped the dead holder's lock
        assert f'"pid": {os.getpid()}' in lock.read_text()


def test_curate_sweeps_its_own_temp_files_not_captioning_s(tmp_path: Path) -> None:
    """A curate starting beside a running caption leaves the caption's temp files alone."""
    store = OutStore(tmp_path)
    store.prepare()
    mine = [store.clips_dir / "x.mp4.tmp-1", store.work / "sources" / ".k.json.tmp-1",
            tmp_path / ".clips.parquet.tmp-1", tmp_path / ".report.html.tmp-1"]
    theirs = [store.layout.caption_batches / ".captions-0000001.parquet.tmp-2", tmp_path / ".captions.parquet.tmp-2",
              tmp_path / ".caption_config.yaml.tmp-2"]
    for path in mine + theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    store.prepare()
    assert [p.exists() for p in mine] == [False] * len(mine)
    assert [p.exists() for p in theirs] == [True] * len(theirs)
