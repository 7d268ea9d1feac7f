"""3D rotary position embeddings for video tokens, built the way diffusers' CogVideoX pipeline builds them.

CogVideoX 1.0 (and so DropletVideo) fits the latent grid into the base grid the model was trained at
(`sample_height`/`sample_width` over the patch size), centred, and spreads RoPE positions over that crop. Released
weights only work with exactly these positions.
"""

from __future__ import annotations

import torch
from diffusers.models.embeddings import get_3d_rotary_pos_embed


def crop_region_for_grid(grid: tuple[int, int], base_width: int, base_height: int) -> tuple[tuple, tuple]:
    """Top-left and bottom-right of `grid` (h, w) resized to fit the base grid, centred (diffusers' rule)."""
    h, w = grid
    if h / w > base_height / base_width:
        resize_h, resize_w = base_height, int(round(base_height / h * w))
    else:
        resize_w, resize_h = base_width, int(round(base_width / w * h))
    top = int(round((base_height - resize_h) / 2.0))
    left = int(round((base_width - resize_w) / 2.0))
    return (top, left), (top + resize_h, left + resize_w)


def video_rope(
    head_dim: int,
    latent_frames: int,
    grid_height: int,
    grid_width: int,
    base_height: int,
    base_width: int,
    device: torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin), each [frames * grid_h * grid_w, head_dim], for a latent video after patching."""
    crops = crop_region_for_grid((grid_height, grid_width), base_width, base_height)
    return get_3d_rotary_pos_embed(
        embed_dim=head_dim,
        crops_coords=crops,
        grid_size=(grid_height, grid_width),
        temporal_size=latent_frames,
        device=device,
    )


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs of the last dim of x [B, H, S, D] (computed in fp32, returned in x's dtype)."""
    real, imag = x.unflatten(-1, (-1, 2)).unbind(-1)
    rotated = torch.stack((-imag, real), dim=-1).flatten(-2)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)
