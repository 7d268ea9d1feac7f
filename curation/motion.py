"""Optical flow between consecutive small frames, and the camera's share of it.

Dense DIS flow (OpenCV) on the flow-size luma; a similarity transform (scale, rotation, translation) fitted
to it with RANSAC is the camera; what is left is object motion. Signs are the camera's point of view
(data contract): `pan` > 0 turns right (the scene moves left), `tilt` > 0 points up (the scene moves down),
`zoom` > 0 zooms in (the scene grows), `roll` > 0 rolls clockwise (the scene turns counter-clockwise).
Units do not depend on resolution: pan and tilt in frame widths, zoom in log-scale, roll in degrees, all
per frame; the caller multiplies by the frame rate.

Layers (travel vs turn, orbit, tracking): a turn moves near and far things alike, a camera that travels moves
near things more (parallax). The flow on a grid is summed over the last `LAYER_FRAMES` pairs (so slow moves
stand out of the flow's noise) and summarised along x, y and radially: the 10th, 50th and 90th percentiles
(the slowest layer, the typical one, the fastest), the median over a ring along the frame's border (the
background: it defines the camera however much a subject covers) and over the frame's centre (where a
subject that is orbited or tracked stays put). In frame widths per `LAYER_FRAMES` pairs; radial ones are the
relative growth of the distance from the centre.
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
    warp_peak: float = 0.0  # the largest of warp_error's means over a 3 x 3 grid of regions (a local cut)
    m_a: float = 1.0  # the fitted similarity, prev -> cur pixels: [[m_a, -m_b, m_tx], [m_b, m_a, m_ty]]
    m_b: float = 0.0
    m_tx: float = 0.0
    m_ty: float = 0.0
    x_lo: float = 0.0  # layers along x (screen motion, right +): 10th / 50th / 90th percentile, border, centre
    x_mid: float = 0.0
    x_hi: float = 0.0
    x_border: float = 0.0
    x_centre: float = 0.0
    y_lo: float = 0.0  # ... along y (down +)
    y_mid: float = 0.0
    y_hi: float = 0.0
    y_border: float = 0.0
    y_centre: float = 0.0
    x_pos: float = 0.0  # share of the grid moving right / left (beyond LAYER_MOVING widths)
    x_neg: float = 0.0
    x_corr: float = 0.0  # correlation of the summed x motion with x position (a zoom's spread is near +-1)
    r_lo: float = 0.0  # ... radially (growth +), before removing anything
    r_mid: float = 0.0
    r_hi: float = 0.0
    ring_x: float = 0.0  # median flow of the border ring, this pair alone (widths; x right +, y down +): what
    ring_y: float = 0.0  # ... hand shake moves, however a subject pulls the fitted model from pair to pair
    still_ring: float = 0.0  # share of the textured border ring that did not move over the last LAYER_FRAMES pairs

    def matrix(self) -> np.ndarray:
        return np.array([[self.m_a, -self.m_b, self.m_tx], [self.m_b, self.m_a, self.m_ty]])


NO_MOTION = PairMotion(0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0)
RANSAC_PX = 0.2  # analysis frames are about 90 px high: flow vectors this close to the model fit it
INLIER_PX = 1.0  # ... and this close count as explained by the camera (the reported share)
OBJECT_PX = 0.3  # residual flow above this is object motion
LAYER_FRAMES = 6  # pairs summed for the layer statistics
LAYER_STEP = 3  # ... computed every this many pairs (held in between: labels smooth over 9 frames anyway)
BORDER_RING = 0.15  # the border ring: this share of the width/height on each side
CENTRE_BOX = (0.1, 0.12)  # the centre patch: within this share of the width / height of the middle
CENTRE_SEARCH = (0.08, 0.1)  # ... searched for this far (share of the width / height) LAYER_FRAMES pairs later
LAYER_MOVING = 0.003  # widths per LAYER_FRAMES pairs: a grid point moving at least this much moves
RADIAL_MIN = 0.2  # radial statistics only farther than this (widths) from the centre
DECISIVE_CHANGE = 12.0  # brightness error (0-255) that tells holding still from the typical motion at a point
STILL_BETTER = 0.35  # ... and a point holding still explains with at most this share of the motion's error


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
        rel = self._src - self._centre
        fx, fy = np.abs(rel[:, 0]) / self.width, np.abs(rel[:, 1]) / self.height
        self._ring = (fx > 0.5 - BORDER_RING) | (fy > 0.5 - BORDER_RING)
        radius = np.hypot(rel[:, 0], rel[:, 1])
        self._radial = radius > RADIAL_MIN * self.width
        self._unit = rel[self._radial] / radius[self._radial, None] ** 2  # displacement . unit = relative growth
        self._rel = rel
        self._rel_x2 = float((rel[:, 0] ** 2).sum())
        self._rel_norm = float((rel**2).sum())
        self._pairs = 0
        self._last_layers: dict[str, float] = {}
        self._recent: list[np.ndarray] = []
        self._summed = np.zeros_like(self._src)
        self._lumas: list[np.ndarray] = []
        bw, bh = int(CENTRE_BOX[0] * self.width), int(CENTRE_BOX[1] * self.height)
        sw, sh = max(2, int(CENTRE_SEARCH[0] * self.width)), max(2, int(CENTRE_SEARCH[1] * self.height))
        cx, cy = self.width // 2, self.height // 2
        self._patches = []  # (patch, search window, patch origin inside the window): 3 x 2 pieces of the centre
        pw, ph = max(2, 2 * bw // 3), max(2, bh)
        for row in range(2):
            for col in range(3):
                x0, y0 = cx - bw + col * pw, cy - bh + row * ph
                wx, wy = max(0, x0 - sw), max(0, y0 - sh)
                window = (slice(wy, min(self.height, y0 + ph + sh)), slice(wx, min(self.width, x0 + pw + sw)))
                self._patches.append(((slice(y0, y0 + ph), slice(x0, x0 + pw)), window, (x0 - wx, y0 - wy)))

    def estimate(self, prev: np.ndarray, cur: np.ndarray, camera: bool = True) -> PairMotion:
        """Motion from `prev` to `cur` (uint8 luma of this estimator's size); `camera=False` stops after the
        flow residuals that cut detection needs (no camera model, no object motion)."""
        flow = self.flow.calc(prev, cur, None)
        warped = cv2.remap(cur, self._map + flow, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        inner = self._inner
        pixels = (self.height - 2 * BORDER) * (self.width - 2 * BORDER)
        unexplained = cv2.absdiff(warped[inner], prev[inner])
        warp_error = float(unexplained.mean())
        warp_peak = float(cv2.resize(unexplained.astype(np.float32), (3, 3), interpolation=cv2.INTER_AREA).max())
        raw_diff = cv2.norm(cur[inner], prev[inner], cv2.NORM_L1) / pixels
        if not camera:
            return PairMotion(0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, warp_error, raw_diff, warp_peak=warp_peak)

        vectors = flow[self._grid]
        layers = self._layers(vectors, cur)
        ring = vectors[self._ring]
        layers["ring_x"] = float(np.median(ring[:, 0])) / self.width
        layers["ring_y"] = float(np.median(ring[:, 1])) / self.width
        dst = self._src + vectors
        model, _ = cv2.estimateAffinePartial2D(
            self._src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=200,
            confidence=0.98, refineIters=5,
        )
        if model is None:
            return PairMotion(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, warp_error, raw_diff, warp_peak=warp_peak, **layers)
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
            warp_peak=warp_peak,
            m_a=a, m_b=b, m_tx=float(model[0, 2]), m_ty=float(model[1, 2]),
            **layers,
        )

    def _centre_shift(self, old: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
        """How far the stillest piece of the frame's centre moved over the last `LAYER_FRAMES` frames (block
        matching, widths): a subject that is orbited or tracked stays put there. Flow at this size smears a
        small still subject with what slides around it, and a post passing in front covers part of it; the
        stillest of six pieces of the centre is the subject's."""
        shifts = []
        for patch, window, (ox, oy) in self._patches:
            scores = cv2.matchTemplate(cur[window], old[patch], cv2.TM_SQDIFF)
            y, x = np.unravel_index(int(np.argmin(scores)), scores.shape)
            sx = _parabola(scores[y, x - 1], scores[y, x], scores[y, x + 1]) if 0 < x < scores.shape[1] - 1 else 0.0
            sy = _parabola(scores[y - 1, x], scores[y, x], scores[y + 1, x]) if 0 < y < scores.shape[0] - 1 else 0.0
            shifts.append((x + sx - ox, y + sy - oy))
        dx, dy = min(shifts, key=lambda d: math.hypot(*d))
        return dx / self.width, dy / self.width

    def _still_ring(self, old: np.ndarray, cur: np.ndarray, summed: np.ndarray) -> float:
        """How much of the background along the border held still over the last `LAYER_FRAMES` pairs while
        the frame's typical point moved: a camera move moves all of it, a large subject crossing a still camera
        leaves some. Each point is tested on brightness, not flow (dense flow at this size spreads a large
        subject's motion over the still pixels around it): is the current frame there the old one unmoved, or
        the old one shifted by the typical motion?"""
        dx, dy = np.median(summed, axis=0)

        def error_if_shifted(share: float) -> np.ndarray:
            shift = np.float32([[1, 0, share * dx], [0, 1, share * dy]])
            shifted = cv2.warpAffine(old, shift, (self.width, self.height), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
            return cv2.absdiff(cur, shifted)[self._grid].astype(np.float32)

        err_still = cv2.absdiff(cur, old)[self._grid].astype(np.float32)
        return _still_ring_share(err_still, error_if_shifted(1 / 3), error_if_shifted(1.0), self._ring)

    def _layers(self, vectors: np.ndarray, cur: np.ndarray) -> dict[str, float]:
        """The layer statistics of the flow summed over the last `LAYER_FRAMES` pairs (this one included).

        Along x and y they are taken after removing the least-squares scale and rotation about the centre (a
        zoom or roll spreads x and y symmetrically; parallax does not depend on where a point is).
        """
        self._recent.append(vectors)
        self._summed += vectors
        if len(self._recent) > LAYER_FRAMES:
            self._summed -= self._recent.pop(0)
        self._lumas.append(cur)
        if len(self._lumas) > LAYER_FRAMES + 1:
            self._lumas.pop(0)
        self._pairs += 1
        if self._last_layers and self._pairs % LAYER_STEP:
            return self._last_layers
        summed, rel = self._summed, self._rel
        growth = np.einsum("ij,ij->i", summed[self._radial], self._unit)
        spread_x = summed[:, 0] - summed[:, 0].mean()
        norm = float(np.sqrt((spread_x**2).sum() * self._rel_x2))
        x_corr = float((spread_x * rel[:, 0]).sum()) / norm if norm > 0 else 0.0
        centred = summed - summed.mean(axis=0)
        scale = float((rel * centred).sum()) / self._rel_norm
        turn = float((rel[:, 0] * centred[:, 1] - rel[:, 1] * centred[:, 0]).sum()) / self._rel_norm
        residual = summed - scale * rel - turn * np.stack([-rel[:, 1], rel[:, 0]], axis=1)
        out = {}
        for axis, values in (("x", residual[:, 0]), ("y", residual[:, 1])):
            lo, mid, hi = _deciles(values)
            out.update({f"{axis}_lo": lo, f"{axis}_mid": mid, f"{axis}_hi": hi,
                        f"{axis}_border": np.median(values[self._ring])})
        out = {k: float(v) / self.width for k, v in out.items()}
        out["x_centre"], out["y_centre"] = self._centre_shift(self._lumas[0], cur)
        moving = LAYER_MOVING * self.width
        out.update(x_pos=float(np.mean(residual[:, 0] > moving)), x_neg=float(np.mean(residual[:, 0] < -moving)))
        lo, mid, hi = _deciles(growth)
        out.update(r_lo=float(lo), r_mid=float(mid), r_hi=float(hi), x_corr=x_corr)
        out["still_ring"] = self._still_ring(self._lumas[0], cur, summed)
        self._last_layers = out
        return out


def _still_ring_share(err_still: np.ndarray, err_slow: np.ndarray, err_moved: np.ndarray, ring: np.ndarray) -> float:
    """The share of the border ring's decisive grid points (where holding still and the typical motion predict
    clearly different brightness) that holding still explains far better than the typical motion and better
    than a third of it (a far layer that moves slowly, as in parallax, is not still)."""
    decisive = ring & (np.maximum(err_still, err_moved) >= DECISIVE_CHANGE)
    if decisive.sum() < 8:
        return 0.0
    still = (err_still < STILL_BETTER * err_moved) & (err_still <= err_slow)
    return float(np.mean(still[decisive]))


def _deciles(values: np.ndarray) -> tuple[float, float, float]:
    """The 10th, 50th and 90th percentiles (nearest rank; one partition)."""
    n = len(values)
    ranks = [int(0.1 * (n - 1) + 0.5), int(0.5 * (n - 1) + 0.5), int(0.9 * (n - 1) + 0.5)]
    part = np.partition(values, ranks)
    return float(part[ranks[0]]), float(part[ranks[1]]), float(part[ranks[2]])


def _parabola(left: float, centre: float, right: float) -> float:
    """Sub-pixel offset (-0.5..0.5) of the minimum of a parabola through three neighbouring scores."""
    curve = left - 2.0 * centre + right
    return float(np.clip(0.5 * (left - right) / curve, -0.5, 0.5)) if curve > 0 else 0.0
