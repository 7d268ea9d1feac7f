"""A virtual camera over a texture canvas: poses, standard moves, and anti-aliased rendering.

Geometry (image coordinates, x right, y down, pixel centres at integers): the output pixel ``q`` (relative to
the frame centre) shows the canvas point ``p = centre + scale * R(angle) @ q`` with
``R(a) = [[cos a, -sin a], [sin a, cos a]]``. In y-down coordinates a positive ``a`` is a *visually clockwise*
rotation of the camera's frame on the canvas, so the scene turns counter-clockwise on screen (``roll_cw``).
``scale`` is canvas pixels per output pixel: it shrinking over time means the scene grows (``zoom_in``).
The centre moving right on the canvas means the scene moves left on screen (``pan_right``); the centre moving
up (y decreasing) means the scene moves down on screen (``tilt_up``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Per-frame rates of the two speeds (data-contract conventions; pan/tilt in output px, zoom in %, roll in degrees).
RATES: dict[str, dict[str, float]] = {
    "pan": {"slow": 1.5, "fast": 6.0},
    "tilt": {"slow": 1.0, "fast": 4.0},
    "zoom": {"slow": 0.3, "fast": 1.2},
    "roll": {"slow": 0.15, "fast": 0.6},
}


@dataclass(frozen=True)
class Pose:
    """Camera pose: centre (canvas px), scale (canvas px per output px), roll angle (deg, clockwise)."""

    cx: float
    cy: float
    scale: float = 1.0
    angle: float = 0.0

    def shifted(self, dx: float, dy: float) -> Pose:
        return Pose(self.cx + dx, self.cy + dy, self.scale, self.angle)


def move_poses(label: str, n: int, rate: float, *, base_scale: float = 1.0) -> list[Pose]:
    """Poses for ``n`` frames of one camera move (data-contract label, rate per frame), centred on (0, 0)."""
    idx = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    poses = []
    for t in idx:
        cx = cy = angle = 0.0
        scale = base_scale
        if label == "pan_right":
            cx = rate * base_scale * t
        elif label == "pan_left":
            cx = -rate * base_scale * t
        elif label == "tilt_up":
            cy = -rate * base_scale * t
        elif label == "tilt_down":
            cy = rate * base_scale * t
        elif label == "zoom_in":
            scale = base_scale * (1.0 + rate / 100.0) ** (-t)
        elif label == "zoom_out":
            scale = base_scale * (1.0 + rate / 100.0) ** t
        elif label == "roll_cw":
            angle = rate * t
        elif label == "roll_ccw":
            angle = -rate * t
        elif label != "static":
            raise ValueError(f"unknown camera move {label!r}")
        poses.append(Pose(float(cx), float(cy), float(scale), float(angle)))
    return poses


def screen_motion(label: str, rate: float) -> dict[str, float]:
    """The exact per-frame motion of the scene on screen for a move: dx, dy (px), scale, rotation_ccw_deg."""
    motion = {"dx": 0.0, "dy": 0.0, "scale": 1.0, "rotation_ccw_deg": 0.0}
    if label in ("pan_right", "pan_left"):
        motion["dx"] = -rate if label == "pan_right" else rate
    elif label in ("tilt_up", "tilt_down"):
        motion["dy"] = rate if label == "tilt_up" else -rate
    elif label in ("zoom_in", "zoom_out"):
        f = 1.0 + rate / 100.0
        motion["scale"] = f if label == "zoom_in" else 1.0 / f
    elif label in ("roll_cw", "roll_ccw"):
        motion["rotation_ccw_deg"] = rate if label == "roll_cw" else -rate
    return {k: round(v, 9) for k, v in motion.items()}


def view_corners(pose: Pose, width: int, height: int) -> np.ndarray:
    """Canvas coordinates (4x2) of the output frame's corner pixels for a pose."""
    hw, hh = (width - 1) / 2.0, (height - 1) / 2.0
    q = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])
    a = math.radians(pose.angle)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return q @ (pose.scale * rot).T + np.array([pose.cx, pose.cy])


def fit_canvas(poses: list[Pose], width: int, height: int, margin: int = 16) -> tuple[list[Pose], int, int]:
    """Translate poses so every view lies inside a canvas (returned with its width and height)."""
    pts = np.concatenate([view_corners(p, width, height) for p in poses])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    off = margin - np.floor(lo)
    cw, ch = (int(v) for v in np.ceil(hi - lo) + 2 * margin + 1)
    return [p.shifted(float(off[0]), float(off[1])) for p in poses], cw, ch


class Renderer:
    """Renders poses over one canvas with bilinear warps from a Gaussian mip pyramid.

    Frames that minify the canvas (scale > 1) are supersampled 2x and area-reduced (with trilinear mip
    blending beyond 2x); others are warped directly from a canvas pre-blurred by sigma 0.5, which keeps the
    sharpness of sub-pixel shifts nearly constant from frame to frame.
    """

    def __init__(self, canvas: np.ndarray, supersample: int = 2) -> None:
        self.supersample = supersample
        self.k = 1
        canvas = cv2.GaussianBlur(canvas, (0, 0), 0.5)
        self.levels = [canvas]
        while min(self.levels[-1].shape[:2]) > 64:
            self.levels.append(cv2.pyrDown(self.levels[-1]))

    def _warp(self, level: int, pose: Pose, width: int, height: int) -> np.ndarray:
        # dst pixel U (supersampled grid, centre (kW-1)/2) -> canvas p = c + (s/k) R (U - Uc); pyrDown level l
        # sits at p / 2**l (its pixel i is centred on source pixel 2i).
        k, f = self.k, 2.0 ** level
        a = math.radians(pose.angle)
        lin = (pose.scale / k) * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        uc = np.array([(k * width - 1) / 2.0, (k * height - 1) / 2.0])
        t = np.array([pose.cx, pose.cy]) - lin @ uc
        mat = np.hstack([lin, t[:, None]]) / f
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        return cv2.warpAffine(self.levels[level], mat, (k * width, k * height), flags=flags,
                              borderMode=cv2.BORDER_REFLECT_101)

    def render(self, pose: Pose, width: int, height: int) -> np.ndarray:
        """One uint8 RGB frame of ``width`` x ``height`` for ``pose``."""
        self.k = self.supersample if pose.scale > 1.0 else 1
        lod = max(0.0, math.log2(pose.scale / self.k))
        lo = min(int(lod), len(self.levels) - 1)
        frac = lod - lo if lo + 1 < len(self.levels) else 0.0
        img = self._warp(lo, pose, width, height)
        if frac > 1e-3:  # trilinear: blend with the next coarser level
            img = cv2.addWeighted(img, 1.0 - frac, self._warp(lo + 1, pose, width, height), frac, 0.0)
        if self.k > 1:
            img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
        return img
