"""Awkward but valid inputs: variable frame rate, a display-rotated file, an odd file name, a damaged tail, a
1920x1080 source (clips are scaled down to the 720 short side)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from .camera import Pose
from .encode import H264Writer
from .synthetic import FPS, camera_frames, render_poses

ODD_NAME = "café scène – ünï 1.mp4"
# Stored frames are the displayed ones turned 90 degrees counter-clockwise (np.rot90(k=1)); the display matrix
# says "rotate 90 degrees clockwise to show" which PyAV spells -90 (counter-clockwise degrees, as read back
# from VideoFrame.rotation). Verified with OpenCV's FFmpeg backend, which applies the matrix like ffmpeg does.
ROTATION = -90


def vfr_durations_ms() -> list[int]:
    """Frame durations (ms): alternating 28/48 with three 120 ms gaps; 115 frames, about 25 fps on average."""
    durations = [28 if i % 2 == 0 else 48 for i in range(115)]
    for i in (30, 61, 92):
        durations[i] = 120
    return durations


def _write_vfr(path: Path) -> dict[str, Any]:
    speed = 100.0  # px per second, camera turning right: the scene moves left at 100 px/s
    durations = vfr_durations_ms()
    pts = np.concatenate([[0], np.cumsum(durations)[:-1]]).astype(int)
    total_ms = int(sum(durations))
    mid = (total_ms - durations[-1]) / 2000.0
    poses = [Pose(speed * (t / 1000.0 - mid), 0.0) for t in pts]
    with H264Writer(path, 640, 360, time_base=Fraction(1, 1000)) as writer:
        for p, frame in zip(pts, render_poses(poses, "procedural", 701, 640, 360), strict=True):
            writer.write(frame, pts=int(p))
    n = len(durations)
    return {"status": "ok", "vfr": True, "num_frames": n, "duration_s": total_ms / 1000.0,
            "avg_fps": round(n * 1000.0 / total_ms, 6), "frame_durations_ms": durations,
            "width": 640, "height": 360, "camera_motion": "pan_right",
            "screen_motion": {"dx_px_per_s": -speed, "dy_px_per_s": 0.0}, "expect_kept_clips_min": 1}


def _write_rotated(path: Path) -> dict[str, Any]:
    n = 100
    with H264Writer(path, 360, 640, rotation=ROTATION) as writer:
        for frame in camera_frames("pan_right", n, 3.0, 702, 640, 360):
            writer.write(np.rot90(frame, k=1))
    return {"status": "ok", "num_frames": n, "fps": FPS, "width": 640, "height": 360,
            "stored_width": 360, "stored_height": 640, "rotation": ROTATION,
            "rotation_note": "PyAV VideoFrame.rotation = -90: show the stored frame turned 90 deg clockwise",
            "camera_motion": "pan_right", "stored_orientation_motion": "tilt_up",
            "screen_motion": {"dx": -3.0, "dy": 0.0}, "expect_kept_clips_min": 1}


def _write_odd_name(path: Path) -> dict[str, Any]:
    n = 100
    with H264Writer(path, 640, 360) as writer:
        for frame in camera_frames("pan_left", n, 3.0, 703, 640, 360):
            writer.write(frame)
    return {"status": "ok", "num_frames": n, "fps": FPS, "width": 640, "height": 360,
            "camera_motion": "pan_left", "screen_motion": {"dx": 3.0, "dy": 0.0}, "expect_kept_clips_min": 1}


def _write_full_hd(path: Path) -> dict[str, Any]:
    n = 70  # one clip after trimming: the downscale to the 720 short side is what it is here for
    with H264Writer(path, 1920, 1080) as writer:
        for frame in camera_frames("pan_right", n, 9.0, 705, 1920, 1080):
            writer.write(frame)
    return {"status": "ok", "num_frames": n, "fps": FPS, "width": 1920, "height": 1080, "clip_width": 1280,
            "clip_height": 720, "camera_motion": "pan_right", "screen_motion": {"dx": -9.0, "dy": 0.0},
            "expect_kept_clips_min": 1}


def count_decodable_frames(path: Path) -> int:
    """How many video frames PyAV decodes before the file ends or breaks."""
    count = 0
    try:
        with av.open(str(path)) as container:
            for _ in container.decode(video=0):
                count += 1
    except av.error.FFmpegError:
        pass
    return count


def _write_damaged_prefix(path: Path) -> dict[str, Any]:
    n = 175  # 7 s; the first 60% of the bytes decode to about 3.4 s
    full = path.with_name("damaged_prefix.full.tmp")
    with H264Writer(full, 640, 360, faststart=True) as writer:
        for frame in camera_frames("pan_right", n, 2.0, 704, 640, 360):
            writer.write(frame)
    data = full.read_bytes()
    full.unlink()
    cut = int(len(data) * 0.6)
    path.write_bytes(data[:cut])
    prefix = count_decodable_frames(path)
    return {"status": "ok", "damaged": True, "faststart": True, "original_frames": n, "fps": FPS,
            "original_size": len(data), "size": cut, "prefix_frames": prefix,
            "prefix_note": "frames PyAV decodes before the data ends (measured at generation)",
            "width": 640, "height": 360, "camera_motion": "pan_right",
            "screen_motion": {"dx": -2.0, "dy": 0.0}, "expect_kept_clips_min": 1}


def write_awkward(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Write ``out_dir/awkward/*``; return their truth keyed by path relative to ``out_dir``."""
    folder = out_dir / "awkward"
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "awkward/vfr.mp4": _write_vfr(folder / "vfr.mp4"),
        "awkward/rotated_90.mp4": _write_rotated(folder / "rotated_90.mp4"),
        f"awkward/{ODD_NAME}": _write_odd_name(folder / ODD_NAME),
        "awkward/damaged_prefix.mp4": _write_damaged_prefix(folder / "damaged_prefix.mp4"),
        "awkward/full_hd.mp4": _write_full_hd(folder / "full_hd.mp4"),
    }
