"""A fault hook for tests: the process that handles the Nth item of a named stage kills itself (`kill -9`), or
pauses until the test lets it go, so a fault lands at the same point of a run every time, not by the clock.

    DROPLET_FAULT="extraction:3"          the process handling the 3rd extraction (counted over all processes) dies
    DROPLET_FAULT="analysis:2,commit:5"   two faults in one run
    DROPLET_FAULT="extraction:4:pause"    it writes DIR/extraction.paused and waits for DIR/extraction.resume
    DROPLET_FAULT_DIR=/shared/folder      where the counters and markers live (every node must see it)

Each fault fires once (DIR/<stage>.fired), so the retried task does not die again. Unset, the hook is one
dictionary lookup. The stages that call it: `analysis`, `extraction` and `checks` (workers), `commit` (the curate
driver, after it commits a source), `caption` (`droplet caption`, after it commits a batch), `caption_worker` (a
Ray Data captioning actor, after it captioned a batch). Ray workers see the variables through the job's
runtime_env (`runtime.ray_connect`).
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from pathlib import Path

FAULT_ENV, DIR_ENV = "DROPLET_FAULT", "DROPLET_FAULT_DIR"
PAUSE_LIMIT_S = 600.0


def fault_env() -> dict[str, str]:
    """The fault variables of this process (what a Ray job passes on to its workers); empty when none is set."""
    return {k: os.environ[k] for k in (FAULT_ENV, DIR_ENV) if os.environ.get(k)}


def parse(spec: str) -> dict[str, tuple[int, str]]:
    """"stage:count[:action],..." -> {stage: (count, action)}; action is kill (default) or pause."""
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        stage, count, *rest = part.split(":")
        action = rest[0] if rest else "kill"
        if action not in ("kill", "pause") or int(count) < 1:
            raise ValueError(f"{FAULT_ENV}: {part!r} is not stage:count[:kill|pause]")
        out[stage] = (int(count), action)
    return out


def _count(folder: Path, stage: str) -> int:
    """Add one to the stage's counter (under an flock, shared by every process) and return it."""
    path = folder / f"{stage}.count"
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        f.seek(0)
        value = int(f.read() or 0) + 1
        f.seek(0)
        f.truncate()
        f.write(str(value))
        f.flush()
        os.fsync(f.fileno())
    return value


def _fire_once(folder: Path, stage: str) -> bool:
    try:
        with open(folder / f"{stage}.fired", "x") as f:
            f.write(f"{os.getpid()}\n")
        return True
    except FileExistsError:
        return False


def maybe_fail(stage: str) -> None:
    """Count one item of `stage`; at the configured count, kill this process or pause it (see the module)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    wanted = parse(spec).get(stage)
    if wanted is None:
        return
    folder = Path(os.environ.get(DIR_ENV) or ".")
    folder.mkdir(parents=True, exist_ok=True)
    count, action = wanted
    if _count(folder, stage) != count or not _fire_once(folder, stage):
        return
    print(f"fault hook: {action} at {stage} item {count} (pid {os.getpid()})", file=sys.stderr, flush=True)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    (folder / f"{stage}.paused").write_text(f"{os.getpid()}\n")
    deadline = time.monotonic() + PAUSE_LIMIT_S
    while not (folder / f"{stage}.resume").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
