"""The training config (YAML, validated): model, data, optimiser, training loop, DeepSpeed, output."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TRAIN_YAML_HEADER = "# droplet train config. `droplet train --config F`; every key is optional.\n"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSection(Section):
    preset: Literal["tiny", "5b"] = Field("tiny", description="architecture when training from scratch")
    pretrained: str | None = Field(None, description="diffusers-format pipeline folder to start from (local path)")
    image_to_video: bool = Field(False, description="33-channel inpaint layout when building from the preset")
    gradient_checkpointing: bool = False
    sdpa_backends: list[str] | None = Field(None, description='e.g. ["cudnn", "flash"] on Hopper')
    compile_blocks: bool = Field(False, description="torch.compile each transformer block")
    vae_tiling: bool = False

    def local_paths(self) -> dict[str, dict[str, str | None]]:
        """The local folders the model is read from (`runtime.paths.require_local_paths` keywords)."""
        return {"folders": {"model.pretrained": self.pretrained}}


class DataSection(Section):
    urls: list[str] = Field(default_factory=list, description="shard paths/URLs (or --data OUT)")
    frame_counts: list[int] = Field([9], description="N values (4k+1); a clip gets the largest that fits")
    token_budget: int = Field(48, description="latent tokens per sample: 13312 (49 x 512^2), 68992 (85 x 896^2)")
    aspect_ratios: list[float] | None = Field(None, description="bucket width/height ratios (default 9:21..21:9)")
    batch_size: int = Field(2, ge=1, description="per rank, per step")
    num_workers: int = Field(0, ge=0, description="DataLoader workers per rank")
    shuffle_buffer: int = Field(16, ge=1)
    resampled: bool = Field(True, description="draw shards with replacement; false: split by node+worker")
    batches_per_epoch: int = Field(1000, ge=1, description="loader epoch length (with_epoch), per rank")
    latent_sample: bool = Field(True, description="sample the VAE posterior (false: its mean; the tiny VAE is random)")
    precomputed: bool = Field(False, description="shards written by `droplet precompute` (latents + T5 features)")

    @field_validator("frame_counts")
    @classmethod
    def _four_k_plus_one(cls, value: list[int]) -> list[int]:
        bad = [n for n in value if n < 5 or (n - 1) % 4]
        if bad or not value:
            raise ValueError(f"frame counts must be 4k+1 and >= 5, got {value}")
        return sorted(value)


class OptimSection(Section):
    lr: float = Field(2e-5, gt=0)
    weight_decay: float = 3e-2
    eps: float = 1e-10
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = Field(100, ge=0)
    grad_clip: float = Field(1.0, ge=0)


class EmaSection(Section):
    enabled: bool = False
    decay: float = Field(0.9999, gt=0, lt=1)
    dtype: Literal["fp32", "bf16"] = Field("fp32", description="bf16 halves memory but rounds away small updates")
    sharded: bool = Field(True, description="each rank keeps the EMA of 1/world of the parameters")


class ValidationSection(Section):
    every: int = Field(0, ge=0, description="write validation samples every K steps (0: only at the end)")
    prompts: list[str] = Field(default_factory=lambda: [
        "The camera pans slowly to the right across a quiet harbour; boats enter the frame from the right edge."])
    steps: int = 4
    frames: int | None = None
    height: int | None = None
    width: int | None = None
    motion: float = 8.0
    guidance_scale: float = 1.0
    at_end: bool = True


class TrainSection(Section):
    max_steps: int = Field(100, ge=1)
    seed: int = 0
    gradient_accumulation: int = Field(1, ge=1)
    caption_dropout: float = Field(0.1, ge=0, le=1, description="share of samples trained on the empty prompt")
    motion_dropout: float = Field(0.0, ge=0, le=1, description="share of samples trained with M = 0")
    image_to_video_share: float = Field(0.5, ge=0, le=1, description="inpaint layout: share with the first frame given")
    reference_noise_sigma: float = Field(0.0563, ge=0)
    checkpoint_every: int = Field(500, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(10, ge=1)
    peak_tflops: float | None = Field(None, description="per device, for the MFU estimate (default: known GPUs)")
    ema: EmaSection = Field(default_factory=EmaSection)
    validation: ValidationSection = Field(default_factory=ValidationSection)


class TrainConfig(Section):
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    train: TrainSection = Field(default_factory=TrainSection)
    deepspeed: str = Field("configs/deepspeed-zero2-bf16.json", description="DeepSpeed JSON (relative: to the repo)")
    output: str = Field("runs/train", description="run folder: checkpoints, tensorboard, samples, pipeline")

    def updated(self, changes: dict[str, Any]) -> TrainConfig:
        """A validated copy with `changes` applied, keyed by dotted path: {"train.validation.at_end": False}."""
        data = self.model_dump()
        for key, value in changes.items():
            *parents, name = key.split(".")
            node = data
            for part in parents:
                node = node[part]
            if name not in node:
                raise KeyError(f"no config setting {key!r}")
            node[name] = value
        return TrainConfig.model_validate(data)


def read_train_config(path: str | Path | None) -> TrainConfig:
    """The config at `path` (defaults when None); `runtime.config.ConfigError` (a ValueError) with one line."""
    from runtime.config import load_config

    return load_config(path, TrainConfig)
