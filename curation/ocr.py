"""Text overlays: the PP-OCR models that `rapidocr-onnxruntime` ships (no download), on a few frames of a clip.

`TextOverlayReader(cfg)(frames)` gives `(text_area, ocr_text)`:

- **text_area**: the share of the frame covered by the boxes of the lines kept (their union, so overlapping
  boxes count once), the **maximum** over the sampled frames. The maximum, not the mean, because an overlay
  that shows on one sampled frame (a subtitle, a title card, a lower third) is in the clip, and a model
  trained on it learns to draw text; scene text big enough to pass the threshold is rare.
- **ocr_text**: the recognised lines (words the detector boxed apart but that share a line joined left to
  right) whose score is at least `min_score`, in order of first appearance
  (frame by frame, top to bottom), the same line read again on a later frame (or read with a letter or
  two different: similarity >= `SAME_LINE`) kept once, joined with " | ". Kept for the captioner. A
  "line" of fewer than `MIN_CHARS` letters or digits is dropped, box and all: on textured scenes the
  detector takes a lone round shape for a glyph ("0", "O") now and then, and one glyph is not an overlay.

Frames are scaled (area filter) so their long side is at most `max_side` before the detector sees them, and
the detector is told not to scale them up (rapidocr's default scales a 640x360 frame up to 1308x736, four
times the work). The direction classifier is off: overlays are upright. The engine is built once per reader.
"""

from __future__ import annotations

import difflib

import cv2
import numpy as np
from pydantic import Field

from curation.config_section import _Section

TEXT_OVERLAY = "text_overlay"  # the reason code
SAME_LINE = 0.8  # difflib ratio at or above which two recognised lines are one line read twice
SEPARATOR = " | "
MIN_CHARS = 2  # a "line" of fewer letters or digits is a shape read as a glyph (a circle read "0"), not text


class OcrConfig(_Section):
    """Text overlays: a clip whose text covers more than `max_text_area` of a frame is rejected `text_overlay`.

    Measured on encoded clips with rendered text (Hershey Duplex, white, over the sample photo; the sizes as
    on a 640x360 frame): a 1.4x headline covers 12.6% of the frame, a 0.8x subtitle line 5.8%, a 0.55x
    caption 1.7%, a 0.5x corner logo 0.6%, and the clips of `droplet sample-data` 0%. The default 0.03
    rejects headlines and subtitles and keeps small captions and logos (their text still reaches `ocr_text`).
    """

    enabled: bool = Field(True, description="Read text overlays with the PP-OCR models rapidocr-onnxruntime ships.")
    frames: int = Field(3, ge=1, description="Frames sampled evenly over the clip for OCR (about 0.2-0.6 s each on two "
                        "CPU cores).")
    min_score: float = Field(0.6, ge=0, le=1, description="Recognised lines scoring below this are dropped (boxes "
                             "and text).")
    max_text_area: float = Field(0.03, ge=0, le=1, description="Text box share of a frame above this (the most "
                                 "over the sampled frames): text_overlay.")
    max_side: int = Field(640, ge=64, description="Frames are scaled so their long side is at most this before OCR "
                          "(detection and recognition); smaller text than about 10 px tall is then missed.")
    threads: int = Field(0, ge=0, description="ONNX Runtime threads per model; 0: every core with the local "
                         "executor, and the CPUs of a check task (ray.check_cpus, at least 1) under Ray.")


class TextOverlayReader:
    """Holds one rapidocr engine; call it on RGB uint8 frames of one clip."""

    def __init__(self, cfg: OcrConfig | None = None) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self.cfg = cfg or OcrConfig()
        threads = self.cfg.threads or -1
        self.engine = RapidOCR(
            text_score=self.cfg.min_score, use_cls=False, det_limit_type="max", det_limit_side_len=self.cfg.max_side,
            intra_op_num_threads=threads, inter_op_num_threads=threads, print_verbose=False,
        )

    def read(self, rgb: np.ndarray) -> tuple[float, list[tuple[str, float]]]:
        """(text area share, [(line, score), ...] top to bottom) of one frame."""
        frame = _fit(rgb, self.cfg.max_side)
        result, _ = self.engine(np.ascontiguousarray(frame[:, :, ::-1]))  # rapidocr takes BGR arrays
        if not result:
            return 0.0, []
        h, w = frame.shape[:2]
        mask = np.zeros((h, w), np.uint8)
        words = []
        for box, text, score in result:
            word = " ".join(str(text).split())
            if float(score) < self.cfg.min_score or sum(c.isalnum() for c in word) < MIN_CHARS:
                continue
            points = np.round(np.asarray(box, np.float32)).astype(np.int32)
            cv2.fillPoly(mask, [points], 1)
            words.append((points, word, float(score)))
        return float(mask.mean()), _lines(words)

    def __call__(self, frames: list[np.ndarray]) -> tuple[float, str]:
        """(text_area, ocr_text) of a clip from its sampled frames (0.0 and "" when there is none)."""
        area = 0.0
        kept: list[tuple[str, float]] = []
        for rgb in frames:
            share, lines = self.read(rgb)
            area = max(area, share)
            for text, score in lines:
                kept = _merge(kept, text, score)
        return area, SEPARATOR.join(text for text, _ in kept)


def _lines(words: list[tuple[np.ndarray, str, float]]) -> list[tuple[str, float]]:
    """Boxes read separately but on one line (their vertical centres inside the line's span) joined left to
    right with a space; lines top to bottom; a line's score is its lowest word's."""
    lines: list[list] = []  # [top, bottom, [(x, word, score), ...]]
    for points, word, score in sorted(words, key=lambda w: float(w[0][:, 1].mean())):
        top, bottom, centre = float(points[:, 1].min()), float(points[:, 1].max()), float(points[:, 1].mean())
        if lines and lines[-1][0] <= centre <= lines[-1][1]:
            lines[-1][0], lines[-1][1] = min(lines[-1][0], top), max(lines[-1][1], bottom)
            lines[-1][2].append((float(points[:, 0].min()), word, score))
        else:
            lines.append([top, bottom, [(float(points[:, 0].min()), word, score)]])
    out = []
    for _, _, items in lines:
        items.sort(key=lambda item: item[0])
        out.append((" ".join(word for _, word, _ in items), min(score for _, _, score in items)))
    return out


def _fit(rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _merge(kept: list[tuple[str, float]], text: str, score: float) -> list[tuple[str, float]]:
    """`kept` with `text` added, or replacing the same line read before if this reading scores higher."""
    if not text:
        return kept
    key = text.casefold()
    for i, (other, other_score) in enumerate(kept):
        if difflib.SequenceMatcher(None, key, other.casefold()).ratio() >= SAME_LINE:
            if score > other_score:
                kept = [*kept[:i], (text, score), *kept[i + 1:]]
            return kept
    return [*kept, (text, score)]
