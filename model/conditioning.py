"""The image-to-video (inpaint) conditioning of the released 33-channel layout.

The transformer sees [noisy latents (16) | mask (1) | reference latents (16)] per latent frame. The mask channel is
`(1 - mask) * scaling_factor`: given frames carry the scaling factor (0.7 for 5B), frames to generate carry 0. The
reference latents are the VAE encoding of the video with the frames to generate set to -1 (black), times the
scaling factor. Text-to-video sets both to zero. The sampler, the trainer (pixels or precomputed reference
latents) and `droplet precompute` all call `inpaint_conditioning`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .vae import encode_pixels

# The sampler's fixed reference noise: CogVideoX-Fun's `noise_aug_strength` default (cogvideox/pipeline/
# pipeline_cogvideox_inpaint.py, also the released DropletVideo pipeline.py). It is about the mean of the training
# draws below: E[exp(N(-3, 0.5))] = exp(-3 + 0.5**2 / 2) = 0.0564.
REFERENCE_NOISE_SIGMA = 0.0563
# Training draws one sigma per sample as exp(N(-3, 0.5)): CogVideoX-Fun's `add_noise_to_reference_video` with
# ratio=None (cogvideox/pipeline/pipeline_cogvideox_inpaint.py, V1.1 and V1.5), called by scripts/train.py.
REFERENCE_NOISE_LOG_MEAN = -3.0
REFERENCE_NOISE_LOG_STD = 0.5


def add_reference_noise(reference: torch.Tensor, sigma: float | torch.Tensor,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """`reference + sigma * N(0, 1)` where the reference is not -1; pixels at -1 (the frames to generate, and black
    pixels of the given ones) stay as they are. `sigma`: one for the batch, or a tensor broadcastable to the
    reference ([B, 1, 1, 1, 1] for one per sample).

    This is the released formula (`add_noise_to_reference_video` in pipeline.py of IEIT-AGI/DropletVideo, called
    there with ratio `noise_aug_strength` = 0.0563 when `add_noise_in_inpaint_model` is set), with the noise drawn
    from `generator` (on the generator's device) where the released code draws it from torch's global generator.
    """
    noise_device = generator.device if generator is not None else reference.device
    noise = torch.randn(reference.shape, generator=generator, device=noise_device, dtype=reference.dtype)
    noise = torch.where(reference == -1, torch.zeros_like(reference), noise.to(reference.device) * sigma)
    return reference + noise


def latent_frame_mask(frame_mask: torch.Tensor, temporal_compression: int = 4) -> torch.Tensor:
    """Per-frame mask [B, F] (1 = generate) -> per latent frame [B, F'], F = 4(F'-1)+1.

    Latent frame 0 is pixel frame 0 alone (causal VAE); latent frame j > 0 covers frames 4j-3 .. 4j. A latent
    frame counts as given only when all of its frames are given.
    """
    first, rest = frame_mask[:, :1], frame_mask[:, 1:]
    groups = rest.unflatten(1, (-1, temporal_compression)).amax(dim=2)
    return torch.cat([first, groups], dim=1)


def draw_reference_sigma(batch: int, generator: torch.Generator | None = None,
                         log_mean: float = REFERENCE_NOISE_LOG_MEAN,
                         log_std: float = REFERENCE_NOISE_LOG_STD) -> torch.Tensor:
    """One reference-noise sigma per sample, log-normal: exp(N(log_mean, log_std)) (float32 [batch], on the CPU
    unless the generator lives elsewhere)."""
    device = generator.device if generator is not None else None
    return torch.exp(log_mean + log_std * torch.randn(batch, generator=generator, device=device))


def inpaint_conditioning(
    vae,
    pixels: torch.Tensor | None,
    frame_mask: torch.Tensor,
    latent_shape: tuple[int, ...],
    reference_noise_sigma: float | torch.Tensor = 0.0,
    generator: torch.Generator | None = None,
    reference_latents: torch.Tensor | None = None,
) -> torch.Tensor:
    """The 17 conditioning channels [B, F', 1 + 16, h, w].

    pixels: the video in [-1, 1], [B, 3, F, H, W] (None for text-to-video); frame_mask: [B, F], 1 = frame to
    generate; latent_shape: [B, F', 16, h, w] of the noisy latents. `reference_noise_sigma` adds Gaussian noise to
    the reference pixels before encoding, except where they are -1 (`add_reference_noise`): one sigma for the
    batch (sampling: 0.0563 when the transformer config says `add_noise_in_inpaint_model`), or a tensor [B] of one
    per sample (training draws them with `draw_reference_sigma`).
    reference_latents: instead of pixels, the reference latents [B, F', 16, h, w] already encoded for this mask
    (`droplet precompute` stores them for the first-frame mask); no noise is added to them.
    """
    b, frames, channels, h, w = latent_shape
    scaling = vae.config.scaling_factor if vae is not None else 1.0
    frame_mask = frame_mask.float()
    given = reference_latents if reference_latents is not None else pixels
    if given is None or bool((frame_mask >= 1).all()):
        device = given.device if given is not None else frame_mask.device
        return torch.zeros(b, frames, channels + 1, h, w, device=device)
    if reference_latents is not None:
        if tuple(reference_latents.shape) != (b, frames, channels, h, w):
            raise ValueError(f"reference latents {tuple(reference_latents.shape)} do not match {tuple(latent_shape)}")
        latents = reference_latents.clone()
    else:
        keep = (1 - frame_mask)[:, None, :, None, None].to(pixels)
        reference = pixels * keep + (-1.0) * (1 - keep)
        sigma = torch.as_tensor(reference_noise_sigma, dtype=reference.dtype).to(reference.device)
        if sigma.ndim:
            if sigma.shape != (b,):
                raise ValueError(f"reference_noise_sigma has shape {tuple(sigma.shape)}; one per sample is ({b},)")
            sigma = sigma[:, None, None, None, None]
        if bool((sigma > 0).any()):
            reference = add_reference_noise(reference, sigma, generator)
        latents = encode_pixels(vae, reference)
    latents[(frame_mask >= 1).all(dim=1).to(latents.device)] = 0  # text-to-video rows of a mixed batch
    mask = latent_frame_mask(frame_mask)[:, :, None, None, None].expand(b, frames, 1, h, w)
    mask_channel = (1 - mask) * scaling
    return torch.cat([mask_channel.to(latents), latents], dim=2)


def first_frame_mask(batch: int, num_frames: int, device=None) -> torch.Tensor:
    """Image-to-video: frame 0 given, every other frame generated."""
    mask = torch.ones(batch, num_frames, device=device)
    mask[:, 0] = 0
    return mask


IMAGE_FITS = ("stretch", "cover")


def resize_image(image: torch.Tensor, height: int, width: int, fit: str = "stretch") -> torch.Tensor:
    """uint8 [H, W, 3] -> [-1, 1] [3, height, width].

    fit "stretch": resized to exactly height x width, the aspect ratio not kept, with PIL's default filter
    (bicubic), as the released inference prepares its reference image (`get_image_to_video_latent` in utils.py of
    IEIT-AGI/DropletVideo: `Image.resize([width, height])`). fit "cover": resized to cover the size, then
    centre-cropped (no distortion; the edges of the longer side are lost).
    """
    if fit == "stretch":
        from PIL import Image

        resized = Image.fromarray(image.cpu().numpy()).resize((width, height))
        x = torch.from_numpy(np.asarray(resized).copy()).permute(2, 0, 1).float()
        return x / 127.5 - 1.0
    if fit != "cover":
        raise ValueError(f"image fit {fit!r}: choose from {IMAGE_FITS}")
    x = image.permute(2, 0, 1)[None].float()
    scale = max(height / x.shape[2], width / x.shape[3])
    size = (max(height, round(x.shape[2] * scale)), max(width, round(x.shape[3] * scale)))
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return (x[0, :, top:top + height, left:left + width] / 127.5 - 1.0).clamp(-1, 1)
