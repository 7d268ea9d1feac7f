"""Fade and dissolve evidence, measured online: is frame q a blend of frames q-k and q+k?

The two neighbours are first aligned to frame q with the camera motion the motion pass fitted, so a camera
move (where the middle frame is, trivially, between its neighbours) does not look like a dissolve; what is
left is a picture that turns into another one (a dissolve) or into black (a fade).
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

MARGIN = 3  # thumbnail pixels ignored at each border (where alignment brings in nothing)


def blend_gain(before: np.ndarray, mid: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """How well `mid` is a linear blend of `before` and `after`.

    Returns (gain, spread): gain = 1 - blend error / smaller endpoint error (1: a perfect blend, 0: no better
    than either end), spread = how different the ends are (0-255; near 0 when nothing changes).
    """
    b = before.astype(np.float32).ravel()
    m = mid.astype(np.float32).ravel()
    a = after.astype(np.float32).ravel()
    d = b - a
    spread = float(np.abs(d).mean())
    denom = float(d @ d)
    if spread < 1.0 or denom <= 0:
        return 0.0, spread
    alpha = float(np.clip(((m - a) @ d) / denom, 0.0, 1.0))
    blend_err = float(np.abs(alpha * b + (1 - alpha) * a - m).mean())
    end_err = min(float(np.abs(m - b).mean()), float(np.abs(m - a).mean()))
    if end_err <= 0:
        return 0.0, spread
    return 1.0 - blend_err / end_err, spread


class BlendProbe:
    """Feed one (thumbnail, camera matrix) per frame; get (gain, spread) of the frame `span` frames back."""

    def __init__(self, span: int, analysis_size: tuple[int, int], thumb_size: tuple[int, int]):
        self.span = span
        sx = thumb_size[0] / analysis_size[0]
        sy = thumb_size[1] / analysis_size[1]
        self._scale = (sx, sy)
        self._size = thumb_size
        self._window: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=2 * span + 1)

    def _to_thumb(self, m: np.ndarray) -> np.ndarray:
        sx, sy = self._scale
        return np.array([[m[0, 0], m[0, 1] * sx / sy, m[0, 2] * sx], [m[1, 0] * sy / sx, m[1, 1], m[1, 2] * sy]])

    @staticmethod
    def _compose(mats: list[np.ndarray]) -> np.ndarray:
        """Apply mats[0] first, then mats[1], ... (2x3 affine matrices)."""
        total = np.eye(3)
        for m in mats:
            total = np.vstack([m, [0, 0, 1]]) @ total
        return total[:2]

    def push(self, thumb: np.ndarray, matrix: np.ndarray) -> tuple[float, float] | None:
        """`matrix` maps the previous frame's analysis pixels to this frame's."""
        self._window.append((thumb, self._to_thumb(matrix)))
        if len(self._window) < self._window.maxlen:
            return None
        frames = [t for t, _ in self._window]
        mats = [m for _, m in self._window]
        k = self.span
        to_mid = self._compose(mats[1 : k + 1])  # frame q-k -> q
        mid_to_after = self._compose(mats[k + 1 :])  # frame q -> q+k
        w, h = self._size
        before = cv2.warpAffine(frames[0], to_mid, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        after = cv2.warpAffine(frames[-1], mid_to_after, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)
        inner = (slice(MARGIN, h - MARGIN), slice(MARGIN, w - MARGIN))
        return blend_gain(before[inner], frames[k][inner], after[inner])
