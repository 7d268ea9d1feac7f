"""One segment of a clip's camera timeline (data contract: `camera_timeline`), in Python and in Arrow."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

TIMELINE_SEGMENT = pa.struct([("start_s", pa.float64()), ("end_s", pa.float64()), ("label", pa.string()),
                              ("speed", pa.float64()), ("confidence", pa.float64())])


@dataclass(frozen=True)
class Segment:
    """A stretch of one camera label: times in seconds, speed in frame widths per second, confidence 0-1."""

    start_s: float
    end_s: float
    label: str
    speed: float  # widths per second of the segment's move (0 for static; jitter for shaky)
    confidence: float

    def to_dict(self) -> dict:
        """The parquet / JSON form (floats rounded to 4 places)."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], offset_s: float = 0.0) -> Segment:
        """From a stored segment; `offset_s` is subtracted from both times (never below 0)."""
        return cls(max(0.0, float(data["start_s"]) - offset_s), max(0.0, float(data["end_s"]) - offset_s),
                   str(data["label"]), float(data.get("speed") or 0.0), float(data.get("confidence") or 0.0))


def clip_segments(clip: dict[str, Any]) -> list[Segment]:
    """A clips.parquet row's timeline with times from the start of the clip (the parquet holds source times)."""
    start = float(clip.get("start_s") or 0.0)
    return [Segment.from_dict(seg, start) for seg in clip.get("camera_timeline") or []]
