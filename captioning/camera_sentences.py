"""The grounded writer's camera sentences for a measured timeline, on their own: one sentence per timeline
segment, in time order, worded exactly as `captioning.grounded.GroundedCaptioner` words them in a full caption
(an uncertain segment is said to move "in a way too uncertain to name", never named)."""

from __future__ import annotations

from typing import Any

from captioning.grounded import GroundedCaptioner


def camera_sentences(clip: dict[str, Any], min_confidence: float = 0.5) -> list[str]:
    """The camera account of `clip` (a clips.parquet row): one sentence per segment of its timeline, oldest
    first; empty when the clip has no timeline."""
    return GroundedCaptioner(min_confidence=min_confidence).camera_sentences(clip)
