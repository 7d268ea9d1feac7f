"""Reproducible tar files: fixed member headers, data offsets known while writing, sha256 on a side thread.

The bytes equal what `tarfile` writes in PAX format for the same members (one 512-byte USTAR header per member,
data padded to 512 bytes, two zero blocks, padded to a 10240-byte record). Headers carry mtime 0, uid/gid 0,
empty uname/gname and mode 0o644; a PAX extended header appears only where USTAR cannot hold a name (non-ASCII
or over 100 characters), and then it holds just the name, so equal inputs give equal bytes.
"""

from __future__ import annotations

import hashlib
import os
import queue
import tarfile
import threading
from pathlib import Path

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
MTIME = 0
MODE = 0o644
CHUNK = 1 << 20


def member_header(name: str, size: int) -> bytes:
    """The header block(s) of a regular file member `name` of `size` bytes."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = MTIME
    info.mode = MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def padding(size: int) -> int:
    """Zero bytes after `size` bytes of member data."""
    return -size % BLOCK


def closed_size(offset: int) -> int:
    """Size of a tar closed when `offset` bytes of members are written (end blocks + record padding)."""
    end = offset + 2 * BLOCK
    return end + (-end % RECORD)


class _Hasher:
    """sha256 of what is handed to it, on a thread (hashlib drops the GIL), so hashing overlaps the copying.

    Items are (buffer, length, pool): a buffer from `pool` goes back to it once hashed.
    """

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="tar-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            buf, length, pool = item
            self._sha.update(memoryview(buf)[:length])
            if pool is not None:
                pool.put(buf)

    def update(self, buf: bytes | bytearray, length: int, pool: queue.Queue | None = None) -> None:
        self._queue.put((buf, length, pool))

    def hexdigest(self) -> str:
        self._queue.put(None)
        self._thread.join()
        return self._sha.hexdigest()


class TarWriter:
    """Writes members one after another into `path`; `close()` returns (bytes, sha256).

    With `durable`, written ranges are handed to the kernel's writeback every `WRITEBACK` bytes
    (`posix_fadvise(DONTNEED)` starts it and keeps finished shards out of the page cache), so the fsync in
    `close()` has little left to wait for.
    """

    WRITEBACK = 32 << 20
    BUFFERS = 6

    def __init__(self, path: Path, durable: bool = True) -> None:
        self.path = path
        self.offset = 0
        self.members = 0
        self.durable = durable
        self._advised = 0
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._hasher = _Hasher()
        self._pool: queue.Queue[bytearray] = queue.Queue()
        for _ in range(self.BUFFERS):
            self._pool.put(bytearray(CHUNK))

    def _write(self, buf: bytes | bytearray, length: int, pool: queue.Queue | None = None) -> None:
        view = memoryview(buf)[:length]
        while view:
            view = view[os.write(self._fd, view):]
        self._hasher.update(buf, length, pool)
        self.offset += length
        if self.durable and hasattr(os, "posix_fadvise") and self.offset - self._advised >= self.WRITEBACK:
            os.posix_fadvise(self._fd, self._advised, self.offset - self._advised, os.POSIX_FADV_DONTNEED)
            self._advised = self.offset

    def add_bytes(self, name: str, data: bytes) -> int:
        """Adds a member holding `data`; returns the offset where its data starts."""
        header = member_header(name, len(data))
        start = self.offset + len(header)
        block = header + data + b"\0" * padding(len(data))
        self._write(block, len(block))
        self.members += 1
        return start

    def add_file(self, name: str, path: Path, size: int) -> int:
        """Adds a member with the bytes of file `path` (`size` bytes, checked); returns its data offset."""
        header = member_header(name, size)
        self._write(header, len(header))
        start = self.offset
        copied = 0
        with open(path, "rb", buffering=0) as src:
            while True:
                buf = self._pool.get()
                n = src.readinto(buf)
                if not n or copied + n > size:
                    self._pool.put(buf)
                    copied += n
                    break
                self._write(buf, n, self._pool)
                copied += n
        if copied != size:
            raise OSError(f"{path} changed size while being sharded (expected {size} bytes)")
        pad = padding(size)
        self._write(b"\0" * pad, pad)
        self.members += 1
        return start

    def close(self, fsync: bool = True) -> tuple[int, str]:
        """Writes the end of the archive; returns (file size, sha256 hex)."""
        end = closed_size(self.offset) - self.offset
        self._write(b"\0" * end, end)
        digest = self._hasher.hexdigest()
        try:
            if fsync:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
        return self.offset, digest

    def abort(self) -> None:
        """Closes and removes a half-written file."""
        os.close(self._fd)
        self._hasher.hexdigest()
        self.path.unlink(missing_ok=True)


def sample_bytes(members: list[tuple[str, int]]) -> int:
    """Bytes that members (name, size) take in a tar, headers and padding included."""
    return sum(len(member_header(name, size)) + size + padding(size) for name, size in members)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def scan_members(path: Path) -> list[tuple[str, int, int]]:
    """(name, data offset, size) of every regular member of the tar at `path`, in file order."""
    with tarfile.open(path, "r:") as tar:
        return [(m.name, m.offset_data, m.size) for m in tar.getmembers() if m.isfile()]
