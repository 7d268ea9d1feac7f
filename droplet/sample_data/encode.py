"""Deterministic H.264 (libx264, yuv420p) mp4 writer on PyAV, plus a small AAC tone writer."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

# A fixed x264 thread count keeps the output byte-identical across machines (x264 is deterministic for a
# given thread count, whatever the number of cores).
X264_THREADS = 2
# BT.601 limited range ("tv"), as OpenCV's RGB->I420 conversion produces; tagged in the stream's VUI.
BT601, TV_RANGE = 6, 1  # AVCOL_SPC/PRI/TRC_SMPTE170M, AVCOL_RANGE_MPEG


class H264Writer:
    """Writes RGB frames to an mp4.

    Constant rate by default (pts = frame index at ``1/fps``); pass ``time_base`` and explicit ``pts`` to
    :meth:`write` for variable frame rate. ``rotation`` (degrees, counter-clockwise, PyAV/FFmpeg display
    matrix convention) stores a display matrix; ``faststart`` moves the moov atom to the front.
    Keyframes exactly every ``gop`` frames (x264 scene-cut keyframes off, so cuts rarely sit on keyframes).
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: int = 25, *, crf: int = 18,
                 preset: str = "superfast", gop: int = 25, time_base: Fraction | None = None,
                 rotation: int | None = None, faststart: bool = False) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"yuv420p needs even frame sizes, got {width}x{height}")
        self.path = Path(path)
        self.container = av.open(str(self.path), "w", format="mp4",
                                 container_options={"movflags": "+faststart"} if faststart else {})
        stream = self.container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        self.time_base = time_base or Fraction(1, fps)
        stream.codec_context.time_base = self.time_base
        stream.codec_context.gop_size = gop
        stream.codec_context.thread_count = X264_THREADS
        cc = stream.codec_context
        cc.colorspace = cc.color_primaries = cc.color_trc = BT601
        cc.color_range = TV_RANGE
        stream.options = {"crf": str(crf), "preset": preset,
                          "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        self.stream = stream
        self.count = 0

    def write(self, rgb: np.ndarray, pts: int | None = None) -> None:
        """Encode one uint8 RGB frame (pts in ``time_base`` units; default: the frame index).

        The RGB -> yuv420p conversion is OpenCV's (BT.601 limited range): many times faster than swscale's.
        """
        frame = av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
        frame.colorspace, frame.color_range = BT601, TV_RANGE
        frame.pts = self.count if pts is None else pts
        frame.time_base = self.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.count += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.container.close()


def write_tone(path: str | Path, seconds: float = 3.0, freq: float = 440.0, rate: int = 44100) -> None:
    """An AAC-only mp4 holding a mono sine tone."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        stream.codec_context.bit_rate = 64000
        n_total = int(seconds * rate)
        size = 1024
        t = np.arange(n_total, dtype=np.float64) / rate
        samples = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        for start in range(0, n_total, size):
            chunk = samples[start:start + size]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
