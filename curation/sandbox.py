"""Run one source's decoding in a child process under a time limit.

A hung or crashing decoder then costs that source alone (`timeout` / `decode_error`), never the worker or
the job. Children come from a forkserver (a clean, single-threaded process with the heavy modules loaded
once), so starting one costs milliseconds, and a watchdog thread ends a child whose caller has died.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from curation import reasons
from curation.reasons import Rejected

_PRELOAD = ["numpy", "av", "cv2", "curation.analyze", "curation.extract", "curation.probe"]
_context: mp.context.BaseContext | None = None
_live: set = set()  # the children running now (in this process's threads)
_live_lock = threading.Lock()
_stopping = threading.Event()


class Interrupted(BaseException):  # noqa: N818 - like KeyboardInterrupt, not an Exception a stage would catch
    """The run was stopped (Ctrl-C) while a child worked: a fact about the run, never a source's reason."""


def stop_all_children() -> None:
    """Kill every running child; their callers raise `Interrupted` (nothing is journaled as a failure)."""
    _stopping.set()
    with _live_lock:
        running = list(_live)
    for proc in running:
        proc.kill()


def _get_context() -> mp.context.BaseContext:
    global _context
    if _context is None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        _context = ctx
    return _context


def _watch_caller(caller_pid: int) -> None:
    while True:
        time.sleep(1.0)
        try:
            os.kill(caller_pid, 0)
        except ProcessLookupError:
            os._exit(3)


def _child(conn, caller_pid: int, fn: Callable, args: tuple, kwargs: dict) -> None:
    # A Ctrl-C in the terminal is for the caller: a child that took it would report its source as a decode error
    # (and that would be journaled). The caller ends its children itself (the watchdog, or kill at the limit).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_caller, args=(caller_pid,), daemon=True).start()
    try:
        message = ("ok", fn(*args, **kwargs))
    except Rejected as exc:
        message = ("rejected", exc.reason, exc.message)
    except BaseException as exc:  # noqa: BLE001 - everything becomes a reason code
        tail = traceback.format_exc(limit=4).strip().splitlines()[-1]
        message = ("error", type(exc).__name__, tail)
    try:
        conn.send(message)
    finally:
        conn.close()


def run_isolated(fn: Callable[..., Any], *args: Any, timeout_s: float, **kwargs: Any) -> Any:
    """Call `fn(*args, **kwargs)` in a child process and return its result.

    Raises `Rejected` with the child's own reason, `timeout` when it runs past `timeout_s`, or
    `decode_error` when it raises anything else or dies (a crash in native code, say); `Interrupted` once
    `stop_all_children` was called.
    """
    if _stopping.is_set():
        raise Interrupted()
    ctx = _get_context()
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(sender, os.getpid(), fn, args, kwargs), daemon=True)
    proc.start()
    sender.close()
    with _live_lock:
        _live.add(proc)
    try:
        if not receiver.poll(timeout_s):
            proc.kill()
            raise Rejected(reasons.TIMEOUT, f"no result within {timeout_s:.1f} s; the child was killed")
        try:
            message = receiver.recv()
        except (EOFError, OSError):
            proc.join(5)
            if _stopping.is_set():
                raise Interrupted() from None
            raise Rejected(
                reasons.DECODE_ERROR, f"the decoding process died (exit code {proc.exitcode})"
            ) from None
    finally:
        with _live_lock:
            _live.discard(proc)
        receiver.close()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if message[0] == "ok":
        return message[1]
    if message[0] == "rejected":
        raise Rejected(message[1], message[2])
    raise Rejected(reasons.DECODE_ERROR, f"{message[1]}: {message[2]}")
