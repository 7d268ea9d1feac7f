"""Long videos for benchmarks and memory tests, streamed to disk a frame at a time."""

from __future__ import annotations

import math
from pathlib import Path

import cv2

from .encode import H264Writer
from .textures import procedural_texture

SEGMENT_S = 4.0  # a hard cut about every 4 s
PAN_PX = 2  # whole pixels per frame: frames are plain crops of the texture, no resampling


def make_long_video(path: str | Path, seconds: float, width: int = 1280, height: int = 720, fps: int = 25,
                    preset: str = "ultrafast", seed: int = 10_000) -> Path:
    """Write an H.264 video of ``seconds`` seconds: slow pans over fresh textures, a hard cut every ~4 s.

    Frames are generated one at a time (memory stays flat whatever the length); each segment's texture is
    made at half resolution and upscaled, which keeps a 60 s 1280x720 file to a few seconds of work. Segment
    k's texture is seeded `seed + k`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    total = max(1, round(seconds * fps))
    seg_len = max(1, round(SEGMENT_S * fps))
    with H264Writer(path, width, height, fps, preset=preset, gop=fps) as writer:
        for seg in range(math.ceil(total / seg_len)):
            n = min(seg_len, total - seg * seg_len)
            span = PAN_PX * (n - 1)
            small = procedural_texture((height + 1) // 2, (width + span + 1) // 2, seed=seed + seg)
            texture = cv2.resize(small, (small.shape[1] * 2, small.shape[0] * 2),
                                 interpolation=cv2.INTER_CUBIC)
            for i in range(n):
                x = PAN_PX * i if seg % 2 == 0 else span - PAN_PX * i
                writer.write(texture[:height, x:x + width])
    return path
