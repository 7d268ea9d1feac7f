"""Black borders (letterbox bars above and below, pillarbox bars left and right) found on a few frames.

A border row (or column) is dark nearly everywhere along its length: its mean luma is at most `BAR_MEAN` and
at most `BAR_BRIGHT_SHARE` of its pixels are brighter than `BAR_BRIGHT` (so compression noise and the odd
bright speck do not break a bar, but a dark scene's row with any light in it does). A side's bar is the run of
such rows from the edge inward. Over several frames the thinnest bar of each side wins: a bar is in every
frame, while a frame whose own picture happens to be dark at an edge is outvoted by the others. Frames dark
everywhere (a fade through black) say nothing and are skipped.

A crop is returned only when it is believable: bars come in pairs of similar thickness (top with bottom,
left with right: letterbox or pillarbox, or both), each at least `MIN_BAR_SHARE` of the side, and the picture
inside is not itself dark (a dark scene, dark everywhere, is not letterboxed).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

BAR_MEAN = 20.0  # luma (0-255) a border line averages at most
BAR_BRIGHT = 48  # luma above which a pixel is "lit"
BAR_BRIGHT_SHARE = 0.01  # share of lit pixels a border line may have
MIN_BAR_SHARE = 0.01  # a bar thinner than this share of the frame's side is not cropped
PAIR_RATIO = 0.5  # the thinner bar of a pair is at least this share of the thicker one
PICTURE_MIN_MEAN = 32.0  # the picture inside the bars averages at least this luma over the frames


def luma(frame: np.ndarray) -> np.ndarray:
    """Luma (uint8) of an RGB frame; a 2-D frame is taken as luma already."""
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _dark_lines(gray: np.ndarray, lit: np.ndarray, axis: int) -> np.ndarray:
    """Boolean per row (axis=1) or per column (axis=0): is the line dark along its whole length."""
    dim = 0 if axis == 0 else 1
    mean = cv2.reduce(gray, dim, cv2.REDUCE_AVG, dtype=cv2.CV_32F).ravel()
    lit_share = cv2.reduce(lit, dim, cv2.REDUCE_AVG, dtype=cv2.CV_32F).ravel() / 255.0
    return (mean <= BAR_MEAN) & (lit_share <= BAR_BRIGHT_SHARE)


def _run(dark: np.ndarray) -> int:
    """Length of the run of True from the start of `dark`."""
    off = np.flatnonzero(~dark)
    return int(off[0]) if off.size else int(dark.size)


def frame_bars(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) bar thickness of one luma frame; None when it is dark everywhere."""
    gray = np.ascontiguousarray(gray)
    lit = cv2.threshold(gray, BAR_BRIGHT, 255, cv2.THRESH_BINARY)[1]
    rows, cols = _dark_lines(gray, lit, 1), _dark_lines(gray, lit, 0)
    if rows.all() or cols.all():
        return None
    return _run(rows), _run(rows[::-1]), _run(cols), _run(cols[::-1])


def _pair(a: int, b: int, side: int) -> tuple[int, int]:
    """A pair of opposite bars kept only when both are thick enough and alike; else no bars."""
    least = max(2, int(np.ceil(MIN_BAR_SHARE * side)))
    if min(a, b) < least or min(a, b) < PAIR_RATIO * max(a, b):
        return 0, 0
    return a, b


def detect_black_borders(frames: Sequence[np.ndarray]) -> tuple[int, int, int, int] | None:
    """The picture inside black bars that every frame shows, as (x, y, w, h) in the frames' pixels; None when
    there are no believable bars. Frames are RGB (h, w, 3) or luma (h, w) uint8 arrays of one size."""
    grays = [luma(np.asarray(f)) for f in frames]
    bars = [b for b in (frame_bars(g) for g in grays) if b is not None]
    if not bars:
        return None
    height, width = grays[0].shape
    top, bottom, left, right = (min(b[i] for b in bars) for i in range(4))
    top, bottom = _pair(top, bottom, height)
    left, right = _pair(left, right, width)
    if not (top or left):
        return None
    x, y, w, h = left, top, width - left - right, height - top - bottom
    picture = float(np.mean([cv2.mean(g[y:y + h, x:x + w])[0] for g in grays]))
    if picture < PICTURE_MIN_MEAN:
        return None
    return x, y, w, h


def even_inside(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int]:
    """`box` shrunk to even offsets and sizes (what yuv420p needs), never growing past the picture."""
    x, y, w, h = box
    x1, y1 = min(width, x + w), min(height, y + h)
    x, y = x + x % 2, y + y % 2
    w, h = (x1 - x) // 2 * 2, (y1 - y) // 2 * 2
    return x, y, max(2, w), max(2, h)


def rotate_box(box: tuple[int, int, int, int], width: int, height: int, turns: int) -> tuple[int, int, int, int]:
    """`box` on a (width x height) picture, as it lies after `np.rot90(picture, turns)` (counter-clockwise)."""
    x, y, w, h = box
    for _ in range(turns % 4):
        x, y, w, h = y, width - x - w, h, w
        width, height = height, width
    return x, y, w, h
