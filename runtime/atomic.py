"""Atomic writes: a file appears under its name complete, or not at all (temp name, then rename)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def temp_name(path: Path) -> Path:
    """A hidden temp name beside `path`, unique to this process."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def json_default(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON values."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """`data` as JSON with sorted keys (numpy values converted)."""
    write_text_atomic(path, json.dumps(data, sort_keys=True, default=json_default))


def read_json(path: str | os.PathLike) -> Any | None:
    """The JSON at `path`, or None when it is missing or torn."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_parquet_atomic(path: str | os.PathLike, table) -> None:  # noqa: ANN001 - a pyarrow.Table
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    pq.write_table(table, tmp)
    os.replace(tmp, path)
