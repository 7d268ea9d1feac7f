"""Camera-motion timeline: per-frame camera motion -> labelled segments (the data contract's labels).

Speeds are in frame widths per second: pan and tilt move the frame centre that fast; zoom and roll move
a frame corner (0.57 widths from the centre in 16:9) that fast. One unit makes the thresholds comparable
across moves, resolutions and frame rates.
"""

from __future__ import annotations

import numpy as np

from curation.config import CameraConfig
from curation.motion import LAYER_FRAMES
from shards.timeline import Segment

CORNER = 0.57  # distance from the centre to a corner of a 16:9 frame, in widths
MOVES = ("pan", "tilt", "zoom", "roll")
LABELS = {  # component -> (label when positive, label when negative), camera's point of view
    "pan": ("pan_right", "pan_left"),
    "tilt": ("tilt_up", "tilt_down"),
    "zoom": ("zoom_in", "zoom_out"),
    "roll": ("roll_cw", "roll_ccw"),
}
TRAVEL = {"pan": ("truck_right", "truck_left"), "tilt": ("pedestal_up", "pedestal_down"),
          "zoom": ("dolly_in", "dolly_out")}  # the same signs as the turn or lens move they look like
LAYER_KEYS = ("x_lo", "x_mid", "x_hi", "x_border", "x_centre", "x_pos", "x_neg", "x_corr", "y_lo", "y_mid",
              "y_hi", "r_lo", "r_mid", "r_hi", "still_ring")
SHARES = ("x_pos", "x_neg", "x_corr", "still_ring")  # layer statistics that are shares, not speeds
ORBIT_MAX_CORR = 0.9  # |corr(x motion, x position)| at or above this is a zoom's spread, not layers
LAYERED_GAP_S = 0.6  # a gap this short between layered stretches is the same layered shot


def component_speeds(features: dict[str, np.ndarray], fps: float) -> dict[str, np.ndarray]:
    """Per-frame speed of each camera move in widths/s (signed, camera's point of view)."""
    return {
        "pan": features["pan"] * fps,
        "tilt": features["tilt"] * fps,
        "zoom": features["zoom"] * fps * CORNER,
        "roll": np.radians(features["roll"]) * fps * CORNER,
    }


def _moving_median(x: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or len(x) < 3:
        return x.copy()
    half = width // 2
    padded = np.pad(x, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.median(windows, axis=1)


def _runs(labels: list[str]) -> list[tuple[int, int, str]]:
    runs: list[tuple[int, int, str]] = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            runs.append((start, i, labels[start]))
            start = i
    return runs


def frame_labels(speeds: dict[str, np.ndarray], edited: np.ndarray, cfg: CameraConfig,
                 layers: dict[str, np.ndarray] | None = None) -> tuple[list[str], dict]:
    """A label per frame, from smoothed speeds (and, when given, smoothed layer statistics in widths/s);
    also returns the smoothed speeds and the jitter."""
    smooth = {k: _moving_median(v, cfg.smooth_frames) for k, v in speeds.items()}
    lay = {k: _moving_median(v, cfg.smooth_frames) for k, v in (layers or {}).items()}
    if layers is not None and "ring_x" in layers:  # the border's own shake (a subject cannot pull it about)
        ring_x, ring_y = layers["ring_x"], layers["ring_y"]
        jitter_xy = np.hypot(ring_x - _moving_median(ring_x, cfg.smooth_frames),
                             ring_y - _moving_median(ring_y, cfg.smooth_frames))
    else:
        jitter_xy = np.hypot(speeds["pan"] - smooth["pan"], speeds["tilt"] - smooth["tilt"])
    jitter = np.sqrt(_moving_mean(jitter_xy**2, cfg.smooth_frames))
    drift = np.hypot(smooth["pan"], smooth["tilt"])
    moves = _moves(smooth, cfg)
    labels = []
    for i in range(len(edited)):
        at = {k: float(v[i]) for k, v in lay.items()}
        shaky = jitter[i] > max(cfg.shaky_jitter, drift[i])  # a clear smooth move with some noise is that move
        if edited[i] or shaky or (at and _orbits(at, cfg)):
            labels.append("edited" if edited[i] else "shaky" if shaky
                          else "orbit_right" if at["x_border"] > 0 else "orbit_left")
            continue
        best = moves[i]
        if best is None:
            labels.append(_travel_past_still_background(at, cfg) if at else "static")
            continue
        value = smooth[best][i]
        labels.append(_refine(best, value, at, cfg) if at else LABELS[best][0 if value > 0 else 1])
    return labels, {"smooth": smooth, "jitter": jitter}


def _moves(smooth: dict[str, np.ndarray], cfg: CameraConfig) -> list[str | None]:
    """The moving component of each frame, or None when still, with hysteresis: a run of frames whose fastest
    component keeps its direction above `hold_share` x `static_speed` moves when `smooth_frames` of its frames
    pass `static_speed` (so a slow constant move is one segment, not move / still / move, and a brief
    flicker of the fit does not grow into a move)."""
    n = len(smooth["pan"])
    best = [max(MOVES, key=lambda k: abs(smooth[k][i])) for i in range(n)]
    key = [(b, bool(smooth[b][i] > 0)) for i, b in enumerate(best)]
    speed = np.array([abs(smooth[b][i]) for i, b in enumerate(best)])
    low = speed > cfg.hold_share * cfg.static_speed
    out: list[str | None] = [None] * n
    i = 0
    while i < n:
        j = i + 1
        while j < n and low[i] and low[j] and key[j] == key[i]:
            j += 1
        if low[i] and np.count_nonzero(speed[i:j] > cfg.static_speed) >= cfg.smooth_frames:
            out[i:j] = [best[i]] * (j - i)
        i = j
    return out


def _orbits(at: dict, cfg: CameraConfig) -> bool | np.ndarray:
    """Layers slide both ways along x, the centre stays, and no vertical move dominates (`at`: floats of one
    frame, or arrays of many)."""
    lo, hi = at["x_lo"], at["x_hi"]
    reach = np.maximum(np.abs(lo), np.abs(hi))
    return ((np.minimum(at["x_pos"], at["x_neg"]) >= cfg.orbit_share) & (lo < 0) & (hi > 0)
            & (np.abs(at["x_corr"]) < ORBIT_MAX_CORR)
            & (np.minimum(-lo, hi) >= 0.3 * reach) & (hi - lo >= cfg.orbit_spread)
            & (np.abs(at["x_centre"]) <= cfg.held_ratio * reach) & (np.abs(at["y_mid"]) < 0.5 * reach))


def _parallax(lo: float, hi: float, ratio: float, spread: float) -> bool:
    """All layers move the same way, the fastest at least `ratio` times the slowest and `spread` faster (the
    flow's noise spreads the layers of a flat scene by a constant, which a slow move's ratio would take for
    parallax)."""
    if lo * hi <= 0:
        return False
    slow, fast = sorted((abs(lo), abs(hi)))
    return fast >= ratio * slow and fast - slow >= spread


def _travel_past_still_background(at: dict[str, float], cfg: CameraConfig) -> str:
    """The global model (held by the farthest, largest layer) says still: nearer layers may still show a
    slow travel (a dolly or truck past a distant backdrop)."""
    for axis, family, ratio, unit in (("r", "zoom", cfg.dolly_ratio, CORNER), ("x", "pan", cfg.travel_ratio, 1.0),
                                      ("y", "tilt", cfg.travel_ratio, 1.0)):
        lo, hi = at[f"{axis}_lo"], at[f"{axis}_hi"]
        fast = hi if abs(hi) > abs(lo) else lo
        if abs(fast) * unit > cfg.static_speed and _parallax(lo, hi, ratio, cfg.static_speed / unit):
            sign = 0 if (fast > 0) == (axis != "x") else 1  # x: the scene sliding left is truck_right
            return TRAVEL[family][sign]
    return "static"


def _refine(best: str, value: float, at: dict[str, float], cfg: CameraConfig) -> str:
    """The label of a frame whose global model says `best` moves at `value`: a turn, the lens or roll, or the
    travel, tracking that looks like it."""
    sign = 0 if value > 0 else 1
    if best == "pan":
        border = at["x_border"]
        if abs(border) >= cfg.static_speed and abs(at["x_centre"]) <= cfg.held_ratio * abs(border):
            return "tracking_right" if border < 0 else "tracking_left"
    if at.get("still_ring", 0.0) >= cfg.still_ring:
        return "static"  # part of the background held still: a subject moves, not the camera
    if best == "pan" and _parallax(at["x_lo"], at["x_hi"], cfg.travel_ratio, cfg.static_speed):
        return TRAVEL["pan"][sign]
    if best == "tilt" and _parallax(at["y_lo"], at["y_hi"], cfg.travel_ratio, cfg.static_speed):
        return TRAVEL["tilt"][sign]
    if best == "zoom" and _parallax(at["r_lo"], at["r_hi"], cfg.dolly_ratio, cfg.static_speed / CORNER):
        return TRAVEL["zoom"][sign]
    return LABELS[best][sign]


def layered_frames(features: dict[str, np.ndarray], fps: float, cfg: CameraConfig) -> np.ndarray:
    """Frames whose (smoothed) layers orbit, and gaps of at most `LAYERED_GAP_S` between them; all False for
    features without layer statistics. No single camera-aligned blend explains layers that slide apart, so the
    blend test for fades and dissolves does not count these frames."""
    layers = layer_speeds(features, fps)
    n = len(next(iter(features.values()))) if features else 0
    if layers is None:
        return np.zeros(n, dtype=bool)
    lay = {k: _moving_median(v, cfg.smooth_frames) for k, v in layers.items()}
    return _close_gaps(np.asarray(_orbits(lay, cfg), dtype=bool), int(round(LAYERED_GAP_S * fps)))


def _close_gaps(mask: np.ndarray, longest: int) -> np.ndarray:
    """`mask` with runs of False no longer than `longest` between two True runs set True."""
    out = mask.copy()
    true = np.flatnonzero(mask)
    for a, b in zip(true[:-1], true[1:], strict=True):
        if 1 < b - a <= longest + 1:
            out[a + 1:b] = True
    return out


def layer_speeds(features: dict[str, np.ndarray], fps: float) -> dict[str, np.ndarray] | None:
    """The layer statistics in widths/s (shares and the correlation as they are); None for features without
    them."""
    if "x_lo" not in features:
        return None
    out = {k: features[k] * (1.0 if k in SHARES else fps / LAYER_FRAMES) for k in LAYER_KEYS}
    if "ring_x" in features:  # per pair, not summed
        out.update(ring_x=features["ring_x"] * fps, ring_y=features["ring_y"] * fps)
    return out


def _moving_mean(x: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or len(x) == 0:
        return x
    kernel = np.ones(width) / width
    return np.convolve(np.pad(x, width // 2, mode="edge"), kernel, mode="valid")[: len(x)]


def _merge_short(runs: list[tuple[int, int, str]], min_len: int) -> list[tuple[int, int, str]]:
    """Absorb runs shorter than `min_len` into their longer neighbour, shortest first."""
    runs = list(runs)
    while len(runs) > 1:
        lengths = [e - s for s, e, _ in runs]
        i = int(np.argmin(lengths))
        if lengths[i] >= min_len:
            break
        s, e, _ = runs[i]
        if i == 0:
            j = 1
        elif i == len(runs) - 1:
            j = i - 1
        else:
            j = i - 1 if lengths[i - 1] >= lengths[i + 1] else i + 1
        ns, ne, nl = runs[j]
        runs[min(i, j)] = (min(s, ns), max(e, ne), nl)
        del runs[max(i, j)]
        # neighbours with the same label join
        merged: list[tuple[int, int, str]] = []
        for run in runs:
            if merged and merged[-1][2] == run[2]:
                merged[-1] = (merged[-1][0], run[1], run[2])
            else:
                merged.append(run)
        runs = merged
    return runs


def camera_timeline(
    features: dict[str, np.ndarray], edited: np.ndarray, fps: float, cfg: CameraConfig, start_s: float = 0.0
) -> tuple[list[Segment], dict]:
    """Segments over the frames in `features` (one clip), and clip-level scores.

    Row i of the features is the motion from frame i-1 to frame i; row 0 of a clip is ignored.
    """
    n = len(edited)
    speeds = {k: v[1:] if n > 1 else v for k, v in component_speeds(features, fps).items()}
    edited_pairs = edited[1:] if n > 1 else edited
    layers = layer_speeds(features, fps)
    if layers is not None:
        layers = {k: v[1:] if n > 1 else v for k, v in layers.items()}
    labels, extra = frame_labels(speeds, edited_pairs, cfg, layers)
    runs = _merge_short(_runs(labels), max(1, int(round(cfg.min_segment_s * fps))))
    inliers = features["inliers"][1:] if n > 1 else features["inliers"]
    segments = []
    for s, e, label in runs:
        agree = float(np.mean([lab == label for lab in labels[s:e]]))
        reliable = float(np.clip(np.mean(inliers[s:e]) / 0.6, 0.0, 1.0)) if label not in ("edited",) else 1.0
        segments.append(
            Segment(
                start_s=start_s + s / fps,
                end_s=start_s + (e + 1) / fps,
                label=label,
                speed=_segment_speed(label, extra, s, e),
                confidence=round(agree * reliable, 4),
            )
        )
    scores = {
        "camera_motion_score": float(np.mean(
            np.hypot(speeds["pan"], speeds["tilt"]) + np.abs(speeds["zoom"]) + np.abs(speeds["roll"])
        )) if len(labels) else 0.0,
        "jitter": float(np.mean(extra["jitter"])) if len(labels) else 0.0,
    }
    return segments, scores


def _segment_speed(label: str, extra: dict, s: int, e: int) -> float:
    if label in ("static", "edited"):
        return 0.0
    if label == "shaky":
        return float(np.mean(extra["jitter"][s:e]))
    if label.startswith(("orbit", "tracking")):
        return float(np.mean(np.abs(extra["smooth"]["pan"][s:e])))
    component = next(k for table in (LABELS, TRAVEL) for k, names in table.items() if label in names)
    return float(np.mean(np.abs(extra["smooth"][component][s:e])))


def dominant_label(segments: list[Segment]) -> str:
    """The label that covers the most time (`edited` wins once it covers a fifth of the clip)."""
    if not segments:
        return "static"
    total: dict[str, float] = {}
    for seg in segments:
        total[seg.label] = total.get(seg.label, 0.0) + seg.end_s - seg.start_s
    duration = sum(total.values())
    if total.get("edited", 0.0) >= 0.2 * duration:
        return "edited"
    return max(total, key=lambda k: total[k])
