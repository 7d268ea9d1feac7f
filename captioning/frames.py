"""Frames a VLM sees: sampled uniformly over a clip file, downscaled, JPEG-encoded."""

from __future__ import annotations

import base64

import av
import cv2
import numpy as np

from shards.sampling import uniform_indices


def sample_jpegs(path: str, count: int, max_side: int, quality: int = 90) -> list[bytes]:
    """JPEG bytes of `count` frames sampled uniformly from the clip at `path` (decoded in one pass)."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        total = stream.frames or sum(1 for _ in container.demux(stream) if _.size)
        if not stream.frames:
            container.seek(0)
        wanted = set(uniform_indices(total, count))
        images = []
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                images.append(_jpeg(frame.to_ndarray(format="bgr24"), max_side, quality))
            if index >= max(wanted, default=0):
                break
    return images


def image_jpeg(path: str, max_side: int, quality: int = 90) -> bytes:
    """JPEG bytes of the image file at `path`, downscaled to `max_side` (never up); ValueError when unreadable."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: not a readable image")
    return _jpeg(bgr, max_side, quality)


def _jpeg(bgr: np.ndarray, max_side: int, quality: int) -> bytes:
    h, w = bgr.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        bgr = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def video_data_url(jpegs: list[bytes]) -> str:
    """Frames as one video for OpenAI-compatible servers that take them (vLLM: `video/jpeg`)."""
    return "data:video/jpeg;base64," + ",".join(base64.b64encode(j).decode("ascii") for j in jpegs)
