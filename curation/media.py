"""Opening a source for PyAV, wherever it lives: a local path, `file://`, or any fsspec URI."""

from __future__ import annotations

import os

import av
import fsspec


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str) -> str:
    return uri[len("file://"):] if uri.startswith("file://") else uri


def open_container(uri: str) -> av.container.InputContainer:
    """PyAV container of `uri`: local files by path (FFmpeg's own I/O), others through an fsspec file."""
    if is_local(uri):
        return av.open(local_path(uri), metadata_errors="ignore")
    handle = fsspec.open(uri, "rb").open()
    try:
        return av.open(handle, metadata_errors="ignore")
    except Exception:
        handle.close()
        raise


def file_stamp(uri: str) -> tuple[int, int] | None:
    """(size, modification time in ns) of a local file, to tell later whether it was written to since; None
    for a remote URI or a file that is not there."""
    if not is_local(uri):
        return None
    try:
        info = os.stat(local_path(uri))
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns
