"""Turn `droplet curate INPUT` into a sorted list of sources: a folder, a file, or a text file of
paths / URIs (any fsspec protocol)."""

from __future__ import annotations

from pathlib import Path

import fsspec

LIST_SUFFIXES = (".txt", ".lst", ".list")


def _is_uri(value: str) -> bool:
    return "://" in value and not value.startswith("file://")


def _wanted(name: str, extensions: tuple[str, ...]) -> bool:
    return name.lower().endswith(tuple(e.lower() for e in extensions)) and not Path(name).name.startswith(".")


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


def expand_input(value: str, extensions: tuple[str, ...]) -> list[str]:
    """Sources named by `value`, sorted and without repeats. Raises ValueError when nothing is there."""
    if _is_uri(value):
        fs, path = fsspec.core.url_to_fs(value)
        protocol = value.split("://", 1)[0]
        if fs.isdir(path):
            found = [p for p in fs.find(path) if _wanted(p, extensions)]
            sources = [f"{protocol}://{p}" if "://" not in p else p for p in found]
        elif value.lower().endswith(LIST_SUFFIXES):
            with fsspec.open(value, "rt") as handle:
                sources = _read_list(handle.read(), None)
        else:
            sources = [value]
    else:
        path = Path(value[len("file://"):] if value.startswith("file://") else value).expanduser()
        if path.is_dir():
            sources = [str(p.resolve()) for p in path.rglob("*") if p.is_file() and _wanted(p.name, extensions)]
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            sources = _read_list(path.read_text(), str(path.parent))
        elif path.exists():
            sources = [str(path.resolve())]
        else:
            raise ValueError(f"input not found: {value}")
    return sorted(dict.fromkeys(sources))
