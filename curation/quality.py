"""Technical quality of a clip from a few of its frames: sharpness, exposure, blockiness, and a size floor.

Every measure is a pure function of RGB uint8 frames (`curation.clip_sample.sample_frames`), on luma
(BT.601), taken per frame and then the median over the frames (one odd frame, a flash, does not decide):

- **sharpness**: variance of the Laplacian over variance of the luma, on the frame area-scaled so its long
  side is at most `ANALYSIS_SIDE` (640) px. Dividing by the luma variance makes it independent of contrast
  (a dim or hazy scene is not "blurry"); the fixed analysis size makes it independent of the clip's
  resolution: a 1280x720 clip is judged on the detail it shows at 640x360, so a 2x upscale of a sharp
  640x360 picture scores as that picture does, and thresholds hold for every clip size. (Clips smaller than
  640 px are measured as they are; shrinking a picture only packs its detail closer, so they score higher.)
  A frame with almost no luma variation (a flat wall, black) has no detail to judge and is left out.
- **exposure**: one signed number, the share of blown-out pixels (luma >= 245) minus the share of near-black
  ones (luma <= 16): 0 when nothing is clipped, -1 all black, +1 all white. `judge_quality` also uses the
  mean luma and both shares on their own (`QualityScores`).
- **blockiness**: the 8x8 block-grid energy ratio. Absolute luma steps between neighbouring columns (and
  rows), clipped at `STEP_CLIP` so real edges do not dominate, are averaged per position modulo 8; the
  strongest position over the median of the eight (plus one luma level, so flat pictures stay near 1).
  About 1.0-1.3 for clean video; DCT coding at low quality puts steps on the grid (2 and up). The strongest
  position, not position 0, so a crop that shifted the grid does not hide it. Measured at full size (the
  grid is in pixels); a source that extraction scaled (1080p to 720p, say) has its grid off 8 px in the
  clip, and its blocking goes unmeasured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
from pydantic import Field

from curation.config_section import _Section

LOW_QUALITY = "low_quality"  # the reason code
ANALYSIS_SIDE = 640  # long side (px) sharpness is measured at
BLACK_LUMA = 16  # luma (0-255) at or below which a pixel is near-black
BLOWN_LUMA = 245  # luma at or above which a pixel is blown out
STEP_CLIP = 24.0  # luma steps above this count as this much in the blockiness profile
FLAT_VARIANCE = 4.0  # a frame whose luma variance is below this has no detail to judge sharpness on


class QualityConfig(_Section):
    """Technical quality: a clip failing any check is rejected `low_quality`, the detail saying which.

    The defaults pass every clip `droplet curate` keeps from `droplet sample-data` (73 clips: synthetic camera
    moves over the sample photo and procedural textures, layered 3D scenes, the real music video cropped to
    116x90) and fail blurred, darkened, blown-out and JPEG-blocked versions of such clips
    (tests/test_quality.py). Measured on those 73 clips: sharpness 0.0076-0.59 (lowest: a zoom into a smooth
    procedural texture), mean luma 0.24-0.59 with at most 5% near-black and no blown-out pixels, blockiness
    1.02-1.28. Measured on degraded clips (x264 crf 18, as extraction writes them): a Gaussian blur of sigma
    2 / 2.5 / 3 / 4 px at 640x360 gives sharpness 0.003-0.005 / 0.0044 / 0.0035 / 0.0029 (H.264 and 8-bit
    rounding leave a floor near 0.003); 5 stops under gives a mean luma of 0.05-0.10, 3 stops over 0.63-0.86
    with up to 28% blown out, 4 stops over about half the frame blown out; frames JPEG-coded at quality 20
    give blockiness 1.4-1.8, at quality 8 2.0-3.5, at quality 5 2.4-4.5.
    """

    enabled: bool = Field(True, description="Measure technical quality (sharpness, exposure, blockiness).")
    frames: int = Field(4, ge=1, description="Frames sampled evenly over the clip for the measures.")
    min_short_side: int = Field(
        90, ge=1, description="The clip's short side (after any black-border crop) below this: too_small. 90 "
        "keeps the sample data's real 160x90 video; raise it to the short side you train at."
    )
    min_sharpness: float = Field(
        0.005, ge=0, description="Median var(Laplacian)/var(luma) at 640 px below this: blurry (kept sample "
        "clips 0.0076 and up; a Gaussian blur of 2 px or more at 640 px 0.005 and below)."
    )
    min_luma: float = Field(0.1, ge=0, le=1, description="Mean luma (0-1) below this: too_dark.")
    max_dark_share: float = Field(0.6, ge=0, le=1, description="Share of near-black pixels (luma <= 16) above "
                                  "this: too_dark.")
    max_luma: float = Field(0.85, ge=0, le=1, description="Mean luma above this: blown_out.")
    max_blown_share: float = Field(0.25, ge=0, le=1, description="Share of blown-out pixels (luma >= 245) above "
                                   "this: blown_out.")
    max_blockiness: float = Field(
        1.8, ge=1, description="8x8 block-grid energy ratio above this: blocky (kept sample clips 1.0-1.3; JPEG-coded "
        "frames re-encoded as clips: quality 20 1.4-1.8, quality 8 2.0-3.5)."
    )


@dataclass(frozen=True)
class QualityScores:
    """A clip's technical measures (medians over its sampled frames)."""

    sharpness: float | None  # None: no sampled frame had detail to judge (flat or black)
    exposure: float  # blown_share - dark_share
    luma: float  # mean luma, 0-1
    dark_share: float
    blown_share: float
    blockiness: float
    frames: int  # frames measured

    def to_row(self) -> dict:
        """The clips.parquet columns: `sharpness`, `exposure` (the rest stays available on the object)."""
        sharp = None if self.sharpness is None else round(self.sharpness, 6)
        return {"sharpness": sharp, "exposure": round(self.exposure, 6)}

    def as_dict(self) -> dict:
        return asdict(self)


def luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def sharpness(gray: np.ndarray) -> float | None:
    """var(Laplacian) / var(luma) at `ANALYSIS_SIDE`; None for a flat frame."""
    h, w = gray.shape
    scale = min(1.0, ANALYSIS_SIDE / max(h, w))
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    _, std = cv2.meanStdDev(gray)
    variance = float(std[0, 0]) ** 2
    if variance < FLAT_VARIANCE:
        return None
    _, lap_std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F, ksize=1))
    return float(lap_std[0, 0]) ** 2 / variance


def exposure_shares(gray: np.ndarray) -> tuple[float, float, float]:
    """(mean luma 0-1, near-black share, blown-out share)."""
    hist = cv2.calcHist([gray], [0], None, [256], [0, 256]).ravel()
    total = float(hist.sum())
    mean = float(hist @ np.arange(256)) / total / 255.0
    return mean, float(hist[:BLACK_LUMA + 1].sum()) / total, float(hist[BLOWN_LUMA:].sum()) / total


def blockiness(gray: np.ndarray) -> float:
    """Mean over both axes of: strongest grid position's mean clipped step / median position's (+1)."""
    g = gray.astype(np.float32)
    ratios = []
    for img in (g, g.T):
        if img.shape[1] < 17:
            continue
        steps = np.minimum(np.abs(np.diff(img, axis=1)), STEP_CLIP).mean(axis=0)
        n = len(steps) // 8 * 8
        phases = steps[:n].reshape(-1, 8).mean(axis=0)
        ratios.append(float(phases.max() + 1.0) / float(np.median(phases) + 1.0))
    return float(np.mean(ratios)) if ratios else 1.0


def measure_quality(frames: list[np.ndarray]) -> QualityScores | None:
    """The measures over `frames` (RGB uint8); None when there is no frame."""
    if not frames:
        return None
    sharp, expo, blocks = [], [], []
    for rgb in frames:
        gray = luma(rgb)
        s = sharpness(gray)
        if s is not None:
            sharp.append(s)
        expo.append(exposure_shares(gray))
        blocks.append(blockiness(gray))
    mean, dark, blown = (float(np.median(col)) for col in zip(*expo, strict=True))
    return QualityScores(
        sharpness=float(np.median(sharp)) if sharp else None, exposure=blown - dark, luma=mean,
        dark_share=dark, blown_share=blown, blockiness=float(np.median(blocks)), frames=len(frames),
    )


def judge_quality(scores: QualityScores | None, width: int, height: int, cfg: QualityConfig) -> str | None:
    """None when the clip passes; else the detail of its `low_quality` rejection, naming the first check it
    fails, in this order: `too_small`, `too_dark`, `blown_out`, `blocky`, `blurry` (exposure before
    sharpness: a black or white picture has no detail to judge), e.g. "blurry: sharpness 0.0031 < 0.005"."""
    if min(width, height) < cfg.min_short_side:
        return f"too_small: short side {min(width, height)} < {cfg.min_short_side}"
    if scores is None:
        return None
    if scores.luma < cfg.min_luma:
        return f"too_dark: mean luma {scores.luma:.3f} < {cfg.min_luma}"
    if scores.dark_share > cfg.max_dark_share:
        return f"too_dark: near-black share {scores.dark_share:.3f} > {cfg.max_dark_share}"
    if scores.luma > cfg.max_luma:
        return f"blown_out: mean luma {scores.luma:.3f} > {cfg.max_luma}"
    if scores.blown_share > cfg.max_blown_share:
        return f"blown_out: blown-out share {scores.blown_share:.3f} > {cfg.max_blown_share}"
    if scores.blockiness > cfg.max_blockiness:
        return f"blocky: blockiness {scores.blockiness:.2f} > {cfg.max_blockiness}"
    if scores.sharpness is not None and scores.sharpness < cfg.min_sharpness:
        return f"blurry: sharpness {scores.sharpness:.4f} < {cfg.min_sharpness}"
    return None
