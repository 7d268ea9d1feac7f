"""Camera-motion timeline: per-frame camera motion -> labelled segments (the data contract's labels).

Speeds are in frame widths per second: pan and tilt move the frame centre that fast; zoom and roll move
a frame corner (0.57 widths from the centre in 16:9) that fast. One unit makes the thresholds comparable
across moves, resolutions and frame rates.
"""

from __future__ import annotations

import numpy as np

from curation.config import CameraConfig
from shards.timeline import Segment

CORNER = 0.57  # distance from the centre to a corner of a 16:9 frame, in widths
MOVES = ("pan", "tilt", "zoom", "roll")
LABELS = {  # component -> (label when positive, label when negative), camera's point of view
    "pan": ("pan_right", "pan_left"),
    "tilt": ("tilt_up", "tilt_down"),
    "zoom": ("zoom_in", "zoom_out"),
    "roll": ("roll_cw", "roll_ccw"),
}


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


def frame_labels(speeds: dict[str, np.ndarray], edited: np.ndarray, cfg: CameraConfig) -> tuple[list[str], dict]:
    """A label per frame, from smoothed speeds; also returns the smoothed speeds and the jitter."""
    smooth = {k: _moving_median(v, cfg.smooth_frames) for k, v in speeds.items()}
    jitter_xy = np.hypot(speeds["pan"] - smooth["pan"], speeds["tilt"] - smooth["tilt"])
    jitter = np.sqrt(_moving_mean(jitter_xy**2, cfg.smooth_frames))
    labels = []
    for i in range(len(edited)):
        if edited[i]:
            labels.append("edited")
            continue
        if jitter[i] > cfg.shaky_jitter:
            labels.append("shaky")
            continue
        best = max(MOVES, key=lambda k: abs(smooth[k][i]))
        value = smooth[best][i]
        if abs(value) <= cfg.static_speed:
            labels.append("static")
        else:
            labels.append(LABELS[best][0 if value > 0 else 1])
    return labels, {"smooth": smooth, "jitter": jitter}


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
    labels, extra = frame_labels(speeds, edited_pairs, cfg)
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
    component = next(k for k, names in LABELS.items() if label in names)
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
