"""`droplet train`: the shared setup (`train.setup`), check the run folder, train, export."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from runtime.lock import changed_keys

from .config import TrainConfig
from .setup import RunError, plan_run

log = logging.getLogger(__name__)

# Fields that may change between a run and its resume; anything else changed is refused. (The loader's worker
# count is not among them: the data cursor counts batches per worker, so exact resume needs the same count.)
RESUMABLE_CHANGES = ("train.max_steps", "train.validation", "train.log_every", "train.checkpoint_every",
                     "train.keep_checkpoints", "train.peak_tflops", "data.urls", "output")


def check_run_folder(config: TrainConfig, output: Path, resume: bool) -> None:
    saved = output / "train_config.json"
    has_checkpoints = any((output / "checkpoints").glob("step-*"))
    if has_checkpoints and not resume:
        raise RunError(f"{output} already has checkpoints: pass --resume to continue it, or another --output")
    if resume and saved.exists():
        changed = changed_keys(json.loads(saved.read_text()), config.model_dump(mode="json"), RESUMABLE_CHANGES)
        if changed:
            raise RunError(f"{output} was started with a different config ({', '.join(changed)}); "
                           "use another --output")


def recipe_line(config: TrainConfig, inpaint: bool) -> str:
    """The text-to-video share and reference noise a run trains with, in words (logged at the start)."""
    t = config.train
    if not inpaint:
        return "text-to-video only (16-channel layout)"
    noise = t.reference_noise
    sigma = f"sigma = exp(N({noise.log_mean:g}, {noise.log_std:g})) per sample" if noise.enabled else "none"
    return (f"{t.text_to_video_share:.0%} text-to-video, the rest image-to-video; reference noise: {sigma}"
            + (" (precomputed: as the shards hold it)" if config.data.precomputed else ""))


def default_extensions_dir() -> None:
    """Keep DeepSpeed's JIT-built ops (the CPU shm comm op) inside the environment, where `make` builds them."""
    if not os.environ.get("TORCH_EXTENSIONS_DIR"):
        os.environ["TORCH_EXTENSIONS_DIR"] = str(Path(sys.prefix) / "torch_extensions")


def run_training(config: TrainConfig, data: str | list[str] | None, resume: bool = False,
                 max_steps: int | None = None, progress: bool = True, output: str | None = None):
    """Train with the effective config of `train.setup.plan_run` (`output` overrides the config's)."""
    default_extensions_dir()
    from .trainer import Trainer

    plan = plan_run(config, data, output)
    config, output = plan.config, Path(plan.config.output)
    if plan.data.kind == "latents":
        log.info("training on precomputed latent shards (data.precomputed)")
    check_run_folder(config, output, resume)
    trainer = Trainer(config, plan.data, output)
    if trainer.is_main:
        (output / "train_config.json").write_text(json.dumps(config.model_dump(mode="json"), indent=2) + "\n")
    if resume and not trainer.resume():
        log.warning("--resume: %s has no checkpoint yet, starting from step 0", output)
    if trainer.is_main:
        log.info("training on %d shard(s), output %s, steps %d..%d", len(plan.data.urls), output, trainer.step + 1,
                 max_steps or config.train.max_steps)
        log.info("captions: %d T5 tokens; %s", trainer.parts.text.max_length,
                 recipe_line(config, trainer.parts.inpaint))
    return trainer.fit(max_steps=max_steps, progress=progress)
