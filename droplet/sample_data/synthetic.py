"""Synthetic videos of known shots: camera moves, static, moving object, shaky, fades, similar cuts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .camera import RATES, Pose, Renderer, fit_canvas, move_poses, screen_motion
from .encode import H264Writer
from .textures import grace_hopper, photo_canvas, procedural_texture, similar_texture

FPS = 25
FADE_OUT, BLACK, FADE_IN, FADE_HOLD = 30, 5, 30, 10
DISSOLVE, DISSOLVE_HOLD = 40, 25


@dataclass(frozen=True)
class Shot:
    """One shot of a synthetic video; ``label`` is the camera label the shot should get."""

    kind: str  # camera | short | flash | reframe | static | object | shaky | fade | dissolve
    label: str
    frames: int
    seed: int
    speed: str | None = None
    style: str = "procedural"  # procedural | similar | photo
    similar_cut_before: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return RATES[self.label.split("_")[0]][self.speed] if self.speed else 0.0


def _texture(style: str, height: int, width: int, seed: int) -> np.ndarray:
    if style == "similar":
        return similar_texture(height, width, seed)
    if style == "photo":
        return photo_canvas(height, width, seed)
    return procedural_texture(height, width, seed)


def render_poses(poses: list[Pose], style: str, seed: int, width: int, height: int) -> Iterator[np.ndarray]:
    """Frames of a camera path over a fresh texture (``style``, ``seed``) just large enough for it."""
    poses, cw, ch = fit_canvas(poses, width, height)
    renderer = Renderer(_texture(style, ch, cw, seed))
    for pose in poses:
        yield renderer.render(pose, width, height)


def camera_frames(label: str, frames: int, rate: float, seed: int, width: int, height: int,
                  style: str = "procedural") -> Iterator[np.ndarray]:
    """Frames of one standard camera move (data-contract label, per-frame rate)."""
    return render_poses(move_poses(label, frames, rate), style, seed, width, height)


def _shaky_offsets(n: int, seed: int, max_px: float = 3.0, max_deg: float = 0.4) -> np.ndarray:
    """Independent per-frame (dx, dy, deg) offsets, zero mean (no drift), within about +-max."""
    rng = np.random.default_rng(seed)
    off = rng.uniform(-1.0, 1.0, (n, 3)) * np.array([max_px, max_px, max_deg]) * 0.95
    return off - off.mean(axis=0)


def _object_frames(shot: Shot, width: int, height: int) -> Iterator[np.ndarray]:
    """Static background; the sample photo (about 10% of the frame) slides right by whole pixels."""
    bg = next(camera_frames("static", 1, 0.0, shot.seed, width, height, shot.style))
    ow, oh = shot.extra["object_size"]
    sprite = cv2.resize(grace_hopper(), (ow, oh), interpolation=cv2.INTER_AREA)
    x0, y0 = shot.extra["object_start"]
    dx = int(shot.extra["object_dx"])
    for i in range(shot.frames):
        frame = bg.copy()
        x = x0 + dx * i
        frame[y0:y0 + oh, x:x + ow] = sprite
        yield frame


def _reframe_frames(shot: Shot, width: int, height: int) -> Iterator[np.ndarray]:
    """Shots of one scene cut together (a jump cut): the same canvas (seed), framings `extra["jump"]` apart
    (dx, dy in output px from the canvas centre, scale), each a slow pan."""
    cw, ch = 3 * width, 3 * height
    renderer = Renderer(_texture(shot.style, ch, cw, shot.seed))
    dx, dy, scale = shot.extra["jump"]
    for pose in move_poses(shot.label, shot.frames, shot.rate, base_scale=scale):
        yield renderer.render(pose.shifted(cw / 2 + dx, ch / 2 + dy), width, height)


def _blend_frames(shot: Shot, width: int, height: int) -> Iterator[np.ndarray]:
    """Fade (A -> black -> B) or dissolve (A -> B); both scenes are slow pans on their own textures."""
    n = shot.frames
    rate = RATES["pan"]["slow"]
    scene_a = render_poses(move_poses("pan_right", n, rate), "procedural", shot.seed, width, height)
    scene_b = render_poses(move_poses("pan_right", n, rate), "photo", shot.seed + 1, width, height)
    for i, (a, b) in enumerate(zip(scene_a, scene_b, strict=True)):
        wa, wb = _blend_weights(shot.kind, i)
        out = a.astype(np.float32) * wa + b.astype(np.float32) * wb
        yield np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _blend_weights(kind: str, i: int) -> tuple[float, float]:
    """Weights of scene A and scene B in frame ``i`` of a fade or dissolve shot."""
    if kind == "fade":
        out0 = FADE_HOLD
        in0 = out0 + FADE_OUT + BLACK
        if i < out0:
            return 1.0, 0.0
        if i < out0 + FADE_OUT:
            return 1.0 - (i - out0 + 1) / (FADE_OUT + 1), 0.0
        if i < in0:
            return 0.0, 0.0
        if i < in0 + FADE_IN:
            return 0.0, (i - in0 + 1) / (FADE_IN + 1)
        return 0.0, 1.0
    d0 = DISSOLVE_HOLD
    if i < d0:
        return 1.0, 0.0
    if i < d0 + DISSOLVE:
        w = (i - d0 + 1) / (DISSOLVE + 1)
        return 1.0 - w, w
    return 0.0, 1.0


def shot_frames(shot: Shot, width: int, height: int) -> Iterator[np.ndarray]:
    """The shot's uint8 RGB frames, one at a time."""
    if shot.kind in ("camera", "short"):
        yield from camera_frames(shot.label, shot.frames, shot.rate, shot.seed, width, height, shot.style)
    elif shot.kind == "flash":  # a camera move with a burst of white frames (a photo flash, a strobe)
        first, last = shot.extra["flash"]
        frames = camera_frames(shot.label, shot.frames, shot.rate, shot.seed, width, height, shot.style)
        for i, frame in enumerate(frames):
            yield np.full_like(frame, 250) if first <= i < last else frame
    elif shot.kind == "reframe":  # a slow pan over one fixed canvas, from a jumped-to framing of it
        yield from _reframe_frames(shot, width, height)
    elif shot.kind == "static":  # nothing moves: one render, repeated
        frame = next(camera_frames("static", 1, 0.0, shot.seed, width, height, shot.style))
        for _ in range(shot.frames):
            yield frame
    elif shot.kind == "shaky":
        base = move_poses("static", shot.frames, 0.0)
        off = _shaky_offsets(shot.frames, shot.seed)
        poses = [Pose(p.cx + dx, p.cy + dy, p.scale, p.angle + da)
                 for p, (dx, dy, da) in zip(base, off, strict=True)]
        yield from render_poses(poses, shot.style, shot.seed, width, height)
    elif shot.kind == "object":
        yield from _object_frames(shot, width, height)
    elif shot.kind in ("fade", "dissolve"):
        yield from _blend_frames(shot, width, height)
    else:
        raise ValueError(f"unknown shot kind {shot.kind!r}")


def shot_truth(shot: Shot, start: int, width: int, height: int) -> dict[str, Any]:
    """Truth record of one shot starting at frame ``start`` of its file."""
    end = start + shot.frames
    rec: dict[str, Any] = {
        "start_frame": start, "end_frame": end, "label": shot.label, "kind": shot.kind,
        "speed": shot.speed, "texture": shot.style, "similar_cut_before": shot.similar_cut_before,
        "expect_keep": shot.kind not in ("static", "fade", "dissolve", "short"), "expect_reason": None,
    }
    if shot.kind in ("camera", "short", "flash", "reframe"):
        family = shot.label.split("_")[0]
        unit = {"pan": "px_per_frame", "tilt": "px_per_frame", "zoom": "percent_per_frame",
                "roll": "deg_per_frame"}[family]
        rec["rate"] = {unit: shot.rate}
        rec["screen_motion"] = screen_motion(shot.label, shot.rate)
        if shot.kind == "short":
            rec["expect_reason"] = "too_short"
        if shot.kind == "flash":
            first, last = shot.extra["flash"]
            rec["flash_span"] = [start + first, start + last]
    elif shot.kind == "static":
        rec["expect_reason"] = "static"
        rec["rate"] = {}
        rec["screen_motion"] = screen_motion("static", 0.0)
    elif shot.kind == "object":
        ow, oh = shot.extra["object_size"]
        rec["rate"] = {"object_px_per_frame": float(shot.extra["object_dx"])}
        rec["object"] = {"dx": float(shot.extra["object_dx"]), "dy": 0.0, "size": [ow, oh],
                         "start_xy": list(shot.extra["object_start"]), "texture": "grace_hopper",
                         "area_fraction": round(ow * oh / (width * height), 4)}
        rec["screen_motion"] = screen_motion("static", 0.0)
    elif shot.kind == "shaky":
        off = _shaky_offsets(shot.frames, shot.seed)
        rec["rate"] = {"jitter_px": 3.0, "jitter_deg": 0.4}
        rec["jitter"] = {"max_abs_px": round(float(np.abs(off[:, :2]).max()), 4),
                         "max_abs_deg": round(float(np.abs(off[:, 2]).max()), 4),
                         "camera_offsets_px_deg": np.round(off, 4).tolist(),
                         "note": "camera centre offsets (canvas px) and roll (deg, cw); zero mean, no drift"}
    else:
        rec["expect_reason"] = "edited"
        rec["rate"] = {}
        rec["scenes"] = {"a": {"camera": "pan_right", "px_per_frame": RATES["pan"]["slow"],
                               "texture": "procedural"},
                         "b": {"camera": "pan_right", "px_per_frame": RATES["pan"]["slow"],
                               "texture": "photo (grace_hopper)"}}
        if shot.kind == "fade":
            o = start + FADE_HOLD
            rec["fade_out"] = [o, o + FADE_OUT]
            rec["black"] = [o + FADE_OUT, o + FADE_OUT + BLACK]
            rec["fade_in"] = [o + FADE_OUT + BLACK, o + FADE_OUT + BLACK + FADE_IN]
            rec["edit_span"] = [o, o + FADE_OUT + BLACK + FADE_IN]
        else:
            o = start + DISSOLVE_HOLD
            rec["edit_span"] = [o, o + DISSOLVE]
    return rec


def _cam(label: str, speed: str, frames: int, seed: int, **kw: Any) -> Shot:
    return Shot("camera", label, frames, seed, speed=speed, **kw)


def _object_shot(frames: int, seed: int, width: int, height: int) -> Shot:
    ow = round((0.1 * width * height * 512 / 600) ** 0.5)
    oh = round(ow * 600 / 512)
    extra = {"object_size": (ow, oh), "object_start": (40, (height - oh) // 2), "object_dx": 3}
    return Shot("object", "static", frames, seed, extra=extra)


def synthetic_plan(width: int = 640, height: int = 360) -> dict[str, tuple[int, int, list[Shot]]]:
    """File name -> (width, height, shots). Shot lengths vary in 80..100 so cuts are not periodic."""
    similar = {"style": "similar"}
    return {
        "moves_a.mp4": (width, height, [
            _cam("pan_left", "slow", 88, 101), _cam("pan_right", "fast", 97, 102),
            _cam("tilt_up", "slow", 83, 103), _cam("tilt_down", "fast", 92, 104),
            _cam("zoom_in", "slow", 86, 105), _cam("zoom_out", "fast", 100, 106)]),
        "moves_b.mp4": (width, height, [
            _cam("pan_right", "slow", 91, 201), _cam("pan_left", "fast", 84, 202),
            _cam("tilt_down", "slow", 99, 203), _cam("tilt_up", "fast", 87, 204),
            _cam("zoom_out", "slow", 81, 205), _cam("zoom_in", "fast", 94, 206)]),
        "moves_c.mp4": (width, height, [
            _cam("roll_cw", "slow", 89, 301), _cam("roll_ccw", "fast", 96, 302),
            Shot("static", "static", 82, 303), _cam("roll_ccw", "slow", 93, 304),
            _object_shot(98, 305, width, height), _cam("roll_cw", "fast", 85, 306)]),
        "mixed_d.mp4": (width, height, [
            Shot("shaky", "shaky", 90, 401), Shot("fade", "edited", 92, 402),
            _cam("pan_left", "slow", 87, 403, **similar),
            _cam("tilt_down", "slow", 95, 404, similar_cut_before=True, **similar),
            _cam("pan_right", "slow", 81, 405, similar_cut_before=True, **similar),
            _cam("zoom_in", "slow", 98, 406, similar_cut_before=True, **similar),
            Shot("dissolve", "edited", 90, 407)]),
        "short_e.mp4": (width, height, [
            _cam("pan_right", "slow", 90, 601), Shot("short", "tilt_up", 3, 602, speed="fast"),
            Shot("short", "pan_left", 5, 603, speed="fast"), Shot("short", "zoom_in", 9, 604, speed="fast"),
            Shot("flash", "pan_left", 95, 605, speed="slow", extra={"flash": (45, 47)}),
            _cam("tilt_down", "fast", 85, 606),
            Shot("reframe", "pan_right", 88, 607, speed="slow", extra={"jump": (0.0, 0.0, 1.0)}),
            Shot("reframe", "pan_right", 92, 607, speed="slow", extra={"jump": (150.0, 60.0, 0.8)})]),
        "hd_shots.mp4": (1280, 720, [_cam("pan_right", "fast", 90, 501), _cam("zoom_in", "slow", 96, 502)]),
    }


def write_video(path: Path, width: int, height: int, shots: list[Shot]) -> dict[str, Any]:
    """Render and encode the shots back to back (hard cuts); return the file's truth."""
    records, start = [], 0
    with H264Writer(path, width, height, FPS) as writer:
        for shot in shots:
            for frame in shot_frames(shot, width, height):
                writer.write(frame)
            records.append(shot_truth(shot, start, width, height))
            start += shot.frames
    cuts = [r["start_frame"] for r in records[1:]]
    return {"fps": FPS, "width": width, "height": height, "num_frames": start, "cuts": cuts,
            "cut_details": [{"frame": r["start_frame"], "similar": r["similar_cut_before"]}
                            for r in records[1:]],
            "similar_cuts": [r["start_frame"] for r in records if r["similar_cut_before"]],
            "shots": records, "codec": "h264", "pix_fmt": "yuv420p", "constant_frame_rate": True}


def write_synthetic(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Write every planned synthetic video under ``out_dir / 'synthetic'``; truth keyed by relative path."""
    folder = out_dir / "synthetic"
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for name, (width, height, shots) in synthetic_plan().items():
        truth[f"synthetic/{name}"] = write_video(folder / name, width, height, shots)
    return truth
