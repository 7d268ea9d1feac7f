"""From scenes to clips: trim transition frames, cut out fades and dissolves, enforce lengths, label and
score each clip, and decide keep / reject (data contract: `clips.parquet`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from curation import reasons
from curation.analyze import EDIT_SPAN, SourceAnalysis
from curation.camera import camera_timeline, dominant_label, layered_frames
from curation.config import CurateConfig
from curation.extract import frame_count, output_rate, output_size
from shards.ids import clip_id
from shards.labels import PAPER_CLASS


@dataclass
class PlannedClip:
    """One clip row before extraction (the file facts are filled in when it is written)."""

    row: dict
    start_pts: int
    start_abs_s: float
    end_abs_s: float

    @property
    def extract(self) -> dict:
        """What extraction needs beyond the source's facts (the fields of `ClipSpec` that vary by clip)."""
        return {"start_frame": self.row["start_frame"], "end_frame": self.row["end_frame"],
                "start_pts": self.start_pts, "start_s": self.start_abs_s, "end_s": self.end_abs_s}


def edited_mask(features: dict[str, np.ndarray], cfg: CurateConfig, fps: float = 25.0) -> np.ndarray:
    """Frames inside a fade or dissolve: long runs of frames that a blend of their neighbours explains —
    but not frames whose layers move apart (`camera.layered_frames`: an orbit, travel with parallax)."""
    cam = cfg.camera
    gain = np.nan_to_num(features["blend_gain"], nan=0.0)
    spread = np.nan_to_num(features["blend_spread"], nan=0.0)
    hit = (gain >= cam.edit_gain) & (spread >= cam.edit_spread) & ~layered_frames(features, fps, cam)
    mask = np.zeros_like(hit)
    start = None
    for i in range(len(hit) + 1):
        if i < len(hit) and hit[i]:
            start = i if start is None else start
        elif start is not None:
            if i - start >= cam.edit_min_frames:
                mask[max(0, start - EDIT_SPAN): min(len(hit), i + EDIT_SPAN)] = True
            start = None
    return mask


def dominant_colors(thumbs: list[np.ndarray], k: int = 4) -> list[str]:
    """The k dominant colours (hex, most common first) of RGB thumbnails."""
    if not thumbs:
        return []
    pixels = np.concatenate([t.reshape(-1, 3) for t in thumbs]).astype(np.float32)
    k = min(k, len(pixels))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    cv2.setRNGSeed(0)
    _, labels, centres = cv2.kmeans(pixels, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    counts = np.bincount(labels.ravel(), minlength=k)
    order = np.argsort(-counts)
    return ["#{:02x}{:02x}{:02x}".format(*np.clip(centres[i], 0, 255).astype(int)) for i in order]


def _pieces(start: int, end: int, min_frames: int, max_frames: int) -> list[tuple[int, int]]:
    """Cut [start, end) into equal pieces of at most `max_frames` (each at least `min_frames`)."""
    length = end - start
    k = math.ceil(length / max_frames)
    if length // k < min_frames:
        k -= 1
        return [(start + i * max_frames, start + (i + 1) * max_frames) for i in range(k)]
    bounds = [start + (length * i) // k for i in range(k + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def split_scene(start: int, end: int, edited: np.ndarray, cfg: CurateConfig) -> list[tuple[int, int, str | None]]:
    """Ranges of one scene: (start, end, reason or None). Trimmed; edits and short rests become rejects."""
    trim = cfg.clips.trim_frames
    s, e = start + trim, end - trim
    if e - s < 2:
        return [(start, end, reasons.TOO_SHORT)] if end - start >= 2 else []
    out: list[tuple[int, int, str | None]] = []
    i = s
    while i < e:
        j = i
        flag = bool(edited[i])
        while j < e and bool(edited[j]) == flag:
            j += 1
        if flag:
            out.append((i, j, reasons.EDITED))
        elif j - i < cfg.clips.min_frames:
            out.append((i, j, reasons.TOO_SHORT))
        else:
            out.extend((a, b, None) for a, b in _pieces(i, j, cfg.clips.min_frames, cfg.clips.max_frames))
        i = j
    return [r for r in out if r[1] - r[0] >= 2]


def plan_clips(
    analysis: SourceAnalysis, cuts: list[int], probe: dict, source: str, cfg: CurateConfig
) -> tuple[list[dict], list[PlannedClip]]:
    """Scenes rows and planned clips of one source."""
    n = analysis.num_frames
    bounds = [0] + [c for c in sorted(set(cuts)) if 0 < c < n] + [n]
    cut_score = analysis.features.get("cut_score")
    scenes = [
        {"source_id": probe["source_id"], "start_frame": a, "end_frame": b,
         "score": float(cut_score[a]) if cut_score is not None and a > 0 else 1.0}
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    ctx = source_context(analysis, probe, source, cfg)
    clips = []
    for scene in scenes:
        for a, b, reason in split_scene(scene["start_frame"], scene["end_frame"], ctx.edited, cfg):
            clips.append(plan_clip(ctx, a, b, reason))
    return scenes, clips


def source_context(analysis: SourceAnalysis, probe: dict, source: str, cfg: CurateConfig) -> SourceContext:
    """What every clip of one source is planned from (its analysis, fade/dissolve mask, frame times, output
    rate and size)."""
    n = analysis.num_frames
    fps = float(probe["fps"])
    times = analysis.time
    step = float(np.median(np.diff(times))) if n > 1 else 1.0 / fps

    def abs_time(i: int) -> float:
        return float(times[i]) if i < n else float(times[-1]) + step

    return SourceContext(analysis=analysis, edited=edited_mask(analysis.features, cfg, fps), fps=fps,
                         rate=output_rate(fps), size=output_size(probe["width"], probe["height"],
                                                                 cfg.extract.max_short_side),
                         abs_time=abs_time, t0=float(times[0]), source=source, probe=probe, cfg=cfg)


@dataclass(frozen=True)
class SourceContext:
    """What every clip of one source is planned from (`source_context`)."""

    analysis: SourceAnalysis
    edited: np.ndarray
    fps: float
    rate: Fraction
    size: tuple[int, int]
    abs_time: Callable[[int], float]
    t0: float
    source: str
    probe: dict
    cfg: CurateConfig


def plan_clip(ctx: SourceContext, a: int, b: int, reason: str | None) -> PlannedClip:
    """The row of the clip of source frames [a, b): camera timeline, scores and keep / reject (`reason`, when
    given, rejects it; else the edited and static filters decide)."""
    analysis, cfg, probe, fps, t0 = ctx.analysis, ctx.cfg, ctx.probe, ctx.fps, ctx.t0
    feats = {k: v[a:b] for k, v in analysis.features.items()}
    start_abs, end_abs = ctx.abs_time(a), ctx.abs_time(b)
    segments, scores = camera_timeline(feats, ctx.edited[a:b], fps, cfg.camera, start_s=start_abs - t0)
    label = dominant_label(segments)
    object_score = float(np.mean(feats["object_motion"][1:]) * fps) if b - a > 1 else 0.0
    thumbs = [t for i, t in analysis.color_thumbs.items() if a <= i < b]
    keep_reason = reason
    if keep_reason is None and label == "edited" and cfg.filters.reject_edited:
        keep_reason = reasons.EDITED
    if keep_reason is None and (
        scores["camera_motion_score"] <= cfg.filters.static_camera and object_score <= cfg.filters.static_object
    ):
        keep_reason = reasons.STATIC
    if reason == reasons.EDITED:
        label = "edited"
    row = {
        "clip_id": clip_id(probe["source_id"], a, b),
        "source": ctx.source,
        "source_id": probe["source_id"],
        "start_frame": a,
        "end_frame": b,
        "start_s": round(start_abs - t0, 6),
        "end_s": round(end_abs - t0, 6),
        "fps": float(ctx.rate),
        "num_frames": frame_count(start_abs, end_abs, ctx.rate),
        "width": ctx.size[0],
        "height": ctx.size[1],
        "has_audio": False,
        "source_has_audio": bool(probe["has_audio"]),
        "camera_motion": label,
        "paper_class": PAPER_CLASS[label],
        "camera_timeline": [s.to_dict() for s in segments],
        "camera_motion_score": round(scores["camera_motion_score"], 6),
        "camera_jitter": round(scores["jitter"], 6),
        "object_motion_score": round(object_score, 6),
        "brightness": round(float(np.mean(feats["brightness"])) / 255.0, 6),
        "colors": dominant_colors(thumbs),
        "keep": keep_reason is None,
        "reject_reason": keep_reason,
    }
    return PlannedClip(row=row, start_pts=int(analysis.pts[a]), start_abs_s=start_abs, end_abs_s=end_abs)
