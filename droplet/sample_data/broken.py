"""Deliberately broken inputs, each with the rejection reason a curation run must give it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .encode import H264Writer, write_tone
from .synthetic import camera_frames


def write_broken(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Write ``out_dir/broken/*``; return their truth keyed by path relative to ``out_dir``."""
    folder = out_dir / "broken"
    folder.mkdir(parents=True, exist_ok=True)
    truth: dict[str, dict[str, Any]] = {}

    (folder / "empty.mp4").write_bytes(b"")
    truth["broken/empty.mp4"] = {"status": "rejected", "reason": "empty_file", "size": 0}

    text = b"This is a plain text file with an .mp4 name; it holds no video.\n" * 8
    (folder / "not_a_video.mp4").write_bytes(text)
    truth["broken/not_a_video.mp4"] = {"status": "rejected", "reason": "not_a_video", "size": len(text)}

    # moov atom at the end (the mp4 muxer's default): the first half has no index at all
    full = folder / "truncated_half.full.tmp"
    n = 100
    with H264Writer(full, 640, 360) as writer:
        for frame in camera_frames("pan_right", n, 3.0, 601, 640, 360):
            writer.write(frame)
    data = full.read_bytes()
    full.unlink()
    (folder / "truncated_half.mp4").write_bytes(data[: len(data) // 2])
    truth["broken/truncated_half.mp4"] = {"status": "rejected", "reason": "truncated", "moov_at_end": True,
                                          "original_size": len(data), "size": len(data) // 2,
                                          "original_frames": n}

    write_tone(folder / "audio_only.mp4", seconds=3.0)
    truth["broken/audio_only.mp4"] = {"status": "rejected", "reason": "no_video_stream", "has_audio": True,
                                      "audio": {"codec": "aac", "seconds": 3.0, "tone_hz": 440.0}}

    with H264Writer(folder / "one_frame.mp4", 640, 360) as writer:
        writer.write(next(camera_frames("static", 1, 0.0, 602, 640, 360)))
    truth["broken/one_frame.mp4"] = {"status": "rejected", "reason": "too_short", "num_frames": 1, "fps": 25}
    return truth
