"""Frame-accurate clip extraction with PyAV (data contract: H.264 yuv420p mp4, CFR, rotation applied, a keyframe
about every second, no audio, short side capped, never upscaled).

One seek to the keyframe before the clip, then decoding forward; output frame k shows the source frame on
screen at `start + k / fps`, so a constant-rate source gives exactly its frames [start, end) and a
variable-rate one is resampled to its average rate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.frame import PictureType

from curation.config import ExtractConfig
from curation.media import open_container

STANDARD_RATES = (Fraction(24000, 1001), 24, 25, Fraction(30000, 1001), 30, 48, 50, Fraction(60000, 1001), 60)


@dataclass(frozen=True)
class ClipSpec:
    """What to cut: source frames [start_frame, end_frame) whose times are [start_s, end_s)."""

    source: str
    start_frame: int
    end_frame: int
    start_pts: int
    start_s: float
    end_s: float
    fps: float
    rotation: int
    out_path: str


def output_rate(fps: float) -> Fraction:
    """The clip's constant rate: the standard rate nearest to `fps` when it is within 0.1%, else `fps` as a
    small fraction. (Nearest: 30000/1001 is within 0.1% of 30, and 30 fps stays 30.)"""
    nearest = min(STANDARD_RATES, key=lambda rate: abs(float(rate) - fps))
    if abs(float(nearest) - fps) <= 0.001 * fps:
        return Fraction(nearest)
    return Fraction(fps).limit_denominator(1001)


def output_size(width: int, height: int, max_short_side: int) -> tuple[int, int]:
    """Displayed size scaled so the short side is at most `max_short_side`, never up; even numbers."""
    scale = min(1.0, max_short_side / min(width, height))
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def frame_count(start_s: float, end_s: float, rate: Fraction) -> int:
    return max(1, int(round((end_s - start_s) * float(rate))))


def clip_facts(path: str) -> dict:
    """Facts of a written clip file (what `extract_clip` returns)."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        frames = sum(1 for packet in container.demux(stream) if packet.size)
        return {"num_frames": frames, "fps": float(stream.average_rate), "width": stream.codec_context.width,
                "height": stream.codec_context.height, "bytes": os.path.getsize(path)}


def extract_clip(spec: ClipSpec, cfg: ExtractConfig) -> dict:
    """Write the clip (under a temp name, renamed when complete); returns its facts.

    A clip file that is already there is complete (only finished files get their name): it is kept, and
    its facts are read back, so a run killed between writing a clip and recording it does not redo it.
    """
    if os.path.exists(spec.out_path):
        return clip_facts(spec.out_path)
    rate = output_rate(spec.fps)
    n_out = frame_count(spec.start_s, spec.end_s, rate)
    src = open_container(spec.source)
    tmp = f"{spec.out_path}.tmp-{os.getpid()}"
    try:
        stream = src.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = float(stream.time_base)
        src.seek(spec.start_pts, stream=stream, backward=True, any_frame=False)
        out = av.open(tmp, "w", format="mp4", options={"movflags": "+faststart"})
        written = 0
        size = None
        try:
            enc = None
            current = None
            eps = 0.25 / float(rate)
            for frame in src.decode(stream):
                t = (frame.pts if frame.pts is not None else 0) * time_base
                if t < spec.start_s - eps:
                    continue
                # emit every output frame whose time falls before this frame's time
                while written < n_out and current is not None and spec.start_s + written / rate < t - eps:
                    enc, size = _ensure_encoder(out, enc, current, rate, cfg, spec.rotation)
                    _encode(out, enc, current, written, size, spec.rotation)
                    written += 1
                current = frame
                if written >= n_out:
                    break
            while written < n_out and current is not None:
                enc, size = _ensure_encoder(out, enc, current, rate, cfg, spec.rotation)
                _encode(out, enc, current, written, size, spec.rotation)
                written += 1
            if enc is None:
                raise ValueError("no frame decoded in the clip's range")
            for packet in enc.encode():
                out.mux(packet)
        finally:
            out.close()
        Path(tmp).replace(spec.out_path)
    finally:
        src.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    width, height = size
    return {"num_frames": written, "fps": float(rate), "width": width, "height": height,
            "bytes": os.path.getsize(spec.out_path)}


def _ensure_encoder(out, enc, frame: av.VideoFrame, rate: Fraction, cfg: ExtractConfig, rotation: int):
    if enc is not None:
        return enc, (enc.width, enc.height)
    w, h = frame.width, frame.height
    if int(round(rotation / 90.0)) % 2:
        w, h = h, w
    width, height = output_size(w, h, cfg.max_short_side)
    enc = out.add_stream("libx264", rate=rate)
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    gop = max(1, int(round(float(rate) * cfg.keyframe_interval_s)))
    enc.options = {"crf": str(cfg.crf), "preset": cfg.preset, "g": str(gop), "keyint_min": str(gop),
                   "sc_threshold": "0"}
    enc.codec_context.time_base = Fraction(1) / rate
    return enc, (width, height)


def _encode(out, enc, frame: av.VideoFrame, index: int, size: tuple[int, int], rotation: int) -> None:
    width, height = size
    turns = int(round(rotation / 90.0)) % 4
    if turns:
        stored = (height, width) if turns % 2 else (width, height)
        rgb = frame.to_ndarray(format="rgb24", width=stored[0], height=stored[1], interpolation="AREA")
        image = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(rgb, turns)), format="rgb24")
        image = image.reformat(format="yuv420p")
    else:
        image = frame.reformat(width=width, height=height, format="yuv420p", interpolation="AREA")
    image.pts = index
    image.time_base = enc.codec_context.time_base
    image.pict_type = PictureType.NONE  # a decoded I frame would force a keyframe off the one-second grid
    for packet in enc.encode(image):
        out.mux(packet)
