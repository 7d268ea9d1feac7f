"""The 3D causal VAE (diffusers' AutoencoderKLCogVideoX) with helpers that take and return uint8 video.

8x spatial and 4x temporal compression, 16 latent channels; a video of 4k+1 frames becomes k+1 latent frames.
CogVideoX-5B's VAE uses `scaling_factor` 0.7 (the class default, 1.15258426, is 2B's): configs say which.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLCogVideoX

SCALING_FACTOR_5B = 0.7


def load_vae(folder, dtype: torch.dtype = torch.float32, tiling: bool = False, slicing: bool = False):
    """Read a diffusers-format VAE folder (safetensors weights only); tiling/slicing trade speed for memory."""
    vae = AutoencoderKLCogVideoX.from_pretrained(folder, torch_dtype=dtype, low_cpu_mem_usage=False,
                                                 use_safetensors=True)
    set_memory_savers(vae, tiling=tiling, slicing=slicing)
    return vae.eval()


def set_memory_savers(vae: AutoencoderKLCogVideoX, tiling: bool, slicing: bool) -> None:
    (vae.enable_tiling if tiling else vae.disable_tiling)()
    (vae.enable_slicing if slicing else vae.disable_slicing)()


def video_to_pixels(video: torch.Tensor) -> torch.Tensor:
    """uint8 [B, F, H, W, 3] (or [F, H, W, 3]) -> float [B, 3, F, H, W] in [-1, 1]."""
    if video.ndim == 4:
        video = video[None]
    return video.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def pixels_to_video(pixels: torch.Tensor) -> torch.Tensor:
    """float [B, 3, F, H, W] in [-1, 1] -> uint8 [B, F, H, W, 3]."""
    return ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1)


@torch.no_grad()
def encode_pixels(vae, pixels: torch.Tensor, sample: bool = False, generator=None) -> torch.Tensor:
    """[-1, 1] pixels [B, 3, F, H, W] -> scaled latents [B, F', 16, H/8, W/8] (the transformer's layout)."""
    dist = vae.encode(pixels.to(vae.dtype)).latent_dist
    latents = dist.sample(generator) if sample else dist.mode()
    return (latents * vae.config.scaling_factor).permute(0, 2, 1, 3, 4)


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents [B, F', 16, h, w] -> [-1, 1] pixels [B, 3, F, H, W]."""
    latents = latents.permute(0, 2, 1, 3, 4) / vae.config.scaling_factor
    return vae.decode(latents.to(vae.dtype)).sample


def encode_video(vae, video: torch.Tensor, sample: bool = False, generator=None) -> torch.Tensor:
    """uint8 video [B, F, H, W, 3] -> scaled latents [B, F', 16, H/8, W/8]."""
    return encode_pixels(vae, video_to_pixels(video).to(vae.device), sample=sample, generator=generator)


def decode_video(vae, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents -> uint8 video [B, F, H, W, 3]."""
    return pixels_to_video(decode_latents(vae, latents))


def latent_frames(num_frames: int, temporal_compression: int = 4) -> int:
    """Frames of 4k+1 -> k+1 latent frames."""
    if (num_frames - 1) % temporal_compression:
        raise ValueError(f"num_frames must be {temporal_compression}k+1, got {num_frames}")
    return (num_frames - 1) // temporal_compression + 1
