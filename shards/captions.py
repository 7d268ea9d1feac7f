"""Caption rows (data contract: `captions.parquet`): their schema and which row of a clip counts."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

CAPTION_SCHEMA = pa.schema([
    ("clip_id", pa.string()), ("caption", pa.string()), ("backend", pa.string()), ("model", pa.string()),
    ("prompt_version", pa.string()), ("words", pa.int64()), ("qa_passed", pa.bool_()), ("qa_reason", pa.string()),
    ("repaired", pa.bool_()), ("error", pa.string()), ("created_at", pa.float64()),
])


def latest_captions(rows: Iterable[dict] | pa.Table) -> dict[str, dict]:
    """clip_id -> its newest caption row: the last row for that clip_id, in order (oldest first)."""
    if isinstance(rows, pa.Table):
        rows = rows.to_pylist()
    return {row["clip_id"]: row for row in rows}


def is_captioned(row: dict | None) -> bool:
    """A caption row counts when it has a caption and no error."""
    return row is not None and row.get("caption") is not None and row.get("error") is None
