"""Optical flow between consecutive small frames, and the camera's share of it.

Dense DIS flow (OpenCV) on the flow-size luma; a similarity transform (scale, rotation, translation) fitted
to it with RANSAC is the camera; what is left is object motion. Signs are the camera's point of view
(data contract): `pan` > 0 turns right (the scene moves left), `tilt` > 0 points up (the scene moves down),
`zoom` > 0 zooms in (the scene grows), `roll` > 0 rolls clockwise (the scene turns counter-clockwise).
Units do not depend on resolution: pan and tilt in frame widths, zoom in log-scale, roll in degrees, all
per frame; the caller multiplies by the frame rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

GRID_STEP = 4
BORDER = 3


@dataclass(frozen=True)
class PairMotion:
    """Motion between two consecutive frames."""

    pan: float
    tilt: float
    zoom: float
    roll: float
    inliers: float  # share of flow vectors the camera model explains
    object_motion: float  # mean flow magnitude left after removing the camera's, frame widths
    object_area: float  # share of the frame whose residual flow exceeds the object threshold
    warp_error: float  # mean |cur - prev warped by the flow| (0-255): how badly flow explains the change
    raw_diff: float  # mean |cur - prev| (0-255)
    m_a: float = 1.0  # the fitted similarity, prev -> cur pixels: [[m_a, -m_b, m_tx], [m_b, m_a, m_ty]]
    m_b: float = 0.0
    m_tx: float = 0.0
    m_ty: float = 0.0

    def matrix(self) -> np.ndarray:
        return np.array([[self.m_a, -self.m_b, self.m_tx], [self.m_b, self.m_a, self.m_ty]])


NO_MOTION = PairMotion(0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0)
RANSAC_PX = 0.2  # analysis frames are about 90 px high: flow vectors this close to the model fit it
INLIER_PX = 1.0  # ... and this close count as explained by the camera (the reported share)
OBJECT_PX = 0.3  # residual flow above this is object motion


class MotionEstimator:
    """Estimates `PairMotion` for frames of one fixed size (w, h)."""

    def __init__(self, size: tuple[int, int]):
        self.width, self.height = size
        self.flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        xs, ys = np.meshgrid(np.arange(self.width, dtype=np.float32), np.arange(self.height, dtype=np.float32))
        self._map = np.stack([xs, ys], axis=-1)
        inner = (slice(BORDER, self.height - BORDER), slice(BORDER, self.width - BORDER))
        self._inner = inner
        gy, gx = np.mgrid[BORDER : self.height - BORDER : GRID_STEP, BORDER : self.width - BORDER : GRID_STEP]
        self._grid = (gy.ravel(), gx.ravel())
        self._src = np.stack([gx.ravel(), gy.ravel()], axis=-1).astype(np.float32)
        self._centre = np.array([(self.width - 1) / 2.0, (self.height - 1) / 2.0])

    def estimate(self, prev: np.ndarray, cur: np.ndarray, camera: bool = True) -> PairMotion:
        """Motion from `prev` to `cur` (uint8 luma of this estimator's size); `camera=False` stops after the
        flow residuals that cut detection needs (no camera model, no object motion)."""
        flow = self.flow.calc(prev, cur, None)
        warped = cv2.remap(cur, self._map + flow, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        inner = self._inner
        pixels = (self.height - 2 * BORDER) * (self.width - 2 * BORDER)
        warp_error = cv2.norm(warped[inner], prev[inner], cv2.NORM_L1) / pixels
        raw_diff = cv2.norm(cur[inner], prev[inner], cv2.NORM_L1) / pixels
        if not camera:
            return PairMotion(0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, warp_error, raw_diff)

        vectors = flow[self._grid]
        dst = self._src + vectors
        model, _ = cv2.estimateAffinePartial2D(
            self._src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=200,
            confidence=0.98, refineIters=5,
        )
        if model is None:
            return PairMotion(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, warp_error, raw_diff)
        a, b = float(model[0, 0]), float(model[1, 0])
        scale = math.hypot(a, b)
        angle = math.degrees(math.atan2(b, a))  # > 0: the scene turns clockwise on screen (y points down)
        moved = model[:, :2] @ self._centre + model[:, 2] - self._centre
        predicted = self._src @ model[:, :2].T + model[:, 2]
        residual = np.linalg.norm(dst - predicted, axis=1)
        moving = residual > OBJECT_PX
        return PairMotion(
            pan=-float(moved[0]) / self.width,
            tilt=float(moved[1]) / self.width,
            zoom=math.log(max(scale, 1e-6)),
            roll=-angle,
            inliers=float(np.mean(residual < INLIER_PX)),
            object_motion=float(residual[moving].sum() / residual.size) / self.width,
            object_area=float(moving.mean()),
            warp_error=warp_error,
            raw_diff=raw_diff,
            m_a=a, m_b=b, m_tx=float(model[0, 2]), m_ty=float(model[1, 2]),
        )
