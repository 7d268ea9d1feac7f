"""Thumbnail strips for the report's clip grid: a few frames of a clip file side by side, one small JPEG.

A strip is decoded once per clip and kept in a cache folder (clip files never change under their clip_id), so a
report written again after captioning or sharding decodes nothing new. Decoding is bounded: keyframes only (one
about every second), each scaled down as it comes, one per target time (a short clip's strip may show one frame
fewer than asked rather than the same keyframe twice); a clip with fewer keyframes still is decoded frame by frame,
keeping only the frames it picks.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from runtime.atomic import write_bytes_atomic

log = logging.getLogger("droplet.curate")

FRAMES = 4
HEIGHT = 96
JPEG_QUALITY = 70


def _targets(duration: float, frames: int) -> list[float]:
    """Times (s) the strip shows: the middles of `frames` equal parts of the clip."""
    return [duration * (2 * k + 1) / (2 * frames) for k in range(frames)]


def _small(frame, height: int) -> np.ndarray:  # noqa: ANN001 - an av.VideoFrame
    width = max(2, round(frame.width * height / max(1, frame.height)))
    return frame.reformat(width=width, height=height, format="bgr24").to_ndarray()


def _pick(path: Path, frames: int, height: int, keyframes_only: bool) -> list[np.ndarray]:
    """The decoded frames nearest each target time, scaled to `height`, distinct; streamed (at most one small
    image per target is held)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if keyframes_only:
            stream.codec_context.skip_frame = "NONKEY"
        base = stream.time_base or 0
        duration = float(stream.duration * base) if stream.duration else float(container.duration or 0) / 1e6
        targets = _targets(duration, frames)
        best: list[tuple[float, float, np.ndarray | None]] = [(float("inf"), -1.0, None)] * frames
        for frame in container.decode(stream):
            t = float(frame.pts * base) if frame.pts is not None else 0.0
            near = [k for k in range(frames) if abs(t - targets[k]) < best[k][0]]
            if near:
                small = _small(frame, height)
                for k in near:
                    best[k] = (abs(t - targets[k]), t, small)
    chosen, seen = [], set()
    for _, t, image in best:
        if image is not None and t not in seen:
            seen.add(t)
            chosen.append(image)
    return chosen


def thumbnail_strip(path: str | Path, frames: int = FRAMES, height: int = HEIGHT) -> bytes | None:
    """A JPEG of (up to) `frames` distinct frames of the clip file side by side, `height` px high; None when the
    file cannot be read."""
    import cv2

    try:
        images = _pick(Path(path), frames, height, keyframes_only=True)
        if len(images) < max(1, frames - 1):
            images = _pick(Path(path), frames, height, keyframes_only=False)
    except Exception as exc:  # noqa: BLE001 - a clip the report cannot read gets no strip, the report goes on
        log.warning("report: no thumbnails for %s: %s: %s", path, type(exc).__name__, exc)
        return None
    if not images:
        return None
    ok, jpeg = cv2.imencode(".jpg", np.concatenate(images, axis=1), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return jpeg.tobytes() if ok else None


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def cached_strips(clips: Iterable[tuple[str, Path]], cache_dir: Path, workers: int = 4) -> dict[str, str]:
    """clip_id -> the strip as a data URL, for each (clip_id, clip file) whose file exists; strips not in
    `cache_dir` yet are decoded (`workers` threads: PyAV decodes outside the GIL) and stored there."""

    def one(item: tuple[str, Path]) -> tuple[str, bytes | None]:
        clip_id, path = item
        cached = cache_dir / f"{clip_id}.jpg"
        if cached.exists():
            return clip_id, cached.read_bytes()
        if not path.exists():
            return clip_id, None
        jpeg = thumbnail_strip(path)
        if jpeg is not None:
            write_bytes_atomic(cached, jpeg)
        return clip_id, jpeg

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return {cid: data_url(jpeg) for cid, jpeg in pool.map(one, list(clips)) if jpeg is not None}
