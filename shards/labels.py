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

PAPER_CLASSES = {
    "C1": AROUND_SUBJECT,
    "C2": ROTATIONS,
    "C3": FOLLOWING,
    "C4": (*TRANSLATIONS, *LENS),
    "C5": ("static", "shaky"),
    "C6": ("edited",),
}
"""The DropletVideo paper's camera classes (its section 3.3): C1 orbiting, C2 pan/tilt (and roll), C3 tracking,
C4 linear travel (and the lens), C5 static or hand-held, C6 edited."""
PAPER_CLASS: dict[str, str] = {label: c for c, labels in PAPER_CLASSES.items() for label in labels}
"""A label -> its paper class (`clips.parquet` `paper_class`, from `camera_motion`)."""
