"""The one decode pass per source: every frame measured once, for scene splitting and motion together.

Per frame it keeps a handful of numbers (PySceneDetect's content score, camera motion, object motion, how
well optical flow explains the change, brightness, and thumbnail distances that tell flashes and
dissolves from cuts), so memory stays flat however long the video is. Thumbnails for colours are kept a
few per second; all 48x27 thumbnails only when TransNetV2 needs them. The numbers go into typed arrays (4 bytes
each, about 170 bytes a frame), not lists of Python floats (32 bytes each), so a long stream stays small.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import av
import cv2
import numpy as np

from curation import bars, reasons
from curation.config import AnalysisConfig, SceneConfig
from curation.edits import BlendProbe
from curation.frames import iter_small_frames
from curation.motion import NO_MOTION, MotionEstimator, PairMotion
from curation.reasons import Rejected

MOTION_FIELDS = tuple(PairMotion.__dataclass_fields__)
EDIT_SPAN = 4  # frames on each side of the blend test
COLOR_THUMB_EVERY_S = 0.5


class ContentScore:
    """PySceneDetect's ContentDetector score with its default weights: the mean absolute change of hue,
    saturation and value between consecutive frames, averaged (0-255). Computed here, in the one pass,
    because asking ContentDetector for its per-frame score (through a stats manager) also makes it run
    Canny edges it then weighs by zero; `tests/test_analyze.py` checks the two agree."""

    def __init__(self) -> None:
        self._last: np.ndarray | None = None

    def __call__(self, bgr: np.ndarray) -> float:
        hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
        last, self._last = self._last, hsv
        if last is None:
            return 0.0
        h, s, v, _ = cv2.mean(cv2.absdiff(hsv, last))
        return (h + s + v) / 3.0


@dataclass
class SourceAnalysis:
    """Everything the pass measured; arrays have one entry per decoded frame."""

    num_frames: int
    width: int  # displayed, of the analysis frames
    height: int
    pts: np.ndarray
    time: np.ndarray
    features: dict[str, np.ndarray]
    color_thumbs: dict[int, np.ndarray] = field(default_factory=dict)  # frame index -> 48x27 RGB
    thumbs: np.ndarray | None = None  # (T, 27, 48, 3) RGB, TransNetV2 only
    stopped_early: str | None = None  # why decoding stopped before the end, when it did


def thumb_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails (0-255)."""
    return cv2.norm(a, b, cv2.NORM_L1) / a.size


def analyze_source(
    path: str,
    analysis: AnalysisConfig,
    scenes: SceneConfig,
    keep_thumbs: bool = False,
    fps: float = 25.0,
    camera: bool = True,
    on_frame: Callable[[int], None] | None = None,
) -> SourceAnalysis:
    """Decode `path` once and measure every frame (`fps`: the source's average rate). `camera=False`
    measures only what cut detection needs (no camera model, object motion or fade/dissolve evidence).

    Raises `Rejected` when nothing decodes; a stream that breaks later keeps what decoded before.
    """
    cv2.setNumThreads(1)  # decode threads already fill the cores; OpenCV's pool on top only thrashes
    content = ContentScore()
    flash_frames = max(1, scenes.flash_frames)
    thumb_w, thumb_h = analysis.thumb_size

    names = (*MOTION_FIELDS, "content", "brightness", "thumb_diff", "return_diff", "back_diff", "blend_gain",
             "blend_spread")
    columns: dict[str, array] = {name: array("f") for name in names}  # float32, as the features end up
    pts = array("q")
    times = array("d")
    color_thumbs: dict[int, np.ndarray] = {}
    all_thumbs: list[np.ndarray] = []
    recent: deque[np.ndarray] = deque(maxlen=flash_frames + 2)
    blends: BlendProbe | None = None
    estimator: MotionEstimator | None = None
    prev_luma: np.ndarray | None = None
    color_every = max(1, int(round(fps * COLOR_THUMB_EVERY_S)))
    stopped_early = None
    size = (0, 0)
    box: tuple[int, int, int, int] | None = None  # the picture inside black bars, once a lit frame decided it
    decided = False
    frames = iter_small_frames(path, analysis.short_side, skip_loop_filter=analysis.skip_loop_filter)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            break
        except av.error.FFmpegError as exc:  # a damaged stream keeps its readable prefix
            if not pts:
                raise Rejected(reasons.DECODE_ERROR, f"no frame decodes: {exc}") from None
            stopped_early = f"decoding stopped after {len(pts)} frames: {exc}"
            break
        i = frame.index
        if estimator is None:
            size = (frame.luma.shape[1], frame.luma.shape[0])
            estimator = MotionEstimator(size)
            blends = BlendProbe(EDIT_SPAN, size, (thumb_w, thumb_h))
            columns["blend_gain"].extend([np.nan] * EDIT_SPAN)
            columns["blend_spread"].extend([np.nan] * EDIT_SPAN)
        if not decided and bars.decides(frame.luma):
            decided, box = True, bars.picture_box(frame.luma)
            if box is not None:  # motion is measured inside the bars from here on
                estimator = MotionEstimator((box[2] - box[0], box[3] - box[1]))
                prev_luma = None
        luma = frame.luma if box is None else np.ascontiguousarray(frame.luma[box[1]:box[3], box[0]:box[2]])
        content_score = content(frame.bgr)
        motion = estimator.estimate(prev_luma, luma, camera) if prev_luma is not None else NO_MOTION
        prev_luma = luma
        thumb = cv2.cvtColor(cv2.resize(frame.bgr, (thumb_w, thumb_h), interpolation=cv2.INTER_AREA),
                             cv2.COLOR_BGR2RGB)
        pts.append(frame.pts)
        times.append(frame.time)
        columns["content"].append(content_score)
        columns["brightness"].append(cv2.mean(frame.luma)[0])
        for name in MOTION_FIELDS:
            columns[name].append(getattr(motion, name))
        columns["thumb_diff"].append(thumb_distance(recent[-1], thumb) if recent else 0.0)
        recent.append(thumb)
        _measure_return(recent, columns, flash_frames)
        blend = blends.push(thumb, bars.to_frame(motion.matrix(), box)) if camera else (0.0, 0.0)
        if blend is not None:
            columns["blend_gain"].append(blend[0])
            columns["blend_spread"].append(blend[1])
        if keep_thumbs:
            all_thumbs.append(thumb)
        if i % color_every == 0:
            color_thumbs[i] = thumb
        if on_frame is not None:
            on_frame(i)
    if not pts:
        raise Rejected(reasons.DECODE_ERROR, "the video stream holds no decodable frame")

    n = len(pts)
    for name in ("return_diff", "blend_gain", "blend_spread"):
        del columns[name][n:]
        columns[name].extend([np.nan] * (n - len(columns[name])))
    return SourceAnalysis(
        num_frames=n,
        width=size[0],
        height=size[1],
        pts=np.frombuffer(pts, dtype=np.int64).copy(),
        time=np.frombuffer(times, dtype=np.float64).copy(),
        features={k: np.frombuffer(v, dtype=np.float32).copy() for k, v in columns.items()},
        color_thumbs=color_thumbs,
        thumbs=np.stack(all_thumbs) if keep_thumbs and all_thumbs else None,
        stopped_early=stopped_early,
    )


def _measure_return(recent: deque, columns: dict[str, array], flash_frames: int) -> None:
    """Flash evidence, both ways (a flash or strobe returns to the picture before it; a cut does not).

    return_diff[p]: how close the picture comes back to frame p-1 within `flash_frames` frames after p
    (filled in once those frames have arrived). back_diff[p]: how close frame p is to a frame shortly
    before p-1 (the end of a flash of up to `flash_frames` frames).
    """
    frames = list(recent)
    current = frames[-1]
    older = frames[:-2][-flash_frames:]
    columns["back_diff"].append(min((thumb_distance(current, x) for x in older), default=np.nan))
    p = len(columns["content"]) - 1 - flash_frames
    if p < 0 or len(columns["return_diff"]) != p:
        return
    if p == 0 or len(frames) < flash_frames + 2:
        columns["return_diff"].append(np.nan)
        return
    before = frames[-flash_frames - 2]
    columns["return_diff"].append(min(thumb_distance(before, later) for later in frames[-flash_frames:]))
