"""Black bars (letterbox, pillarbox) around the picture of the analysis frames.

Bars never move, so inside the motion pass they vote for a still camera and fill the border ring that stands for
the background; the motion pass measures the picture inside them. A bar is a run of rows or columns at an edge
that stays black (its brightest pixels under `BLACK`) while the picture inside is lit.
"""

from __future__ import annotations

import numpy as np

BLACK = 24  # luma (0-255): a row or column whose 95th percentile is at most this is black
LIT = 30.0  # mean luma the picture must reach for a frame to decide the bars (a dark frame cannot)
MIN_BAR = 0.03  # bars thinner than this share of the side are ignored (edge noise, a thin frame line)
MIN_PICTURE = 0.5  # the picture keeps at least this share of each side, or there are no bars


def _black_run(lines: np.ndarray) -> int:
    """How many of `lines` (95th percentiles, from the edge inwards) are black before the first lit one."""
    lit = np.flatnonzero(lines > BLACK)
    return int(lit[0]) if len(lit) else len(lines)


def picture_box(luma: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the picture inside black bars, None when there are no bars, and None too when the
    frame is too dark to tell (the caller asks again on a later frame)."""
    h, w = luma.shape
    cols = np.percentile(luma, 95, axis=0)
    rows = np.percentile(luma, 95, axis=1)
    left, right = _black_run(cols), _black_run(cols[::-1])
    top, bottom = _black_run(rows), _black_run(rows[::-1])
    left, right = (left if left >= MIN_BAR * w else 0), (right if right >= MIN_BAR * w else 0)
    top, bottom = (top if top >= MIN_BAR * h else 0), (bottom if bottom >= MIN_BAR * h else 0)
    if w - left - right < MIN_PICTURE * w or h - top - bottom < MIN_PICTURE * h:
        return None
    if not (left or right or top or bottom):
        return None
    return left, top, w - right, h - bottom


def decides(luma: np.ndarray) -> bool:
    """Whether `luma` is lit enough for its bars (or their absence) to stand for the shot."""
    h, w = luma.shape
    return float(luma[h // 4: 3 * h // 4, w // 4: 3 * w // 4].mean()) >= LIT


def to_frame(matrix: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """A similarity fitted in the picture's pixels (origin at the box's corner) in the frame's pixels."""
    if box is None:
        return matrix
    origin = np.array([box[0], box[1]], dtype=np.float64)
    a = matrix[:, :2]
    out = matrix.astype(np.float64).copy()
    out[:, 2] = matrix[:, 2] + origin - a @ origin
    return out
