"""Camera-motion labels (data contract: camera-motion labels), from the camera's point of view, and their opposites.

The one declaration of the vocabulary: curation writes these labels, captioning words them, QA checks a
caption against them, shards and training read them.
"""

from __future__ import annotations

ROTATIONS = ("pan_left", "pan_right", "tilt_up", "tilt_down", "roll_cw", "roll_ccw")
TRANSLATIONS = ("truck_left", "truck_right", "pedestal_up", "pedestal_down", "dolly_in", "dolly_out")
LENS = ("zoom_in", "zoom_out")
AROUND_SUBJECT = ("orbit_left", "orbit_right")
FOLLOWING = ("tracking_left", "tracking_right")
NON_DIRECTIONAL = ("static", "shaky", "edited")

CAMERA_LABELS = (*NON_DIRECTIONAL, *ROTATIONS, *TRANSLATIONS, *LENS, *AROUND_SUBJECT, *FOLLOWING)
"""Every label a clip's `camera_motion` or a timeline segment may carry."""

_PAIRS = [(a, b) for group in (ROTATIONS, TRANSLATIONS, LENS, AROUND_SUBJECT, FOLLOWING)
          for a, b in zip(group[::2], group[1::2], strict=True)]
OPPOSITE: dict[str, str] = {**{a: b for a, b in _PAIRS}, **{b: a for a, b in _PAIRS}}
"""A directional label -> the move in the opposite direction (pan_left <-> pan_right, ...)."""
DIRECTIONAL = frozenset(OPPOSITE)
