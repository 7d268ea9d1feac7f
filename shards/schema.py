"""The parquet schemas of OUT (data contract: OUT layout): sources, scenes, clips (the columns shards carry into
training) and captions."""

from __future__ import annotations

import pyarrow as pa

from shards.captions import CAPTION_SCHEMA
from shards.labels import CAMERA_LABELS
from shards.timeline import TIMELINE_SEGMENT

__all__ = ["CAMERA_LABELS", "CAPTION_SCHEMA", "CLIP_SCHEMA", "SCENE_SCHEMA", "SOURCE_SCHEMA", "TIMELINE_SEGMENT"]

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
    ("paper_class", pa.string()),  # the DropletVideo paper's class of camera_motion (shards.labels.PAPER_CLASS)
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
    ("import_row", pa.string()),  # `droplet import-droplet`: the metadata row the clip was cut from, as JSON
    ("crop", pa.list_(pa.int64())),  # the black-border crop applied, [x, y, w, h] of the source picture
    ("sharpness", pa.float64()),  # the checks after extraction: null when a check did not run
    ("exposure", pa.float64()),
    ("text_area", pa.float64()),
    ("ocr_text", pa.string()),
    ("aesthetic_score", pa.float64()),
    ("scene_tags", pa.list_(pa.struct([("tag", pa.string()), ("score", pa.float32())]))),
    ("duplicate_of", pa.string()),
])

SCENE_SCHEMA = pa.schema([("source_id", pa.string()), ("start_frame", pa.int64()), ("end_frame", pa.int64()),
                          ("score", pa.float64())])

SOURCE_SCHEMA = pa.schema([
    ("source", pa.string()), ("source_id", pa.string()), ("status", pa.string()), ("reason", pa.string()),
    ("message", pa.string()), ("file_bytes", pa.int64()), ("container", pa.string()), ("codec", pa.string()),
    ("pix_fmt", pa.string()), ("width", pa.int64()), ("height", pa.int64()), ("rotation", pa.int64()),
    ("fps", pa.float64()), ("nominal_fps", pa.float64()), ("vfr", pa.bool_()), ("num_frames", pa.int64()),
    ("duration_s", pa.float64()), ("has_audio", pa.bool_()), ("bit_rate", pa.int64()), ("warning", pa.string()),
    ("decoded_frames", pa.int64()), ("scenes", pa.int64()), ("clips", pa.int64()), ("clips_kept", pa.int64()),
])
