"""Procedural colour textures (multi-octave value noise plus shapes) and the matplotlib sample photo."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np


def value_noise(height: int, width: int, rng: np.random.Generator, *, cell_sizes: tuple[int, ...],
                persistence: float = 0.6) -> np.ndarray:
    """Sum of bicubically interpolated random lattices, one per cell size; float32 in about [-1, 1]."""
    acc = np.zeros((height, width), np.float32)
    amp, total = 1.0, 0.0
    for cell in sorted(cell_sizes, reverse=True):
        gh, gw = height // cell + 3, width // cell + 3
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        up = cv2.resize(grid, (gw * cell, gh * cell), interpolation=cv2.INTER_CUBIC)
        oy, ox = (int(v) for v in rng.integers(0, cell, 2))
        acc += amp * up[oy:oy + height, ox:ox + width]
        total += amp
        amp *= persistence
    return acc / (total * 0.8)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Float HSV (hue in degrees, s and v in [0, 1]) to uint8 RGB."""
    hsv = np.dstack([np.mod(h, 360.0), np.clip(s, 0, 1), np.clip(v, 0, 1)]).astype(np.float32)
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _draw_shapes(img: np.ndarray, rng: np.random.Generator, count: int, hue: float, *,
                 max_size: float, contrast: float) -> None:
    """Draw anti-aliased circles, rectangles and lines of log-uniform sizes (6 px .. max_size) in place."""
    h, w = img.shape[:2]
    translucent = img.copy()
    for i in range(count):
        if i == count // 2:  # first half of the shapes at 50% opacity, the rest opaque on top
            cv2.addWeighted(img, 0.5, translucent, 0.5, 0.0, dst=img)
        layer = translucent if i < count // 2 else img
        size = float(np.exp(rng.uniform(np.log(6.0), np.log(max_size))))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        base = img[min(y, h - 1), min(x, w - 1)].astype(np.float32)
        tint = _hsv_to_rgb(np.array([[hue + rng.uniform(-90, 90)]]), np.array([[rng.uniform(0.2, 0.9)]]),
                           np.array([[rng.uniform(0.05, 1.0)]]))[0, 0].astype(np.float32)
        colour = tuple(float(c) for c in base + contrast * (tint - base))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            cv2.circle(layer, (x, y), max(2, int(size / 2)), colour, -1, cv2.LINE_AA)
        elif kind == 1:
            box = ((float(x), float(y)), (size, size * rng.uniform(0.3, 1.0)), float(rng.uniform(0, 180)))
            pts = cv2.boxPoints(box).astype(np.int32)
            cv2.fillConvexPoly(layer, pts, colour, cv2.LINE_AA)
        else:
            ang = rng.uniform(0, np.pi)
            dx, dy = np.cos(ang) * size, np.sin(ang) * size
            thick = max(1, int(size / 12))
            p0, p1 = (int(x - dx), int(y - dy)), (int(x + dx), int(y + dy))
            cv2.line(layer, p0, p1, colour, thick, cv2.LINE_AA)


def procedural_texture(height: int, width: int, seed: int) -> np.ndarray:
    """Colourful, high-detail texture (uint8 RGB): noise at 4..256 px plus shapes, trackable at any zoom."""
    rng = np.random.default_rng(seed)
    hue0 = float(rng.uniform(0, 360))
    lum = value_noise(height, width, rng, cell_sizes=(4, 8, 16, 32, 64, 128, 256), persistence=0.7)
    hue = hue0 + 70.0 * value_noise(height, width, rng, cell_sizes=(64, 128, 256))
    sat = 0.55 + 0.3 * value_noise(height, width, rng, cell_sizes=(32, 128))
    img = _hsv_to_rgb(hue, sat, 0.5 + 0.28 * lum)
    _draw_shapes(img, rng, max(40, height * width // 5000), hue0, max_size=180.0, contrast=0.9)
    return img


SIMILAR_HUE = 32.0  # warm beige: every "similar" texture shares this palette


def similar_texture(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth, low-contrast texture in one fixed palette: different seeds look alike to HSV histograms."""
    rng = np.random.default_rng(seed)
    lum = value_noise(height, width, rng, cell_sizes=(8, 16, 32, 64, 128), persistence=0.8)
    hue = SIMILAR_HUE + 6.0 * value_noise(height, width, rng, cell_sizes=(64, 128))
    sat = 0.35 + 0.06 * value_noise(height, width, rng, cell_sizes=(32, 128))
    img = _hsv_to_rgb(hue, sat, 0.58 + 0.09 * lum)
    _draw_shapes(img, rng, max(20, height * width // 9000), SIMILAR_HUE, max_size=120.0, contrast=0.18)
    return img


@lru_cache(maxsize=1)
def grace_hopper() -> np.ndarray:
    """matplotlib's shipped sample photo ``grace_hopper.jpg`` as uint8 RGB (600x512)."""
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        data = np.frombuffer(fh.read(), np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise RuntimeError("could not decode matplotlib's grace_hopper.jpg")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb.setflags(write=False)
    return rgb


def photo_canvas(height: int, width: int, seed: int) -> np.ndarray:
    """A procedural canvas with the sample photo, scaled to the canvas height, in its middle."""
    canvas = procedural_texture(height, width, seed)
    photo = grace_hopper()
    scale = height / photo.shape[0]
    pw = min(width, round(photo.shape[1] * scale))
    resized = cv2.resize(photo, (pw, height), interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    x0 = (width - pw) // 2
    canvas[:, x0:x0 + pw] = resized
    return canvas
