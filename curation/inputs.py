"""Turn `droplet curate INPUT` into a sorted list of sources: a folder, a file, or a text file of
paths / URIs (any fsspec protocol)."""

from __future__ import annotations

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


@dataclass
class ScannedInput:
    """The sources named by an INPUT, and the files of a scanned folder that are not taken as videos."""

    sources: list[str]
    skipped: list[str] = field(default_factory=list)


def _read_list(text: str, base: str | None) -> list[str]:
    sources = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if base is not None and not _is_uri(line) and not Path(line).is_absolute():
            line = str((Path(base) / line).resolve())
        sources.append(line)
    return sources


def scan_input(value: str, extensions: tuple[str, ...]) -> ScannedInput:
    """Sources named by `value`, sorted and without repeats; a folder's other files (an extension not in
    `extensions`, or hidden) are listed as skipped. Raises ValueError when `value` is not there."""
    skipped: list[str] = []
    if _is_uri(value):
        fs, path = fsspec.core.url_to_fs(value)
        protocol = value.split("://", 1)[0]
        if fs.isdir(path):
            found = [p if "://" in p else f"{protocol}://{p}" for p in fs.find(path)]
            sources = [p for p in found if _wanted(p, extensions)]
            skipped = [p for p in found if not _wanted(p, extensions)]
        elif value.lower().endswith(LIST_SUFFIXES):
            with fsspec.open(value, "rt") as handle:
                sources = _read_list(handle.read(), None)
        else:
            sources = [value]
    else:
        path = Path(value[len("file://"):] if value.startswith("file://") else value).expanduser()
        if path.is_dir():
            files = [p for p in path.rglob("*") if p.is_file()]
            sources = [str(p.resolve()) for p in files if _wanted(p.name, extensions)]
            skipped = [str(p.resolve()) for p in files if not _wanted(p.name, extensions)]
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            sources = _read_list(path.read_text(), str(path.parent))
        elif path.exists():
            sources = [str(path.resolve())]
        else:
            raise ValueError(f"input not found: {value}")
    return ScannedInput(sorted(dict.fromkeys(sources)), sorted(skipped))


def expand_input(value: str, extensions: tuple[str, ...]) -> list[str]:
    """Sources named by `value`, sorted and without repeats. Raises ValueError when nothing is there."""
    return scan_input(value, extensions).sources
