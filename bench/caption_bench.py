"""Grounded captioner benchmark (CPU): clips/s of caption + QA on realistic clip rows.

Target: >= 100 clips/s. Rows are made like curation's (timelines of 1-3 segments, colours, scores).

    python bench/caption_bench.py [--clips 5000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from captioning.config import CaptionConfig  # noqa: E402
from captioning.grounded import GroundedCaptioner  # noqa: E402
from captioning.qa import check_caption  # noqa: E402
from captioning.timeline import segments_of  # noqa: E402

LABELS = ["pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out", "roll_cw", "roll_ccw", "static",
          "shaky"]


def clip_row(i: int, rng: random.Random) -> dict:
    start = rng.uniform(0, 100)
    bounds = sorted({start, start + 4.0, *(start + rng.uniform(0.5, 3.5) for _ in range(rng.randint(0, 2)))})
    timeline = [{"start_s": a, "end_s": b, "label": rng.choice(LABELS), "speed": rng.uniform(0.02, 0.4),
                 "confidence": rng.uniform(0.4, 1.0)} for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return {"clip_id": f"{i:016x}-0-100", "start_s": start, "end_s": start + 4.0, "brightness": rng.random(),
            "colors": [f"#{rng.randrange(1 << 24):06x}" for _ in range(4)], "object_motion_score": rng.random() / 20,
            "camera_timeline": timeline}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=5000)
    args = parser.parse_args()
    rng = random.Random(0)
    rows = [clip_row(i, rng) for i in range(args.clips)]
    qa = CaptionConfig().qa
    captioner = GroundedCaptioner(qa.min_words, qa.max_words, min_confidence=qa.min_confidence)
    started = time.perf_counter()
    passed = 0
    for row in rows:
        text = captioner.caption(row)
        passed += check_caption(text, segments_of(row), qa.min_words, qa.max_words, qa.min_confidence).passed
    seconds = time.perf_counter() - started
    print(f"grounded captioner + QA: {args.clips / seconds:,.0f} clips/s on one core (target >= 100); "
          f"{passed}/{args.clips} pass QA")


if __name__ == "__main__":
    main()
