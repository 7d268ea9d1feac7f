"""Loader batch -> (latents, text features, image-to-video conditioning), for the one data kind of a run.

Built once from the data kind (`train.setup`): "pixels" batches (decoded clips) go through the VAE and T5,
"latents" batches (`droplet precompute`) carry both. The inpaint channels of either come from
`model.conditioning.inpaint_conditioning`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.conditioning import inpaint_conditioning
from model.vae import encode_pixels, video_to_pixels

from .components import Components
from .config import TrainConfig
from .setup import DataKind


@dataclass
class EncodedBatch:
    latents: torch.Tensor  # [B, F', 16, h, w], float32
    text: torch.Tensor  # [B, L, D], float32
    conditioning: torch.Tensor | None  # [B, F', 17, h, w] for the inpaint layout, else None


class BatchEncoder:
    """Turns loader batches of one data kind into model inputs; draws its randomness from the given generator."""

    def __init__(self, kind: DataKind, parts: Components, config: TrainConfig, device: torch.device) -> None:
        if kind not in ("pixels", "latents"):
            raise ValueError(f"unknown data kind {kind!r}")
        self.kind = kind
        self.parts, self.device = parts, device
        self.inpaint = parts.inpaint
        self.latent_sample = config.data.latent_sample
        self.image_to_video_share = config.train.image_to_video_share
        self.reference_noise_sigma = config.train.reference_noise_sigma
        self._encode = self._from_pixels if kind == "pixels" else self._from_latents

    def __call__(self, batch: dict, generator: torch.Generator) -> EncodedBatch:
        latents, text, pixels, reference = self._encode(batch, generator)
        cond = self._conditioning(latents, pixels, reference, generator) if self.inpaint else None
        return EncodedBatch(latents, text, cond)

    def _from_pixels(self, batch: dict, generator: torch.Generator):
        if "video" not in batch:
            raise ValueError("a batch without decoded video in a pixels run: is --data a precompute folder?")
        pixels = video_to_pixels(batch["video"]).to(self.device, self.parts.vae.dtype)
        latents = encode_pixels(self.parts.vae, pixels, sample=self.latent_sample, generator=generator)
        text = self.parts.text.encode(batch["caption"])
        return latents.float(), text.float(), pixels, None

    def _from_latents(self, batch: dict, generator: torch.Generator):
        reference = None
        if self.inpaint:
            if "reference" not in batch:
                raise ValueError("precomputed shards without reference latents: run `droplet precompute` with the "
                                 "image-to-video model's config")
            reference = batch["reference"].to(self.device).float()
        return batch["latents"].to(self.device).float(), batch["text"].to(self.device).float(), None, reference

    def _conditioning(self, latents: torch.Tensor, pixels: torch.Tensor | None, reference: torch.Tensor | None,
                      generator: torch.Generator) -> torch.Tensor:
        """Per sample, image-to-video (first frame given) or text-to-video (both channels zero)."""
        b, frames = latents.shape[0], (latents.shape[1] - 1) * 4 + 1
        i2v = torch.rand(b, generator=generator) < self.image_to_video_share
        mask = torch.ones(b, frames)
        mask[i2v, 0] = 0
        # precomputed reference latents are those of the first-frame mask, stored without noise
        sigma = self.reference_noise_sigma if pixels is not None else 0.0
        return inpaint_conditioning(self.parts.vae, pixels, mask.to(latents.device), tuple(latents.shape), sigma,
                                    generator=generator, reference_latents=reference)
