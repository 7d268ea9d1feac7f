"""Frames a VLM sees: sampled uniformly over a clip file, downscaled, JPEG-encoded."""

from __future__ import annotations

import base64

import av
import cv2
import numpy as np

from shards.sampling import uniform_indices


def sample_jpegs(path: str, count: int, max_side: int, quality: int = 90) -> list[bytes]:
    """JPEG bytes of `count` frames sampled uniformly from the clip at `path` (decoded in one pass)."""
    return [_jpeg(bgr, max_side, quality) for bgr in _sampled(path, count, "bgr24")]


def sample_rgb(path: str, count: int, max_side: int) -> list[np.ndarray]:
    """`count` frames sampled uniformly from the clip at `path`, RGB uint8, long side at most `max_side`
    (downscaled, never up): what an in-process VLM processor takes."""
    return [_fit(rgb, max_side) for rgb in _sampled(path, count, "rgb24")]


def _sampled(path: str, count: int, pixel_format: str):  # noqa: ANN202 - a generator of arrays
    """The uniformly sampled frames of one decoding pass, one at a time."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        total = stream.frames or sum(1 for _ in container.demux(stream) if _.size)
        if not stream.frames:
            container.seek(0)
        wanted = set(uniform_indices(total, count))
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                yield frame.to_ndarray(format=pixel_format)
            if index >= max(wanted, default=0):
                break


def _fit(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return image


def image_jpeg(path: str, max_side: int, quality: int = 90) -> bytes:
    """JPEG bytes of the image file at `path`, downscaled to `max_side` (never up); ValueError when unreadable."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: not a readable image")
    return _jpeg(bgr, max_side, quality)


def _jpeg(bgr: np.ndarray, max_side: int, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", _fit(bgr, max_side), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def video_data_url(jpegs: list[bytes]) -> str:
    """Frames as one video for OpenAI-compatible servers that take them (vLLM: `video/jpeg`)."""
    return "data:video/jpeg;base64," + ",".join(base64.b64encode(j).decode("ascii") for j in jpegs)
