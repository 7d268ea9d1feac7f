"""`droplet train`: resolve the data, check the run folder, train, export."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from runtime.lock import changed_keys

from .config import TrainConfig

log = logging.getLogger(__name__)

# Fields that may change between a run and its resume; anything else changed is refused. (The loader's worker
# count is not among them: the data cursor counts batches per worker, so exact resume needs the same count.)
RESUMABLE_CHANGES = ("train.max_steps", "train.validation", "train.log_every", "train.checkpoint_every",
                     "train.keep_checkpoints", "train.peak_tflops", "data.urls", "output")


class RunError(ValueError):
    """The run folder and the request disagree (exit 2)."""


def resolve_urls(data: str | list[str] | None) -> list[str]:
    """An OUT folder or shards folder (its complete shards), shard files, brace patterns, URLs or `pipe:` commands."""
    from webdataset.shardlists import expand_urls

    from shards.reader import shard_urls

    from .precompute import precomputed_urls

    items = [data] if isinstance(data, str) else list(data or [])
    urls: list[str] = []
    for item in items:
        if "::" not in item and "{" not in item and not item.startswith("pipe:") and "://" not in item:
            path = Path(item)
            if not path.exists():
                raise RunError(f"--data {item}: no such file or folder")
            found = precomputed_urls(path) if path.is_dir() else None
            found = found if found is not None else shard_urls(path)
            if not found:
                raise RunError(f"--data {item}: no shards (run `droplet caption` or `droplet shard` first)")
            urls.extend(found)
        else:
            urls.extend(expand_urls(item))
    if not urls:
        raise RunError("no training data: pass --data OUT (or shard URLs), or set data.urls in the config")
    return urls


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


def default_extensions_dir() -> None:
    """Keep DeepSpeed's JIT-built ops (the CPU shm comm op) inside the environment, where `make` builds them."""
    if not os.environ.get("TORCH_EXTENSIONS_DIR"):
        os.environ["TORCH_EXTENSIONS_DIR"] = str(Path(sys.prefix) / "torch_extensions")


def run_training(config: TrainConfig, data: str | list[str] | None, resume: bool = False,
                 max_steps: int | None = None, progress: bool = True):
    default_extensions_dir()
    from .trainer import Trainer

    output = Path(config.output)
    urls = resolve_urls(data if data else config.data.urls)
    if not config.data.precomputed and all(Path(u).name.startswith("latents-") for u in urls):
        log.info("the data are precomputed latent shards: data.precomputed = true")
        config.data.precomputed = True
    check_run_folder(config, output, resume)
    trainer = Trainer(config, urls, output)
    if trainer.is_main:
        (output / "train_config.json").write_text(json.dumps(config.model_dump(mode="json"), indent=2) + "\n")
    if resume and not trainer.resume():
        log.warning("--resume: %s has no checkpoint yet, starting from step 0", output)
    if trainer.is_main:
        log.info("training on %d shard(s), output %s, steps %d..%d", len(urls), output, trainer.step + 1,
                 max_steps or config.train.max_steps)
    return trainer.fit(max_steps=max_steps, progress=progress)
