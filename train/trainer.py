"""The DropletVideo trainer: bucketed shards -> v-prediction MSE -> DeepSpeed (ZeRO-2 bf16) -> checkpoints.

One process, `deepspeed`/`torchrun` on one node, or Ray Train workers (train/ray_launch.py) all run `Trainer`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from model.flops import PEAK_BF16_TFLOPS, training_flops
from model.pipeline import DropletVideoPipeline, SampleSettings, write_mp4
from model.vae import decode_video

from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .components import Components, build_components
from .config import TrainConfig
from .data import ClipBatches, Cursor, StreamSpec, iterate_epoch
from .distributed import DistInfo, init_distributed
from .ema import ShardedEMA
from .encode import BatchEncoder
from .objective import StepInputs, step_inputs
from .optim import build_engine
from .setup import TrainData

log = logging.getLogger(__name__)


class EmptyEpochError(ValueError):
    """A whole loader epoch gave no trainable batch: training would loop over empty epochs forever."""


@dataclass
class StepResult:
    step: int
    loss: float
    lr: float  # the learning rate this step was taken at
    grad_norm: float | None
    seconds: float
    samples: int
    tokens: int


@dataclass
class RunSummary:
    steps: list[StepResult] = field(default_factory=list)
    resumed_from: int = 0
    output: str = ""
    pipeline: str | None = None

    @property
    def losses(self) -> list[float]:
        return [s.loss for s in self.steps]


class Trainer:
    def __init__(self, config: TrainConfig, data: TrainData, output: Path, dist_info: DistInfo | None = None,
                 on_checkpoint: Callable[[Path, dict], None] | None = None) -> None:
        """`config` is read, never changed; `data` (URLs and kind) comes from `train.setup`."""
        self.config = config
        self.output = Path(output)
        self.dist = dist_info or init_distributed()
        self.on_checkpoint = on_checkpoint
        cfg = config.train
        self.generator = torch.Generator().manual_seed(cfg.seed * 1000 + self.dist.rank)
        torch.manual_seed(cfg.seed)
        self.parts: Components = build_components(config, self.dist.device)
        self.engine = build_engine(config, self.parts.transformer, self.dist, self.output)
        self.dtype = self.engine.module.dtype
        self.encoder = BatchEncoder(data.kind, self.parts, config, self.dist.device)
        spec = StreamSpec(urls=list(data.urls), frame_counts=config.data.frame_counts,
                          token_budget=config.data.token_budget, batch_size=config.data.batch_size, seed=cfg.seed,
                          shuffle_buffer=config.data.shuffle_buffer, resampled=config.data.resampled,
                          precomputed=data.kind == "latents")
        if config.data.aspect_ratios:
            spec.aspect_ratios = tuple(config.data.aspect_ratios)
        self.data = ClipBatches(spec, self.dist.rank, self.dist.world_size)
        self.ema = None
        if cfg.ema.enabled:
            self.ema = ShardedEMA(self.engine.module, cfg.ema.decay,
                                  torch.float32 if cfg.ema.dtype == "fp32" else torch.bfloat16, cfg.ema.sharded,
                                  self.dist.rank, self.dist.world_size)
        self.step = 0
        self.last_loss: float | None = None
        self.writer = None
        self.peak_flops = self._peak_flops()
        self.validation_modes = self._validation_modes()
        self.validation_image: torch.Tensor | None = None  # uint8 [H, W, 3] for image-to-video validation
        v = cfg.validation
        self._wants_first_frame = False
        if "image-to-video" in self.validation_modes and self.is_main and (v.every or v.at_end):
            self.validation_image = self._configured_validation_image()
            self._wants_first_frame = self.validation_image is None

    def barrier(self) -> None:
        if self.dist.world_size > 1:
            torch.distributed.barrier()

    def open_writer(self) -> None:
        """Tensorboard on rank 0; a resumed run purges what was logged after its checkpoint."""
        if self.is_main and self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            purge = self.step + 1 if self.step else None
            self.writer = SummaryWriter(str(self.output / "tensorboard"), purge_step=purge)

    @property
    def is_main(self) -> bool:
        return self.dist.rank == 0

    @property
    def checkpoints(self) -> Path:
        return self.output / "checkpoints"

    # -- state ---------------------------------------------------------------------------------------------------
    def rank_state(self) -> dict:
        state = {"step": self.step, "rng": rng_state(self.generator), "cursor": vars(self.data.cursor).copy(),
                 "world_size": self.dist.world_size, "num_workers": self.config.data.num_workers}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def resume(self, folder: Path | None = None) -> bool:
        state = load_checkpoint(self.engine, folder or self.checkpoints, self.dist.rank, self.dist.world_size)
        if state is None:
            return False
        saved = (state.get("world_size", self.dist.world_size), state.get("num_workers", self.config.data.num_workers))
        if saved != (self.dist.world_size, self.config.data.num_workers):
            raise ValueError(f"the checkpoint was written by {saved[0]} rank(s) with {saved[1]} loader worker(s) each; "
                             f"this run has {self.dist.world_size} and {self.config.data.num_workers}: data cursors "
                             "and EMA shards would not line up")
        self.step = state["step"]
        set_rng_state(state["rng"], self.generator)
        self.data.cursor = Cursor(**state["cursor"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        return True

    def save(self) -> Path:
        folder = save_checkpoint(self.engine, self.checkpoints, self.step, self.dist.rank, self.rank_state(),
                                 self.config.train.keep_checkpoints)
        if self.on_checkpoint is not None:
            self.on_checkpoint(folder, {"step": self.step})
        return folder

    # -- one step ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def prepare(self, batch: dict) -> StepInputs:
        """Encode a loader batch and draw everything random of its step (mode, reference noise, dropouts,
        timesteps, noise) from the rank's generator."""
        cfg = self.config.train
        encoded = self.encoder(batch, self.generator)
        if self._wants_first_frame:
            self.validation_image, self._wants_first_frame = self._first_frame(batch, encoded.latents), False
        return step_inputs(self.parts.scheduler, encoded.latents, encoded.text, encoded.conditioning, batch["motion"],
                           self.parts.text.empty, self.generator, cfg.caption_dropout, cfg.motion_dropout)

    def micro_step(self, batch: dict) -> tuple[torch.Tensor, int, int]:
        """Forward + backward of one micro-batch and DeepSpeed's step (which applies the optimizer at the
        accumulation boundary). Returns (detached loss, samples, tokens)."""
        x = self.prepare(batch)
        pred = self.engine(x.model_input.to(self.dtype), x.text.to(self.dtype), x.timesteps, motion=x.motion,
                           return_dict=False)[0]
        loss = F.mse_loss(pred.float(), x.target.float())
        self.engine.backward(loss)
        self.engine.step()
        b, frames, _, h, w = x.latents.shape
        video_tokens = frames * h * w // 4
        return loss.detach(), b, b * (video_tokens + x.text.shape[1])

    def train_step(self, batches: list[dict]) -> StepResult:
        """One optimizer step over `gradient_accumulation` micro-batches; EMA after the step."""
        start = time.perf_counter()
        lr = self.engine.get_lr()[0]  # the scheduler steps with the optimizer: read it before
        results = [self.micro_step(batch) for batch in batches]
        if self.ema is not None and self.engine.was_step_applied():
            self.ema.update()
        grad_norm = self.engine.get_global_grad_norm()
        loss = torch.stack([r[0] for r in results]).mean()
        if self.dist.world_size > 1:  # report the mean over ranks
            torch.distributed.all_reduce(loss, op=torch.distributed.ReduceOp.AVG)
        return StepResult(self.step + 1, loss.item(), lr,
                          float(grad_norm) if grad_norm is not None else None, time.perf_counter() - start,
                          sum(r[1] for r in results), sum(r[2] for r in results))

    # -- loop ----------------------------------------------------------------------------------------------------
    def fit(self, max_steps: int | None = None, progress: bool = True) -> RunSummary:
        """Optimizer steps up to `max_steps`; checkpoints only fall between steps, never inside an accumulation."""
        cfg = self.config.train
        max_steps = max_steps or cfg.max_steps
        summary = RunSummary(resumed_from=self.step, output=str(self.output))
        self.open_writer()
        bar = tqdm(total=max_steps, initial=self.step, desc="train", disable=not (progress and self.is_main))
        self.engine.train()
        pending: list[dict] = []
        epoch_batches = self.config.data.batches_per_epoch
        while self.step < max_steps:
            whole_epoch, trainable = not any(self.data.cursor.consumed), False
            for batch in iterate_epoch(self.data, self.config.data.num_workers, epoch_batches):
                trainable = True
                pending.append(batch)
                if len(pending) < cfg.gradient_accumulation:
                    continue
                result, pending = self.train_step(pending), []
                self.step, self.last_loss = result.step, result.loss
                summary.steps.append(result)
                self.log(result)
                bar.update(1)
                bar.set_postfix(loss=f"{result.loss:.4f}")
                if self.step % cfg.checkpoint_every == 0 or self.step == max_steps:
                    self.save()
                if cfg.validation.every and self.step % cfg.validation.every == 0:
                    self.validate()
                    self.barrier()
                if self.step >= max_steps:
                    break
            else:
                if whole_epoch and not trainable:
                    raise EmptyEpochError(self._empty_epoch_message(epoch_batches))
                self.data.cursor.next_epoch()
        bar.close()
        if cfg.validation.at_end and summary.steps:
            self.validate()
            self.barrier()
        exported = self.export()
        summary.pipeline = str(exported) if exported else None
        if self.writer is not None:
            self.writer.flush()
        return summary

    def _empty_epoch_message(self, batches: int) -> str:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.data.skipped.items()))
        return (f"rank {self.dist.rank}: a whole loader epoch (up to {batches} batches) gave no trainable batch "
                f"(skipped clips: {skipped or 'see the loader warnings'}); check --data and data.precomputed")

    def _peak_flops(self) -> float | None:
        if self.config.train.peak_tflops:
            return self.config.train.peak_tflops * 1e12
        if self.dist.device.type == "cuda":
            name = torch.cuda.get_device_name(self.dist.device)
            for key, value in PEAK_BF16_TFLOPS.items():
                if key in name:
                    return value * 1e12
        return None

    def log(self, r: StepResult) -> None:
        if self.writer is None or (r.step % self.config.train.log_every and r.step != 1):
            return
        world = self.dist.world_size
        self.writer.add_scalar("train/loss", r.loss, r.step)
        self.writer.add_scalar("train/lr", r.lr, r.step)
        if r.grad_norm is not None and math.isfinite(r.grad_norm):
            self.writer.add_scalar("train/grad_norm", r.grad_norm, r.step)
        self.writer.add_scalar("perf/samples_per_s", r.samples * world / r.seconds, r.step)
        self.writer.add_scalar("perf/tokens_per_s", r.tokens * world / r.seconds, r.step)
        if self.peak_flops:
            flops = r.samples * training_flops(self.engine.module, r.tokens / r.samples)
            self.writer.add_scalar("perf/mfu", flops / r.seconds / self.peak_flops, r.step)

    # -- samples and export --------------------------------------------------------------------------------------
    def pipeline(self) -> DropletVideoPipeline:
        return DropletVideoPipeline(self.engine.module, self.parts.vae, self.parts.text, self.parts.scheduler_copy())

    # -- validation ----------------------------------------------------------------------------------------------
    def _validation_modes(self) -> tuple[str, ...]:
        """The modes being trained: text-to-video, and image-to-video for the inpaint layout (by the share)."""
        if not self.parts.inpaint:
            return ("text-to-video",)
        share = self.config.train.text_to_video_share
        return tuple(m for m, on in (("text-to-video", share > 0), ("image-to-video", share < 1)) if on)

    @property
    def _validation_image_path(self) -> Path:
        return self.output / "samples" / "validation-image.png"

    def _configured_validation_image(self) -> torch.Tensor | None:
        """`train.validation.image`, or the one an earlier part of this run kept; None: take the first clip's."""
        from PIL import Image

        configured = self.config.train.validation.image
        path = Path(configured) if configured else self._validation_image_path
        if not path.exists():
            if configured:
                raise ValueError(f"train.validation.image {path}: no such file")
            return None
        try:
            return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy())
        except OSError as exc:
            raise ValueError(f"train.validation.image {path}: {exc}") from None

    def _first_frame(self, batch: dict, latents: torch.Tensor) -> torch.Tensor:
        """The first frame of the batch's first clip (decoded from its latents for precomputed shards), kept."""
        from PIL import Image

        if "video" in batch:
            frame = batch["video"][0, 0].cpu()
        else:
            frame = decode_video(self.parts.vae, latents[:1, :1])[0, 0].cpu()
        self._validation_image_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame.numpy()).save(self._validation_image_path)
        return frame

    @torch.no_grad()
    def validate(self) -> list[Path]:
        """One sample per prompt and mode being trained: RUN/samples/step-NNNNNNNN-{i}-{t2v|i2v}.mp4."""
        if not self.is_main:
            return []
        v = self.config.train.validation
        pipe = self.pipeline()
        written = []
        self.engine.module.eval()
        for mode in self.validation_modes:
            image = self.validation_image if mode == "image-to-video" else None
            if mode == "image-to-video" and image is None:
                log.warning("no validation image yet: image-to-video validation skipped")
                continue
            tag = "i2v" if image is not None else "t2v"
            for i, prompt in enumerate(v.prompts):
                settings: SampleSettings = pipe.default_settings(num_frames=v.frames, height=v.height,
                                                                 width=v.width, steps=v.steps,
                                                                 guidance_scale=v.guidance_scale, motion=v.motion,
                                                                 seed=i)
                video = pipe(prompt, image=image, settings=settings, progress=False)
                path = write_mp4(video, self.output / "samples" / f"step-{self.step:08d}-{i}-{tag}.mp4",
                                 max(v.motion, 1.0))
                if self.writer is not None:
                    self.writer.add_images(f"samples/{tag}/{i}", video[[0, -1]].permute(0, 3, 1, 2), self.step)
                written.append(path)
        self.engine.module.train()
        return written

    def export(self, folder: Path | None = None) -> Path | None:
        """A diffusers-format pipeline folder next to the checkpoints (EMA weights when EMA is on); collective
        when the EMA is sharded, written by rank 0."""
        folder = Path(folder or self.output / "pipeline")
        ema_state = self.ema.full_state_dict() if self.ema is not None else None
        if not self.is_main:
            return None
        pipe = self.pipeline()
        if ema_state is not None:
            original = {n: p.detach().clone() for n, p in self.engine.module.named_parameters() if n in ema_state}
            self.engine.module.load_state_dict(ema_state, strict=False)
        pipe.save_pretrained(folder)
        if ema_state is not None:
            self.engine.module.load_state_dict(original, strict=False)
        (folder / "training.json").write_text(json.dumps({"step": self.step, "ema": ema_state is not None}) + "\n")
        log.info("exported the pipeline to %s", folder)
        return folder
