"""Stable identifiers of the dataset contract: source ids and clip ids (data contract: OUT layout)."""

from __future__ import annotations

import hashlib
from typing import BinaryIO

SOURCE_ID_HEX = 16
_CHUNK = 4 << 20


def source_id_from_stream(stream: BinaryIO) -> str:
    """First 16 hex digits of the sha256 of everything `stream` yields."""
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()[:SOURCE_ID_HEX]


def clip_id(source_id: str, start_frame: int, end_frame: int) -> str:
    """`<source_id>-<start_frame>-<end_frame>`; frames in the source's decode order, end exclusive."""
    if not 0 <= start_frame < end_frame:
        raise ValueError(f"bad clip range [{start_frame}, {end_frame})")
    return f"{source_id}-{start_frame}-{end_frame}"


def parse_clip_id(value: str) -> tuple[str, int, int]:
    """Inverse of `clip_id`."""
    source_id, start, end = value.rsplit("-", 2)
    return source_id, int(start), int(end)
