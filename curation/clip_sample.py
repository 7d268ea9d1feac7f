"""A few frames of a video, spread evenly over it, decoded cheaply and held in memory only as the result.

The packets are read once (no decoding) to learn every frame's presentation time and where the keyframes
are; then the decoder jumps to the keyframe before each wanted frame and decodes forward only from there,
never backwards (one forward pass that skips the stretches it does not need). On a clip with a keyframe
every second, three frames cost about three seconds' worth of decoding at most, whatever the clip's length.
A file whose packets carry no timestamps is decoded from the start instead. Frames come in displayed
orientation (a display rotation is applied) as RGB uint8.
"""

from __future__ import annotations

import bisect

import av
import numpy as np

from curation.media import open_container
from shards.sampling import uniform_indices


def sample_frames(path: str, count: int, max_side: int | None = None) -> list[np.ndarray]:
    """`count` frames spread evenly over the video at `path` (first and last included when `count` > 1), as RGB
    uint8 arrays, each downscaled (area filter) so its long side is at most `max_side` (None: full size).

    Fewer frames come back when the video has fewer; none for a video with no decodable frame.
    """
    if count <= 0:
        return []
    with open_container(path) as container:
        if not container.streams.video:
            return []
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        timeline = [(p.pts, bool(p.is_keyframe)) for p in container.demux(stream) if p.size]
        if not timeline:
            return []
        if any(pts is None for pts, _ in timeline):
            container.seek(0, stream=stream, backward=True, any_frame=False)
            return _sequential(container, stream, len(timeline), count, max_side)
        return _seeking(container, stream, timeline, count, max_side)


def _seeking(container, stream, timeline: list[tuple[int, bool]], count: int, max_side: int | None) -> list:
    """Jump to the keyframe before each wanted frame unless the decoder is already between the two."""
    shown = sorted(pts for pts, _ in timeline)  # presentation order
    wanted = [shown[i] for i in uniform_indices(len(shown), count)]
    keys = sorted(pts for pts, key in timeline if key) or [shown[0]]
    frames: list[np.ndarray] = []
    decoder = None
    position: int | None = None  # pts of the last frame decoded
    for target in wanted:
        start = keys[max(0, bisect.bisect_right(keys, target) - 1)]
        if decoder is None or position is None or position < start or position >= target:
            container.seek(start, stream=stream, backward=True, any_frame=False)
            decoder = container.decode(stream)
        best = None
        for frame in decoder:
            if frame.pts is None:
                continue
            position = frame.pts
            if frame.pts <= target:
                best = frame
            if frame.pts >= target:
                break
        if best is None:
            break
        frames.append(_rgb(best, max_side))
    return frames


def _sequential(container, stream, total: int, count: int, max_side: int | None) -> list:
    wanted = set(uniform_indices(total, count))
    last = max(wanted)
    frames = []
    for index, frame in enumerate(container.decode(stream)):
        if index in wanted:
            frames.append(_rgb(frame, max_side))
        if index >= last:
            break
    return frames


def _rgb(frame: av.VideoFrame, max_side: int | None) -> np.ndarray:
    """RGB of `frame`, scaled in swscale (area) to fit `max_side`, rotated as displayed."""
    w, h = frame.width, frame.height
    scale = min(1.0, max_side / max(w, h)) if max_side else 1.0
    if scale < 1.0:
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
        rgb = frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA")
    else:
        rgb = frame.to_ndarray(format="rgb24")
    turns = int(round((frame.rotation or 0) / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb
