"""The measured camera timeline in words: what captions (grounded or VLM) must agree with."""

from __future__ import annotations

from typing import Any

from shards.labels import DIRECTIONAL, OPPOSITE
from shards.timeline import Segment, clip_segments

__all__ = ["DIRECTIONAL", "MOVES", "OPPOSITE", "Segment", "confident", "describe_facts", "pace", "segments_of"]

MOVES = {
    "pan_left": "pans left", "pan_right": "pans right", "tilt_up": "tilts up", "tilt_down": "tilts down",
    "zoom_in": "zooms in", "zoom_out": "zooms out", "roll_cw": "rolls clockwise",
    "roll_ccw": "rolls counter-clockwise", "truck_left": "trucks left", "truck_right": "trucks right",
    "pedestal_up": "pedestals up", "pedestal_down": "pedestals down", "dolly_in": "dollies in",
    "dolly_out": "dollies out", "orbit_left": "orbits left", "orbit_right": "orbits right",
    "tracking_left": "tracks left", "tracking_right": "tracks right", "static": "holds still",
    "shaky": "shakes (hand-held jitter)",
    "edited": "is interrupted by a fade or dissolve",
}
segments_of = clip_segments  # the clip's timeline, with times from the start of the clip


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
