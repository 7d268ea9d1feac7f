"""Turn `droplet curate INPUT` into a sorted list of sources: a folder, a file, or a text file of
paths / URIs (any fsspec protocol).

Whatever a folder holds, scanning ends and says what it left out: files by extension (`skipped`), and entries
that cannot be sources (`unusable`: symlink loops, broken links, links to folders, which are not followed, so a
link back up the tree never loops, names that are not UTF-8, pipes and devices), each with why.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import fsspec

LIST_SUFFIXES = (".txt", ".lst", ".list")


def _is_uri(value: str) -> bool:
    return "://" in value and not value.startswith("file://")


def _wanted(name: str, extensions: tuple[str, ...]) -> bool:
    return name.lower().endswith(tuple(e.lower() for e in extensions)) and not Path(name).name.startswith(".")


def extension_of(name: str) -> str:
    """How a skipped file is counted: its lower-case extension, or `(none)`."""
    return Path(name).suffix.lower() or "(none)"


def shown(path: str | os.PathLike) -> str:
    """`path` as text that can be logged and stored: a name that is not UTF-8 keeps its odd bytes as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass
class ScannedInput:
    """The sources named by an INPUT, the files of a scanned folder that are not taken as videos, and the
    entries that cannot be sources at all (path as `shown`, why)."""

    sources: list[str]
    skipped: list[str] = field(default_factory=list)
    unusable: list[tuple[str, str]] = field(default_factory=list)


def _read_list(data: bytes, base: str | None) -> tuple[list[str], list[tuple[str, str]]]:
    """Entries of a list file (UTF-8, one per line, `#` comments, blanks around an entry dropped); relative
    paths are taken from the list's folder `base`. A line that is not UTF-8 is unusable, not fatal."""
    sources, unusable = [], []
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            unusable.append((f"line {number}: {raw.decode('utf-8', 'backslashreplace').strip()}",
                             "the line is not UTF-8"))
            continue
        if not line or line.startswith("#"):
            continue
        if base is not None and not _is_uri(line) and not Path(line).is_absolute():
            line = str((Path(base) / line).resolve())
        sources.append(line)
    return sources, unusable


def _not_a_source(path: Path) -> str | None:
    """Why a folder entry other than a regular file or a real folder cannot be a source (None: it can)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not UTF-8 (rename it)"
    try:
        link = path.is_symlink()
        info = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop"
        if exc.errno == errno.ENOENT and link:
            return f"a broken symlink (to {shown(os.readlink(path))})"
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISDIR(info.st_mode):
        return f"a symlink to a folder (not followed: {shown(path.resolve())})" if link else None
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a pipe, socket or device)"
    return None


def _scan_folder(folder: Path, extensions: tuple[str, ...]) -> ScannedInput:
    sources, skipped, unusable = [], [], []
    for p in folder.rglob("*"):  # never descends into a linked folder
        why = _not_a_source(p)
        if why is not None:
            unusable.append((shown(p), why))
        elif p.is_file():
            (sources if _wanted(p.name, extensions) else skipped).append(str(p.resolve()))
    return ScannedInput(sources, skipped, unusable)


def scan_input(value: str, extensions: tuple[str, ...]) -> ScannedInput:
    """Sources named by `value`, sorted and without repeats; a folder's other files (an extension not in
    `extensions`, or hidden) are listed as skipped, and entries that cannot be sources as unusable. Raises
    ValueError when `value` is not there."""
    skipped: list[str] = []
    unusable: list[tuple[str, str]] = []
    if _is_uri(value):
        fs, path = fsspec.core.url_to_fs(value)
        protocol = value.split("://", 1)[0]
        if fs.isdir(path):
            found = [p if "://" in p else f"{protocol}://{p}" for p in fs.find(path)]
            sources = [p for p in found if _wanted(p, extensions)]
            skipped = [p for p in found if not _wanted(p, extensions)]
        elif value.lower().endswith(LIST_SUFFIXES):
            with fsspec.open(value, "rb") as handle:
                sources, unusable = _read_list(handle.read(), None)
        else:
            sources = [value]
    else:
        path = Path(value[len("file://"):] if value.startswith("file://") else value).expanduser()
        if path.is_dir():
            scanned = _scan_folder(path, extensions)
            sources, skipped, unusable = scanned.sources, scanned.skipped, scanned.unusable
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            sources, unusable = _read_list(path.read_bytes(), str(path.parent))
        elif path.exists():
            sources = [str(path.resolve())]
        else:
            raise ValueError(f"input not found: {value}")
    return ScannedInput(sorted(dict.fromkeys(sources)), sorted(skipped), sorted(unusable))


def expand_input(value: str, extensions: tuple[str, ...]) -> list[str]:
    """Sources named by `value`, sorted and without repeats. Raises ValueError when nothing is there."""
    return scan_input(value, extensions).sources
