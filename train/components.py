"""The frozen parts (VAE, T5) and the trainable transformer, from a pipeline folder or a preset."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from model.pipeline import DropletVideoPipeline
from model.scheduler import make_scheduler
from model.text import TextEncoder
from model.transformer import DropletVideoTransformer3DModel

from .config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class Components:
    transformer: DropletVideoTransformer3DModel
    vae: torch.nn.Module
    text: TextEncoder
    scheduler: object

    @property
    def inpaint(self) -> bool:
        cfg = self.transformer.config
        return cfg.in_channels > cfg.out_channels

    def scheduler_copy(self):
        return copy.deepcopy(self.scheduler)


def set_text_length(transformer: DropletVideoTransformer3DModel, text: TextEncoder, length: int | None) -> None:
    """Captions are encoded to `length` T5 tokens (model.text_length) for RoPE models, whatever the folder's
    transformer config says, and the config records it, so the exported pipeline samples at the trained length.
    `length` None, and models with sin-cos positions, keep the config's length."""
    cfg = transformer.config
    if length is None:  # the folder's own length (a pipeline folder's sampler would otherwise encode to 400)
        length = cfg.max_text_seq_length
    if length == text.max_length == cfg.max_text_seq_length:
        return
    if not cfg.use_rotary_positional_embeddings:
        log.warning("model.text_length %d ignored: the transformer has sin-cos positions, trained at %d text tokens",
                    length, cfg.max_text_seq_length)
        return
    if length != cfg.max_text_seq_length:
        log.info("captions encoded to %d T5 tokens (model.text_length); the transformer config said %d",
                 length, cfg.max_text_seq_length)
    text.max_length = length
    text.reset_cache()
    transformer.register_to_config(max_text_seq_length=length)


def build_components(config: TrainConfig, device: torch.device) -> Components:
    m = config.model
    if m.pretrained:
        pipe = DropletVideoPipeline.from_pretrained(Path(m.pretrained), vae_tiling=m.vae_tiling)
        transformer, vae, text, scheduler = pipe.transformer, pipe.vae, pipe.text, pipe.scheduler
    elif m.preset == "tiny":
        from model.tiny import build_tiny_pipeline

        pipe = build_tiny_pipeline(seed=config.train.seed, **({"in_channels": 33} if m.image_to_video else {}))
        transformer, vae, text, scheduler = pipe.transformer, pipe.vae, pipe.text, make_scheduler()
    else:
        raise ValueError(f"model.preset {m.preset!r} needs model.pretrained: a pipeline folder with the VAE and T5 "
                         "(the transformer may be CogVideoX's; the motion embedding is added)")
    set_text_length(transformer, text, m.text_length)
    frozen_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    for frozen in (vae, text.encoder):
        frozen.requires_grad_(False).eval().to(device)
        if frozen.dtype != frozen_dtype:
            frozen.to(dtype=frozen_dtype)
    text.reset_cache()
    transformer.train()
    if m.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.set_sdpa_backends(m.sdpa_backends)
    if m.compile_blocks:
        transformer.compile_blocks()
    log.info("transformer: %.1fM parameters, %d input channels", sum(p.numel() for p in transformer.parameters()) / 1e6,
             transformer.config.in_channels)
    return Components(transformer, vae, text, scheduler)
