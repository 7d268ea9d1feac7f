"""Near-duplicate copies of a clip, as re-uploads make them: re-encoded, cropped, scaled, at another frame rate
or sped up. Frames are streamed (decoded, changed and encoded one at a time)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from .encode import H264Writer

# name -> (crf, keep: share of width and height kept by a centre crop, scale, output fps (None: the source's),
# speed)
COPIES: dict[str, dict] = {
    "reencode": {"crf": 32},
    "crop10": {"keep": 0.9},
    "scale50": {"scale": 0.5},
    "fps30": {"fps": 30},
    "speed2x": {"speed": 2.0},
}


def _even(v: float) -> int:
    return max(2, int(v) // 2 * 2)


def _change(rgb: np.ndarray, keep: float, scale: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    if keep < 1.0:
        ch, cw = _even(h * keep), _even(w * keep)
        y, x = (h - ch) // 2, (w - cw) // 2
        rgb = rgb[y:y + ch, x:x + cw]
        h, w = ch, cw
    if scale != 1.0:
        rgb = cv2.resize(rgb, (_even(w * scale), _even(h * scale)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def write_copy(src: str | Path, dst: str | Path, *, crf: int = 23, keep: float = 1.0, scale: float = 1.0,
               fps: int | None = None, speed: float = 1.0) -> int:
    """Write a changed copy of the video `src` to `dst` (H.264 mp4); returns its frame count.

    `keep`: share of the width and height kept by a centre crop (0.9 drops 5% on each side); `scale`: resize
    factor; `fps`: the copy's frame rate (frames repeated or dropped, so it lasts as long); `speed`: playback speed
    (2.0 plays the footage in half the time)."""
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        src_fps = Fraction(stream.average_rate or 25)
        out_fps = Fraction(fps) if fps else src_fps
        step = src_fps * Fraction(speed).limit_denominator(1000) / out_fps  # source frames per copy frame
        writer: H264Writer | None = None
        j = 0
        try:
            for i, frame in enumerate(container.decode(stream)):
                rgb = None
                while int(j * step) == i:  # copy frame j shows source frame floor(j * step)
                    if rgb is None:
                        rgb = _change(frame.to_ndarray(format="rgb24"), keep, scale)
                    if writer is None:
                        h, w = rgb.shape[:2]
                        writer = H264Writer(dst, w, h, int(round(out_fps)), crf=crf)
                    writer.write(rgb)
                    j += 1
        finally:
            if writer is not None:
                writer.close()
    return j


def write_copies(src: str | Path, folder: str | Path, kinds: dict[str, dict] | None = None) -> dict[str, Path]:
    """Every copy in `kinds` (default `COPIES`) of `src`, as `folder/<stem>.<kind>.mp4`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for kind, params in (kinds or COPIES).items():
        dst = folder / f"{Path(src).stem}.{kind}.mp4"
        write_copy(src, dst, **params)
        out[kind] = dst
    return out
