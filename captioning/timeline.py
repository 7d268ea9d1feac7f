"""The measured camera timeline in words: what captions (grounded or VLM) must agree with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MOVES = {
    "pan_left": "pans left", "pan_right": "pans right", "tilt_up": "tilts up", "tilt_down": "tilts down",
    "zoom_in": "zooms in", "zoom_out": "zooms out", "roll_cw": "rolls clockwise",
    "roll_ccw": "rolls counter-clockwise", "static": "holds still", "shaky": "shakes (hand-held jitter)",
    "edited": "is interrupted by a fade or dissolve",
}
OPPOSITE = {
    "pan_left": "pan_right", "pan_right": "pan_left", "tilt_up": "tilt_down", "tilt_down": "tilt_up",
    "zoom_in": "zoom_out", "zoom_out": "zoom_in", "roll_cw": "roll_ccw", "roll_ccw": "roll_cw",
}
DIRECTIONAL = frozenset(OPPOSITE)


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    label: str
    speed: float
    confidence: float


def segments_of(clip: dict[str, Any]) -> list[Segment]:
    """The clip's timeline, with times from the start of the clip (the parquet holds source times)."""
    start = float(clip.get("start_s") or 0.0)
    out = []
    for seg in clip.get("camera_timeline") or []:
        out.append(Segment(max(0.0, float(seg["start_s"]) - start), max(0.0, float(seg["end_s"]) - start),
                           str(seg["label"]), float(seg.get("speed") or 0.0), float(seg.get("confidence") or 0.0)))
    return out


def confident(segments: list[Segment], min_confidence: float) -> list[Segment]:
    return [s for s in segments if s.confidence >= min_confidence]


def pace(speed: float) -> str:
    """Speed in frame widths per second, as a word."""
    if speed < 0.06:
        return "slowly"
    if speed < 0.2:
        return "steadily"
    return "quickly"


def describe_facts(clip: dict[str, Any], min_confidence: float) -> str:
    """The timeline as numbered facts for a VLM prompt."""
    lines = []
    for seg in segments_of(clip):
        sure = "certain" if seg.confidence >= min_confidence else "uncertain"
        move = MOVES.get(seg.label, seg.label)
        speed = f", {pace(seg.speed)}" if seg.label in DIRECTIONAL else ""
        lines.append(f"- {seg.start_s:.1f}-{seg.end_s:.1f} s: the camera {move}{speed} ({sure})")
    return "\n".join(lines) or "- the camera motion was not measured"
