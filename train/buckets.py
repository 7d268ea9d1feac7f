"""Aspect-ratio buckets under a token budget.

A bucket is (N frames, height, width): sizes are multiples of 16 (8x VAE, 2x2 patches), the latent token count
`((N - 1) / 4 + 1) * (H / 16) * (W / 16)` stays within the budget (phase 1: 13,312 = 49 frames at 512x512; phase 2:
68,992 = 85 frames at 896x896), and a clip is never upscaled: a clip smaller than its bucket gets a smaller
bucket of the same shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from shards.sampling import largest_frame_count

DEFAULT_ASPECT_RATIOS = (9 / 21, 9 / 16, 2 / 3, 3 / 4, 1.0, 4 / 3, 3 / 2, 16 / 9, 21 / 9)  # width / height
UNIT = 16  # pixels per latent token side


@dataclass(frozen=True, order=True)
class Bucket:
    frames: int
    height: int
    width: int

    @property
    def latent_frames(self) -> int:
        return (self.frames - 1) // 4 + 1

    @property
    def tokens(self) -> int:
        return self.latent_frames * (self.height // UNIT) * (self.width // UNIT)

    @property
    def name(self) -> str:
        return f"N{self.frames}-{self.height}x{self.width}"


def token_count(frames: int, height: int, width: int) -> int:
    return ((frames - 1) // 4 + 1) * (height // UNIT) * (width // UNIT)


@lru_cache(maxsize=4096)
def largest_size(aspect: float, frames: int, budget: int, tolerance: float = 0.05) -> tuple[int, int]:
    """The largest (height, width), multiples of 16, within the budget and within `tolerance` (relative) of the
    aspect ratio width/height; the closest shape when none is that close."""
    per_frame = budget // ((frames - 1) // 4 + 1)
    candidates = []
    for hu in range(1, per_frame + 1):
        wu = min(max(1, round(hu * aspect)), per_frame // hu)
        if wu < 1:
            break
        error = abs(math.log(wu / hu / aspect))
        candidates.append((error <= tolerance, hu * wu if error <= tolerance else -error, hu, wu))
    _, _, hu, wu = max(candidates)
    return hu * UNIT, wu * UNIT


def nearest_aspect(width: int, height: int, aspects: tuple[float, ...] = DEFAULT_ASPECT_RATIOS) -> float:
    ratio = width / height
    return min(aspects, key=lambda a: abs(math.log(a / ratio)))


def assign_bucket(num_frames: int, width: int, height: int, frame_counts: list[int], token_budget: int,
                  aspects: tuple[float, ...] = DEFAULT_ASPECT_RATIOS) -> Bucket | None:
    """The clip's bucket, or None when no configured frame count fits it (or it is smaller than 16 px)."""
    frames = largest_frame_count(num_frames, frame_counts)
    if frames is None:
        return None
    aspect = nearest_aspect(width, height, aspects)
    bh, bw = largest_size(aspect, frames, token_budget)
    # never upscale: the crop after a cover-resize needs the clip to be at least the bucket size
    scale = min(1.0, height / bh, width / bw)
    if scale < 1.0:
        bh, bw = int(bh * scale) // UNIT * UNIT, int(bw * scale) // UNIT * UNIT
    if bh < UNIT or bw < UNIT:
        return None
    return Bucket(frames, bh, bw)
