"""Frame-accurate clip extraction with PyAV (data contract: H.264 yuv420p mp4, CFR, rotation applied, a keyframe
about every second, no audio, short side capped, never upscaled).

One seek to the keyframe before the clip, then decoding forward; output frame k shows the source frame on
screen at `start + k / fps`, so a constant-rate source gives exactly its frames [start, end) and a
variable-rate one is resampled to its average rate.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.frame import PictureType

from curation.borders import detect_black_borders, even_inside, rotate_box
from curation.config import ExtractConfig
from curation.media import open_container

CROP_TAG = "droplet crop="  # the clip file's `comment` metadata when black borders were cropped
CROP_PROBE_BYTES = 128 << 20  # at most this much of decoded frames is held while looking for black borders
CROP_PROBE_FRAMES = 8  # frames of that first second looked at
_PLANAR_8BIT = ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p")
_LIMITED_TO_FULL = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)
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
    probed: tuple[int, int] | None = None  # the source's size and modification time (ns) when probed


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
    """Facts of a written clip file (what `extract_clip` returns; the crop is read back from its metadata)."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        frames = sum(1 for packet in container.demux(stream) if packet.size)
        return {"num_frames": frames, "fps": float(stream.average_rate), "width": stream.codec_context.width,
                "height": stream.codec_context.height, "bytes": os.path.getsize(path),
                "crop": _parse_crop(container.metadata.get("comment", ""))}


def extract_clip(spec: ClipSpec, cfg: ExtractConfig) -> dict:
    """Write the clip (under a temp name, renamed when complete); returns its facts.

    With `cfg.crop_black_borders`, black bars found on the clip's first second (`borders.detect_black_borders`)
    are cropped from every frame before scaling; the facts' `crop` is the picture kept, [x, y, w, h] in the
    source's displayed pixels (None: nothing cropped), also written in the file's `comment` metadata.

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
        src.seek(spec.start_pts, stream=stream, backward=True, any_frame=False)
        frames = _clip_frames(src, stream, spec, rate, n_out)
        crop = None
        if cfg.crop_black_borders:
            frames, crop = _detect_crop(frames, rate, spec.rotation)
        out = av.open(tmp, "w", format="mp4", options={"movflags": "+faststart"})
        if crop is not None:
            out.metadata["comment"] = f"{CROP_TAG}{','.join(map(str, crop[1]))}"
        written = 0
        size = None
        try:
            enc = None
            for frame in frames:
                if crop is not None:
                    frame = _cropped(frame, crop[0], crop[2])
                enc, size = _ensure_encoder(out, enc, frame, rate, cfg, spec.rotation)
                _encode(out, enc, frame, written, size, spec.rotation)
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
            "bytes": os.path.getsize(spec.out_path), "crop": list(crop[1]) if crop else None}


def _clip_frames(src, stream, spec: ClipSpec, rate: Fraction, n_out: int) -> Iterator[av.VideoFrame]:
    """The source frame shown at each output time `start + k / rate`, k = 0 .. n_out - 1 (a frame repeats
    where the source has a gap, and the last one fills up to `n_out`)."""
    time_base = float(stream.time_base)
    written = 0
    current = None
    eps = 0.25 / float(rate)
    for frame in src.decode(stream):
        t = (frame.pts if frame.pts is not None else 0) * time_base
        if t < spec.start_s - eps:
            continue
        # emit every output frame whose time falls before this frame's time
        while written < n_out and current is not None and spec.start_s + written / rate < t - eps:
            yield current
            written += 1
        current = frame
        if written >= n_out:
            return
    while written < n_out and current is not None:
        yield current
        written += 1


def _detect_crop(frames: Iterator[av.VideoFrame], rate: Fraction, rotation: int):
    """Look at the clip's first second (at most `CROP_PROBE_BYTES` of frames, buffered) for black bars.

    Returns the frames (those buffered first, then the rest) and the crop: None, or (the box in stored
    pixels, even for yuv420p; the same box in displayed pixels; the stored size it was found on)."""
    head: list[av.VideoFrame] = []
    limit = max(1, round(float(rate)))
    for frame in frames:
        head.append(frame)
        if len(head) >= min(limit, max(2, CROP_PROBE_BYTES // (frame.width * frame.height * 3 // 2))):
            break
    rest = itertools.chain(head, frames)
    if not head:
        return rest, None
    width, height = head[0].width, head[0].height
    step = -(-len(head) // CROP_PROBE_FRAMES)
    box = detect_black_borders([_luma(f) for f in head[::step] if (f.width, f.height) == (width, height)])
    if box is None:
        return rest, None
    stored = even_inside(box, width, height)
    turns = int(round(rotation / 90.0)) % 4
    return rest, (stored, rotate_box(stored, width, height, turns), (width, height))


def _luma(frame: av.VideoFrame) -> np.ndarray:
    """Full-range luma of `frame`: the decoder's own Y plane for 8-bit YUV (limited range stretched), else
    swscale's gray."""
    if frame.format.name not in _PLANAR_8BIT:
        return frame.to_ndarray(format="gray")
    plane = frame.planes[0]
    y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:frame.height, :frame.width]
    full = frame.format.name.startswith("yuvj") or frame.color_range == 2  # AVCOL_RANGE_JPEG
    return np.ascontiguousarray(y) if full else cv2.LUT(np.ascontiguousarray(y), _LIMITED_TO_FULL)


def _cropped(frame: av.VideoFrame, box: tuple[int, int, int, int], size: tuple[int, int]) -> av.VideoFrame:
    """`frame` cut to `box` (x, y, w, h, all even, found on frames of `size`), as 8-bit 4:2:0 (other formats
    are converted first)."""
    x, y, w, h = box
    if (frame.width, frame.height) != size:  # the source changed size mid-clip: the same share of it
        sx, sy = frame.width / size[0], frame.height / size[1]
        x, y, w, h = even_inside((round(x * sx), round(y * sy), round(w * sx), round(h * sy)), frame.width,
                                 frame.height)
    name = frame.format.name if frame.format.name in ("yuv420p", "yuvj420p") else "yuv420p"
    src = frame if frame.format.name == name else frame.reformat(format=name)
    planes = []
    chroma = (x // 2, y // 2, w // 2, h // 2)
    for i, (px, py, pw, ph) in enumerate(((x, y, w, h), chroma, chroma)):
        plane = src.planes[i]
        data = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        planes.append(data[py:py + ph, px:px + pw].reshape(-1))
    out = av.VideoFrame.from_ndarray(np.concatenate(planes).reshape(h * 3 // 2, w), format=name)
    out.colorspace, out.color_range = frame.colorspace, frame.color_range
    return out


def _parse_crop(comment: str) -> list[int] | None:
    if not comment.startswith(CROP_TAG):
        return None
    return [int(v) for v in comment[len(CROP_TAG):].split(",")]


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
