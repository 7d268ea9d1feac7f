"""Reason codes (docs/data-contract.md) and the exception that carries one."""

from __future__ import annotations

EMPTY_FILE = "empty_file"
NOT_A_VIDEO = "not_a_video"
NO_VIDEO_STREAM = "no_video_stream"
TRUNCATED = "truncated"
DECODE_ERROR = "decode_error"
TIMEOUT = "timeout"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
TOO_SMALL = "too_small"
TOO_LARGE = "too_large"
DUPLICATE = "duplicate"
STATIC = "static"
EDITED = "edited"
UNREADABLE = "unreadable"  # the source could not be opened for reading (missing, permission, network)
CHANGED = "changed"  # the file changed (size or modification time) between its probe and a later read of it
MISSING_VIDEO = "missing_video"  # import-droplet: no file in VIDEO_DIR for a video the metadata lists
LOW_QUALITY = "low_quality"  # a clip file fails a technical check (too small, dark, blown out, blocky, blurry)
TEXT_OVERLAY = "text_overlay"  # text covers too much of a clip's frames
LOW_AESTHETIC = "low_aesthetic"  # the aesthetic head scores a clip under its threshold
NEAR_DUPLICATE = "near_duplicate"  # a clip looks like one committed before it
NOT_SELECTED = "not_selected"  # selection: a class it drops, or static clips over their share

ALL = (
    EMPTY_FILE, NOT_A_VIDEO, NO_VIDEO_STREAM, TRUNCATED, DECODE_ERROR, TIMEOUT, TOO_SHORT, TOO_LONG,
    TOO_SMALL, TOO_LARGE, DUPLICATE, STATIC, EDITED, UNREADABLE, CHANGED, MISSING_VIDEO, LOW_QUALITY, TEXT_OVERLAY,
    LOW_AESTHETIC, NEAR_DUPLICATE, NOT_SELECTED,
)


class Rejected(Exception):
    """A source or clip is unusable; `reason` is a reason code, the message says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
