"""Loader batch -> (latents, text features, image-to-video conditioning), for the one data kind of a run.

Built once from the data kind (`train.setup`): "pixels" batches (decoded clips) go through the VAE and T5,
"latents" batches (`droplet precompute`) carry both. The inpaint channels of either come from
`model.conditioning.inpaint_conditioning`.

The mix of text-to-video and image-to-video samples and the reference noise follow CogVideoX-Fun's
scripts/train.py: a share of samples (`train.text_to_video_share`) has the whole video masked (text-to-video: both
conditioning channels zero), the rest get the first frame, noised with one sigma per sample drawn as
exp(N(-3, 0.5)) before the VAE encodes it.
Precomputed shards carry `train.reference_noise.precompute_draws` noisy encodings per clip (each with its sigma);
one is picked per sample and step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from model.conditioning import draw_reference_sigma, inpaint_conditioning
from model.vae import encode_pixels, video_to_pixels

from .components import Components
from .config import TrainConfig
from .setup import DataKind

log = logging.getLogger(__name__)


@dataclass
class EncodedBatch:
    latents: torch.Tensor  # [B, F', 16, h, w], float32
    text: torch.Tensor  # [B, L, D], float32
    conditioning: torch.Tensor | None  # [B, F', 17, h, w] for the inpaint layout, else None
    text_to_video: torch.Tensor | None = None  # bool [B] for the inpaint layout: whole video masked
    reference_sigma: torch.Tensor | None = None  # [B]: the noise on each image-to-video row's reference (0: none)


@dataclass
class ModeDraws:
    """Per sample: text-to-video or image-to-video, and the sigma of the reference noise."""

    text_to_video: torch.Tensor  # bool [B]
    sigma: torch.Tensor  # float [B]; 0 for text-to-video rows and with the noise off


class BatchEncoder:
    """Turns loader batches of one data kind into model inputs; draws its randomness from the given generator."""

    def __init__(self, kind: DataKind, parts: Components, config: TrainConfig, device: torch.device) -> None:
        if kind not in ("pixels", "latents"):
            raise ValueError(f"unknown data kind {kind!r}")
        self.kind = kind
        self.parts, self.device = parts, device
        self.inpaint = parts.inpaint
        self.latent_sample = config.data.latent_sample
        self.text_to_video_share = config.train.text_to_video_share
        self.noise = config.train.reference_noise
        self.text_length = parts.text.max_length
        self._clean_reference_logged = False
        self._encode = self._from_pixels if kind == "pixels" else self._from_latents

    def __call__(self, batch: dict, generator: torch.Generator) -> EncodedBatch:
        latents, text, pixels, reference = self._encode(batch, generator)
        if not self.inpaint:
            return EncodedBatch(latents, text, None)
        draws = self.draw(latents.shape[0], generator)
        cond, sigma = self._conditioning(latents, pixels, reference, draws, generator)
        return EncodedBatch(latents, text, cond, draws.text_to_video, sigma)

    def draw(self, batch: int, generator: torch.Generator) -> ModeDraws:
        """The mode of each sample (text-to-video with probability `train.text_to_video_share`) and its reference
        noise sigma, exp(N(log_mean, log_std)), drawn for every sample (so the draws do not depend on the mix)."""
        text_to_video = torch.rand(batch, generator=generator) < self.text_to_video_share
        sigma = torch.zeros(batch)
        if self.noise.enabled:
            sigma = draw_reference_sigma(batch, generator, self.noise.log_mean, self.noise.log_std)
        return ModeDraws(text_to_video, torch.where(text_to_video, 0.0, sigma))

    def _from_pixels(self, batch: dict, generator: torch.Generator):
        if "video" not in batch:
            raise ValueError("a batch without decoded video in a pixels run: is --data a precompute folder?")
        pixels = video_to_pixels(batch["video"]).to(self.device, self.parts.vae.dtype)
        latents = encode_pixels(self.parts.vae, pixels, sample=self.latent_sample, generator=generator)
        text = self.parts.text.encode(batch["caption"])
        return latents.float(), text.float(), pixels, None

    def _from_latents(self, batch: dict, generator: torch.Generator):
        text = batch["text"]
        if text.shape[1] != self.text_length:
            raise ValueError(f"precomputed text features have {text.shape[1]} tokens, this run encodes captions to "
                             f"{self.text_length} (model.text_length): precompute again with this config")
        reference = None
        if self.inpaint:
            if "reference" not in batch:
                raise ValueError("precomputed shards without reference latents: run `droplet precompute` with the "
                                 "image-to-video model's config")
            reference = batch["reference"], batch.get("reference_sigma")
        return batch["latents"].to(self.device).float(), text.to(self.device).float(), None, reference

    def _stored_reference(self, reference: tuple[torch.Tensor, torch.Tensor | None], b: int,
                          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One of a precomputed clip's reference latents per sample, and its sigma: [B, K, F', 16, h, w] noisy
        draws (one picked uniformly), or [B, F', 16, h, w] clean (sigma 0)."""
        latents, sigmas = reference
        if latents.ndim == 6:
            pick = torch.randint(0, latents.shape[1], (b,), generator=generator)
            rows = torch.arange(b)
            return latents[rows, pick].to(self.device).float(), sigmas[rows, pick].float()
        if self.noise.enabled and not self._clean_reference_logged:
            log.warning("the precomputed reference latents are clean: image-to-video samples train without "
                        "reference noise (precompute with train.reference_noise.precompute_draws >= 1 to add it)")
            self._clean_reference_logged = True
        return latents.to(self.device).float(), torch.zeros(b)

    def _conditioning(self, latents: torch.Tensor, pixels: torch.Tensor | None,
                      reference: tuple[torch.Tensor, torch.Tensor | None] | None, draws: ModeDraws,
                      generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample, image-to-video (first frame given, noised) or text-to-video (both channels zero); returns
        the channels and the sigma each row's reference carries."""
        b, frames = latents.shape[0], (latents.shape[1] - 1) * 4 + 1
        mask = torch.ones(b, frames)
        mask[~draws.text_to_video, 0] = 0
        if reference is None:  # pixels: noise the first frame now
            cond = inpaint_conditioning(self.parts.vae, pixels, mask.to(latents.device), tuple(latents.shape),
                                        draws.sigma, generator=generator)
            return cond, draws.sigma
        stored, sigma = self._stored_reference(reference, b, generator)  # precomputed: the noise is in the draws
        cond = inpaint_conditioning(self.parts.vae, None, mask.to(latents.device), tuple(latents.shape),
                                    generator=generator, reference_latents=stored)
        return cond, torch.where(draws.text_to_video, 0.0, sigma)
