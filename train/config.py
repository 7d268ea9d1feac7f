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
    # 400: the DropletVideo paper's training text length and the released inference.py (max_sequence_length=400);
    # CogVideoX-Fun's scripts/train.py defaults to 226 (--tokenizer_max_length), as does its transformer class's
    # max_text_seq_length (cogvideox/models/transformer3d.py), which a folder's config may keep: not used here.
    text_length: int | None = Field(400, ge=1, description="T5 tokens per caption for RoPE models, whatever the "
                                    "pretrained folder says (null: its max_text_seq_length); the export records it")

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
    # 100 steps of linear warmup to a constant lr: CogVideoX-Fun scripts/train.sh (--lr_scheduler
    # constant_with_warmup --lr_warmup_steps=100); lr, weight decay and eps are also train.sh's and the paper's.
    warmup_steps: int = Field(100, ge=0)
    # 0.05: CogVideoX-Fun scripts/train.sh (--max_grad_norm=0.05; train.py's argparse default is 1.0). Under
    # DeepSpeed its train.py clips at exactly this value (no ramp or abnormal-norm rescaling).
    grad_clip: float = Field(0.05, ge=0, description="max gradient norm (0: no clipping)")


class EmaSection(Section):
    enabled: bool = False
    decay: float = Field(0.9999, gt=0, lt=1)
    dtype: Literal["fp32", "bf16"] = Field("fp32", description="bf16 halves memory but rounds away small updates")
    sharded: bool = Field(True, description="each rank keeps the EMA of 1/world of the parameters")


class ReferenceNoiseSection(Section):
    """Gaussian noise on the given (reference) frames before the VAE encodes them, image-to-video samples only."""

    # exp(N(-3, 0.5)) per sample: CogVideoX-Fun's add_noise_to_reference_video(ratio=None), which scripts/train.py
    # applies when the transformer has add_noise_in_inpaint_model (cogvideox/pipeline/pipeline_cogvideox_inpaint.py)
    enabled: bool = True
    log_mean: float = Field(-3.0, description="sigma = exp(N(log_mean, log_std)), one draw per sample")
    log_std: float = Field(0.5, ge=0)
    precompute_draws: int = Field(1, ge=0, description="droplet precompute: noisy reference latents stored per "
                                  "clip, each with its own sigma; training picks one per step (0: one clean copy)")


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
    image: str | None = Field(None, description="first frame for image-to-video validation (default: the first "
                              "frame of the first training clip, kept as RUN/samples/validation-image.png)")


class TrainSection(Section):
    max_steps: int = Field(100, ge=1)
    seed: int = 0
    gradient_accumulation: int = Field(1, ge=1)
    caption_dropout: float = Field(0.1, ge=0, le=1, description="share of samples trained on the empty prompt")
    motion_dropout: float = Field(0.0, ge=0, le=1, description="share of samples trained with M = 0")
    # 0.3: CogVideoX-Fun's get_random_mask (cogvideox/data/dataset_image_video.py) masks the whole video with
    # p 0.3 in V1.0/V1.1 (2024-09: the CogVideoX-Fun-V1.1-5b-InP weights configs/train-5b.yaml may start from)
    # and 0.2 from V1.5 (2024-12); DropletVideo credits CogVideoX-Fun's training strategies and does not say
    # which. The rest here is image-to-video (first frame given).
    text_to_video_share: float = Field(0.3, ge=0, le=1, description="inpaint layout: share of samples with the "
                                       "whole video masked (text-to-video); the rest get the first frame")
    reference_noise: ReferenceNoiseSection = Field(default_factory=ReferenceNoiseSection)
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
