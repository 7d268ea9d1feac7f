"""The clip schema: the columns of `clips.parquet` that shards carry into training (SPEC)."""

from __future__ import annotations

import pyarrow as pa

CAMERA_LABELS = (
    "static", "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out", "roll_cw", "roll_ccw",
    "shaky", "edited",
)
RESERVED_CAMERA_LABELS = ("orbit_left", "orbit_right", "tracking")

TIMELINE_SEGMENT = pa.struct([
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),
    ("label", pa.string()),
    ("speed", pa.float64()),
    ("confidence", pa.float64()),
])

CLIP_SCHEMA = pa.schema([
    ("clip_id", pa.string()),
    ("source", pa.string()),
    ("source_id", pa.string()),
    ("start_frame", pa.int64()),
    ("end_frame", pa.int64()),
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),
    ("fps", pa.float64()),
    ("num_frames", pa.int64()),
    ("width", pa.int64()),
    ("height", pa.int64()),
    ("has_audio", pa.bool_()),
    ("source_has_audio", pa.bool_()),
    ("camera_motion", pa.string()),
    ("camera_timeline", pa.list_(TIMELINE_SEGMENT)),
    ("camera_motion_score", pa.float64()),
    ("camera_jitter", pa.float64()),
    ("object_motion_score", pa.float64()),
    ("brightness", pa.float64()),
    ("colors", pa.list_(pa.string())),
    ("keep", pa.bool_()),
    ("reject_reason", pa.string()),
    ("reject_message", pa.string()),
    ("file_bytes", pa.int64()),
])

SCENE_SCHEMA = pa.schema([
    ("source_id", pa.string()),
    ("start_frame", pa.int64()),
    ("end_frame", pa.int64()),
    ("score", pa.float64()),
])
