"""Layered 3D scenes with exact camera truth: a far backdrop, a mid-depth subject, near posts.

Each layer is a textured plane facing the camera at its own depth; a pinhole camera (focal length ``FOCAL`` px,
principal point at the frame centre) moves through the scene, and every layer is drawn with the exact
homography that maps its plane into the image, back to front. So a turn moves near and far alike, while a camera
that travels moves the near posts faster than the far photo (parallax), which is what tells the two apart.

World and camera axes: x right, y down, z forward. Camera pose: position ``C`` and angles ``yaw`` (> 0 turns
right), ``pitch`` (> 0 points up), ``roll`` (> 0 rolls clockwise as the camera sees it). The labels follow the
data contract: ``truck_right`` moves the camera right (the scene slides left, near things faster),
``orbit_right`` circles to the camera's right around the subject (background slides right, foreground left,
the subject stays put), ``tracking_right``: the subject and the camera travel right together.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from shards.labels import PAPER_CLASS

from .textures import grace_hopper, procedural_texture

FOCAL = 500.0  # px, for 640x360 frames: a horizontal field of view of about 65 degrees
FAR_Z, SUBJECT_Z, POSTS_Z = 12.0, 5.0, 2.5  # depths (world units) of the three layers at the start

# Per-frame rates at 25 fps, chosen so the subject's layer moves about as fast as the 2D set's pans.
RATES_3D: dict[str, dict[str, float]] = {
    "pan": {"slow": 0.0032, "fast": 0.010},  # yaw, radians per frame (1.6 / 5 px at the centre)
    "tilt": {"slow": 0.0024, "fast": 0.008},  # pitch, radians per frame
    "truck": {"slow": 0.016, "fast": 0.05},  # world units per frame (subject 1.6 / 5 px, posts 3.2 / 10 px)
    "pedestal": {"slow": 0.012, "fast": 0.04},
    "dolly": {"slow": 0.008, "fast": 0.02},  # forward (subject grows 0.16 / 0.4 % per frame, posts twice that)
    "zoom": {"slow": 0.004, "fast": 0.01},  # focal length, relative change per frame
    "orbit": {"slow": 0.004, "fast": 0.008},  # radians of the circle around the subject per frame
    "tracking": {"slow": 0.016, "fast": 0.05},  # world units per frame, camera and subject together
    "roll": {"slow": 0.0035, "fast": 0.01},  # radians per frame (2 / 6 degrees per second at 25 fps)
}


@dataclass
class Layer:
    """A textured plane facing the camera: RGB texture, alpha (0-1), depth, and where its centre sits."""

    rgb: np.ndarray
    alpha: np.ndarray
    z: float
    x: float = 0.0
    y: float = 0.0
    opaque: bool = False  # covers the whole frame (the far layer): drawn without alpha

    def __post_init__(self) -> None:
        self.rgb = cv2.GaussianBlur(self.rgb, (0, 0), 0.5)

    @property
    def units_per_px(self) -> float:
        return self.z / FOCAL  # one texture pixel covers one image pixel at the start


@dataclass(frozen=True)
class CameraPose:
    """Where the camera is (world units), how it is turned (radians: yaw > 0 right, pitch > 0 up, roll > 0
    clockwise) and its focal length (px)."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    focal: float = FOCAL


def _rotation(pose: CameraPose) -> np.ndarray:
    """Camera-to-world rotation: yaw about y, then pitch about x, then roll about the optical axis."""
    cy, sy = math.cos(pose.yaw), math.sin(pose.yaw)
    cp, sp = math.cos(pose.pitch), math.sin(pose.pitch)
    cr, sr = math.cos(pose.roll), math.sin(pose.roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


def layer_homography(layer: Layer, pose: CameraPose, width: int, height: int) -> np.ndarray:
    """The 3x3 map from the layer's texture pixels to image pixels for a camera pose."""
    th, tw = layer.alpha.shape[:2]
    s = layer.units_per_px
    plane = np.array([[s, 0.0, layer.x - (tw - 1) / 2.0 * s], [0.0, s, layer.y - (th - 1) / 2.0 * s],
                      [0.0, 0.0, layer.z]])
    centre = np.array([[pose.x], [pose.y], [pose.z]])
    relative = plane - centre @ np.array([[0.0, 0.0, 1.0]])
    k = np.array([[pose.focal, 0.0, (width - 1) / 2.0], [0.0, pose.focal, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
    return k @ _rotation(pose).T @ relative


def render(layers: list[Layer], pose: CameraPose, width: int, height: int) -> np.ndarray:
    """One uint8 RGB frame: the layers far to near, each warped by its exact homography (bilinear, from
    textures pre-blurred by half a pixel so sub-pixel moves keep their sharpness)."""
    frame = np.zeros((height, width, 3), np.float32)
    for layer in sorted(layers, key=lambda item: -(item.z - pose.z)):
        h = layer_homography(layer, pose, width, height)
        rgb = cv2.warpPerspective(layer.rgb, h, (width, height), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT_101 if layer.opaque else cv2.BORDER_CONSTANT)
        if layer.opaque:
            frame = rgb.astype(np.float32)
            continue
        alpha = cv2.warpPerspective(layer.alpha, h, (width, height), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT)[..., None]
        frame += (rgb.astype(np.float32) - frame) * alpha
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def _far_layer(seed: int, width: int, height: int) -> Layer:
    tw, th = int(width * FAR_Z / 5.0), int(height * FAR_Z / 5.0)  # wide enough for every move below
    rgb = procedural_texture(th, tw, seed)
    return Layer(rgb, np.ones((th, tw), np.float32), FAR_Z, opaque=True)


def _subject_layer(seed: int, height: int, size: float = 0.45, photo: bool = True) -> Layer:
    """An elliptical subject card at mid depth: a textured blob, or (``photo=True``) the sample photo."""
    th = int(height * size) // 2 * 2
    tw = int(th * 512 / 600) // 2 * 2
    rgb = cv2.resize(grace_hopper(), (tw, th), interpolation=cv2.INTER_AREA) if photo else \
        procedural_texture(th, tw, seed + 7)
    alpha = np.zeros((th, tw), np.float32)
    cv2.ellipse(alpha, (tw // 2, th // 2), (tw // 2 - 2, th // 2 - 2), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    return Layer(np.ascontiguousarray(rgb), alpha, SUBJECT_Z)


def _posts_layer(seed: int, width: int, height: int) -> Layer:
    """Near vertical posts (50-80 px wide, 160-240 px apart: about a quarter of the frame), on a plane wide enough
    for every move. Thinner posts are a few pixels at analysis size, where flow cannot follow them."""
    tw, th = int(width * 3.2), int(height * 4)
    rgb = procedural_texture(th, tw, seed + 11)
    alpha = np.zeros((th, tw), np.float32)
    rng = np.random.default_rng(seed)
    x = int(rng.integers(0, 60))
    while x < tw:
        post = int(rng.integers(50, 80))
        alpha[:, x:x + post] = 1.0
        x += post + int(rng.integers(160, 240))
    return Layer(rgb, alpha, POSTS_Z)


@dataclass(frozen=True)
class Shot3D:
    """One shot of a layered scene: its label, speed, length, seed, and (for the subject) what it does."""

    label: str
    frames: int
    seed: int
    speed: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.label.split("_")[0]

    @property
    def paper_class(self) -> str:
        return PAPER_CLASS[self.label]


def _pose_and_subject(shot: Shot3D, t: float) -> tuple[CameraPose, float, float]:
    """Camera pose and the subject's (x, y) offset at time ``t`` (frames from the shot's middle)."""
    rate = RATES_3D[shot.family][shot.speed] if shot.speed else 0.0
    sign = -1.0 if shot.label.endswith(("_left", "_down", "_out", "_ccw")) else 1.0
    d = sign * rate * t
    family = shot.family
    if family == "pan":
        return CameraPose(yaw=d), 0.0, 0.0
    if family == "tilt":
        return CameraPose(pitch=d), 0.0, 0.0
    if family == "roll":
        return CameraPose(roll=d), 0.0, 0.0
    if family == "zoom":
        return CameraPose(focal=FOCAL * math.exp(d)), 0.0, 0.0
    if family == "truck":
        return CameraPose(x=d), 0.0, 0.0
    if family == "pedestal":
        return CameraPose(y=-d), 0.0, 0.0  # up is -y
    if family == "dolly":
        return CameraPose(z=d), 0.0, 0.0
    if family == "orbit":  # circle of radius SUBJECT_Z around the subject, always facing it
        return CameraPose(x=SUBJECT_Z * math.sin(d), z=SUBJECT_Z * (1.0 - math.cos(d)), yaw=-d), 0.0, 0.0
    if family == "tracking":
        return CameraPose(x=d), d, 0.0
    if family == "static":
        dx = shot.extra.get("subject_dx", 0.0) * t * SUBJECT_Z / FOCAL  # image px per frame -> world units
        return CameraPose(), dx, 0.0
    raise ValueError(f"no 3D move for {shot.label!r}")


def shot_frames_3d(shot: Shot3D, width: int, height: int) -> Iterator[np.ndarray]:
    """The shot's frames, one at a time. ``extra``: ``subject_size`` (share of the frame height),
    ``subject_dx`` (image px per frame, static shots), ``swap_at`` (frame where another subject replaces it)."""
    far, posts = _far_layer(shot.seed, width, height), _posts_layer(shot.seed, width, height)
    size = shot.extra.get("subject_size", 0.45)
    subject = _subject_layer(shot.seed, height, size, photo=False)
    other = _subject_layer(shot.seed + 1, height, size) if "swap_at" in shot.extra else None
    middle = (shot.frames - 1) / 2.0
    for i in range(shot.frames):
        pose, sx, sy = _pose_and_subject(shot, i - middle)
        current = other if other is not None and i >= shot.extra["swap_at"] else subject
        current.x, current.y = sx, sy
        yield render([far, current, posts], pose, width, height)


SHOT_FRAMES = 72  # 2.9 s at 25 fps: long enough for a 61-frame clip after trimming


def _shot(label: str, speed: str | None, seed: int, **extra) -> Shot3D:
    return Shot3D(label, SHOT_FRAMES, seed, speed, extra)


def layered_plan() -> dict[str, list[Shot3D]]:
    """File name -> shots: every travelling, orbiting and tracking label at two speeds, turns and the lens in
    the same layered scenes, a still camera with a subject crossing most of the frame, and a subject swap."""
    plan: dict[str, list[Shot3D]] = {}
    seed = 700
    for family, labels in (("truck", ("truck_left", "truck_right")), ("pedestal", ("pedestal_up", "pedestal_down")),
                           ("dolly", ("dolly_in", "dolly_out")), ("orbit", ("orbit_left", "orbit_right")),
                           ("tracking", ("tracking_left", "tracking_right"))):
        shots = []
        for speed in ("slow", "fast"):
            for label in labels:
                seed += 1
                shots.append(_shot(label, speed, seed))
        plan[f"{family}.mp4"] = shots
    plan["turns.mp4"] = [_shot("pan_right", "fast", 801), _shot("tilt_up", "slow", 802),
                         _shot("zoom_in", "slow", 803), _shot("roll_cw", "slow", 804)]
    plan["subject.mp4"] = [_shot("static", None, 805, subject_size=0.9, subject_dx=-4.0),
                           _shot("static", None, 806, swap_at=36)]
    return plan


def write_layered(out_dir: Path) -> dict[str, dict]:
    """Write every layered video under ``out_dir / 'synthetic3d'`` (640x360, 25 fps); truth keyed by relative
    path: hard cuts between shots, each shot's label, paper class, speed and rate, and where a subject swap
    (a cut in the subject alone, background and posts unchanged) happens."""
    from .encode import H264Writer

    folder = out_dir / "synthetic3d"
    folder.mkdir(parents=True, exist_ok=True)
    width, height, fps = 640, 360, 25
    truth = {}
    for name, shots in layered_plan().items():
        records, start = [], 0
        with H264Writer(folder / name, width, height, fps) as writer:
            for shot in shots:
                for frame in shot_frames_3d(shot, width, height):
                    writer.write(frame)
                rec = {"start_frame": start, "end_frame": start + shot.frames, "label": shot.label,
                       "paper_class": shot.paper_class, "speed": shot.speed, "kind": "layered",
                       "rate": {"per_frame": RATES_3D[shot.family][shot.speed]} if shot.speed else {},
                       "expect_keep": shot.label != "static", "expect_reason": "static" if shot.label == "static"
                       else None}
                if "swap_at" in shot.extra:
                    rec["subject_swap"] = start + shot.extra["swap_at"]
                if "subject_dx" in shot.extra:
                    rec["subject"] = {"dx_px_per_frame": shot.extra["subject_dx"],
                                      "height_share": shot.extra.get("subject_size", 0.45)}
                records.append(rec)
                start += shot.frames
        truth[f"synthetic3d/{name}"] = {
            "fps": fps, "width": width, "height": height, "num_frames": start,
            "cuts": [r["start_frame"] for r in records[1:]], "shots": records,
            "layers": {"far_z": FAR_Z, "subject_z": SUBJECT_Z, "posts_z": POSTS_Z, "focal_px": FOCAL},
            "codec": "h264", "pix_fmt": "yuv420p", "constant_frame_rate": True}
    return truth
