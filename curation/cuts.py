"""Hard-cut detection from the per-frame measurements of the analysis pass.

`content_motion` (the default) is PySceneDetect's content score, made adaptive the way its
AdaptiveDetector is (a frame's score over the mean of its neighbours), and fused with what the motion pass
measures: how badly dense optical flow explains the change (`warp_error`). Fast motion inflates the content
score but flow explains it; a cut between similar-looking shots barely moves the content score but flow
cannot explain it. The cut score is the geometric mean of the two adaptive ratios. A cut in part of the frame
(another subject in front of the same background and foreground) barely moves either, so the worst region's flow
residual (`warp_peak`, over a 3 x 3 grid) counts on its own when it jumps far above its neighbours. A change
that returns to the picture before it within a few frames is a flash, not a cut. `content` and `adaptive` are
PySceneDetect's own rules on the same scores, kept for comparison.
"""

from __future__ import annotations

import numpy as np

from curation.config import SceneConfig

MIN_CONTENT = 8.0  # content score floor (0-255 scale) for any cut
MIN_WARP = 4.0  # flow residual floor (0-255 scale) for a content_motion cut
MIN_LOCAL_WARP = 15.0  # ... and the worst region's, for a cut in part of the frame
FLASH_RETURN = 0.35  # the picture "returns" when it comes back this close, relative to the jump


def neighbour_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the `window` values on each side of every frame (the frame itself left out)."""
    n = len(values)
    padded = np.concatenate([np.zeros(window), values, np.zeros(window)])
    counts = np.concatenate([np.zeros(window), np.ones(n), np.zeros(window)])
    csum = np.concatenate([[0.0], np.cumsum(padded)])
    ccount = np.concatenate([[0.0], np.cumsum(counts)])
    idx = np.arange(n)
    total = csum[idx + 2 * window + 1] - csum[idx] - values
    count = ccount[idx + 2 * window + 1] - ccount[idx] - 1
    return total / np.maximum(count, 1)


def adaptive_ratio(values: np.ndarray, window: int) -> np.ndarray:
    return values / (neighbour_mean(values, window) + 1.0)


def cut_scores(features: dict[str, np.ndarray], cfg: SceneConfig) -> np.ndarray:
    """Per-frame cut score of the configured rule, scaled so that 1.0 sits on its threshold."""
    content = features["content"].astype(np.float64)
    if cfg.detector == "content":
        return content / cfg.content_threshold
    content_ratio = adaptive_ratio(content, cfg.window)
    if cfg.detector == "adaptive":
        return np.where(content >= 15.0, content_ratio / cfg.adaptive_ratio, 0.0)
    warp = features["warp_error"].astype(np.float64)
    fused = np.sqrt(content_ratio * adaptive_ratio(warp, cfg.window))
    ok = (content >= MIN_CONTENT) & (warp >= MIN_WARP)
    score = np.where(ok, fused / cfg.fused_ratio, 0.0)
    if "warp_peak" not in features:
        return score
    peak = features["warp_peak"].astype(np.float64)
    local = np.where(peak >= MIN_LOCAL_WARP, adaptive_ratio(peak, cfg.window) / cfg.local_ratio, 0.0)
    return np.maximum(score, local)


def is_flash(features: dict[str, np.ndarray], i: int) -> bool:
    """The change at frame i starts or ends a flash: the picture comes back to frame i-1's within the flash
    window, or frame i is back to a picture from just before the change."""
    limit = FLASH_RETURN * (features["thumb_diff"][i] + 1.0)
    returns = features["return_diff"][i]
    back = features["back_diff"][i] if "back_diff" in features else np.nan
    return bool((np.isfinite(returns) and returns < limit) or (np.isfinite(back) and back < limit))


def detect_cuts(features: dict[str, np.ndarray], cfg: SceneConfig) -> tuple[list[int], np.ndarray]:
    """Frames that start a new shot, and the per-frame score (1.0 = threshold)."""
    score = cut_scores(features, cfg)
    n = len(score)
    candidates = [
        i for i in range(1, n)
        if score[i] >= 1.0 and score[i] >= score[i - 1] and (i + 1 >= n or score[i] > score[i + 1])
    ]
    if cfg.detector == "content_motion" and cfg.flash_frames > 0:
        candidates = [i for i in candidates if not is_flash(features, i)]
    return merge_close(candidates, score, cfg.min_scene_frames), score.astype(np.float32)


def merge_close(cuts: list[int], score: np.ndarray, min_gap: int) -> list[int]:
    """Keep the strongest of cuts closer than `min_gap` frames."""
    kept: list[int] = []
    for c in cuts:
        if kept and c - kept[-1] < min_gap:
            if score[c] > score[kept[-1]]:
                kept[-1] = c
            continue
        kept.append(c)
    return kept
