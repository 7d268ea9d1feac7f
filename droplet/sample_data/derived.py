"""Inputs derived from the first shot of synthetic/moves_a.mp4 (a slow pan, 88 frames) for the clip checks:

    synthetic_derived/text_overlay.mp4  the shot with a big rendered headline over it: rejected `text_overlay`
    synthetic_derived/moves_a_crop.mp4  the shot cropped by 10%, re-encoded at crf 28: a `near_duplicate` of
                                        moves_a's first clip
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from .copies import _change
from .encode import H264Writer

SHOT_FRAMES = 88  # the first shot of moves_a.mp4
HEADLINE = "BIG SALE TODAY"


def _headline(rgb: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    h, w = out.shape[:2]
    scale = w / 640 * 1.6
    (tw, th), _ = cv2.getTextSize(HEADLINE, cv2.FONT_HERSHEY_DUPLEX, scale, 3)
    org = ((w - tw) // 2, (h + th) // 2)
    cv2.putText(out, HEADLINE, org, cv2.FONT_HERSHEY_DUPLEX, scale, (0, 0, 0), 9, cv2.LINE_AA)
    cv2.putText(out, HEADLINE, org, cv2.FONT_HERSHEY_DUPLEX, scale, (255, 255, 255), 3, cv2.LINE_AA)
    return out


def _write(src: Path, dst: Path, change, crf: int) -> dict[str, Any]:  # noqa: ANN001 - RGB -> RGB
    writer = None
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        fps = int(round(stream.average_rate or 25))
        for i, frame in enumerate(container.decode(stream)):
            if i >= SHOT_FRAMES:
                break
            rgb = change(frame.to_ndarray(format="rgb24"))
            if writer is None:
                writer = H264Writer(dst, rgb.shape[1], rgb.shape[0], fps, crf=crf)
                size = rgb.shape[1], rgb.shape[0]
            writer.write(rgb)
    writer.close()
    return {"status": "ok", "num_frames": SHOT_FRAMES, "fps": float(fps), "width": size[0], "height": size[1]}


def write_derived(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Write both files (needs synthetic/moves_a.mp4); truth keyed by relative path."""
    folder = out_dir / "synthetic_derived"
    folder.mkdir(parents=True, exist_ok=True)
    src = out_dir / "synthetic" / "moves_a.mp4"
    text = _write(src, folder / "text_overlay.mp4", _headline, 18)
    crop = _write(src, folder / "moves_a_crop.mp4", lambda rgb: _change(rgb, 0.9, 1.0), 28)
    return {"synthetic_derived/text_overlay.mp4": {**text, "expect_reason": "text_overlay"},
            "synthetic_derived/moves_a_crop.mp4": {**crop, "expect_reason": "near_duplicate",
                                         "duplicate_of": "synthetic/moves_a.mp4"}}
