"""One run of a command per folder at a time: an exclusive flock on a lock file, taken before anything is written.

A second run on the same folder is refused at once (`FolderBusy`, a ValueError: the CLI prints its one line and
exits 2), naming the holder's pid, host and start time, which the holder writes into the lock file. The kernel
drops an flock when its process dies, so a killed run never leaves a stale lock; the file stays, naming the last
holder, and the next run takes it over. On NFS, Linux maps flock to a POSIX lock the server keeps, so runs on
different hosts exclude each other too. Where there is no `fcntl` (not POSIX), nothing is locked.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class FolderBusy(ValueError):
    """Another run holds the folder's lock (one line: which folder, which command, its holder)."""


def holder_record(command: str) -> dict:
    """What a holder writes into its lock file."""
    return {"command": command, "pid": os.getpid(), "host": socket.gethostname(),
            "started": dt.datetime.now().astimezone().isoformat(timespec="seconds")}


def describe_holder(text: str) -> str:
    """"`droplet curate` (pid 123 on host, started 2025-01-01T10:00:00+00:00)", from a lock file's text."""
    try:
        record = json.loads(text)
        return f"`droplet {record['command']}` (pid {record['pid']} on {record['host']}, started {record['started']})"
    except (ValueError, KeyError, TypeError):
        return "another run (not recorded yet)"


@contextmanager
def hold_folder_lock(lock_path: str | Path, folder: str | Path, command: str) -> Iterator[Path]:
    """Hold `lock_path` (its parent folder made if missing) for the `with` block, or raise `FolderBusy`."""
    lock_path = Path(lock_path)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield lock_path
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+", encoding="utf-8") as f:  # "a+": opening never truncates what a holder wrote
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise FolderBusy(f"{folder} is busy: {lock_path} is held by {describe_holder(f.read())}; wait for it "
                             f"to end, or use another folder") from None
        try:
            f.seek(0)
            f.truncate()
            f.write(json.dumps(holder_record(command)) + "\n")
            f.flush()
            yield lock_path
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
