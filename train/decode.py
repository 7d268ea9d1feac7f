"""Decode the sampled frames of a clip: one seek to the window's start, then decode in order.

Only the chosen frames are converted (and resized by swscale straight to the bucket's cover size); the others are
decoded and dropped. Seeking once per frame would re-decode the GOP from its keyframe every time.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import av
import numpy as np


class DecodeError(Exception):
    """The clip could not be decoded to the frames asked for."""


def cover_size(src_w: int, src_h: int, width: int, height: int) -> tuple[int, int]:
    """Size that covers (width, height) with the source's aspect ratio (never below the target)."""
    scale = max(width / src_w, height / src_h)
    return max(width, round(src_w * scale)), max(height, round(src_h * scale))


def decode_frames(data: bytes, indices: Sequence[int], fps: float, height: int, width: int,
                  threads: int = 0) -> np.ndarray:
    """uint8 [len(indices), height, width, 3]: frames at `indices` (sorted, by frame number at rate `fps`),
    resized to cover (height, width) and centre-cropped. `threads` 0 lets FFmpeg choose; loader workers pass 1
    (the workers are the parallelism)."""
    wanted = sorted(set(indices))
    out: dict[int, np.ndarray] = {}
    try:
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            stream.thread_count = threads
            tb = float(stream.time_base)
            start = stream.start_time or 0
            first = wanted[0]
            if first > 0:
                container.seek(start + int(first / fps / tb), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                index = round((frame.pts - start) * tb * fps)
                if index < first or index not in wanted:
                    if index > wanted[-1]:
                        break
                    continue
                cw, ch = cover_size(frame.width, frame.height, width, height)
                rgb = frame.reformat(width=cw, height=ch, format="rgb24", interpolation="AREA").to_ndarray()
                top, left = (ch - height) // 2, (cw - width) // 2
                out[index] = rgb[top:top + height, left:left + width]
                if len(out) == len(wanted):
                    break
    except (av.FFmpegError, IndexError, ValueError) as exc:
        raise DecodeError(f"{type(exc).__name__}: {exc}") from None
    missing = [i for i in wanted if i not in out]
    if missing:
        raise DecodeError(f"frames {missing[:5]} not found (clip shorter than its metadata?)")
    return np.stack([out[i] for i in indices])
