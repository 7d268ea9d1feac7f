"""Checkpoints: DeepSpeed's on every rank, plus a small trainer-state file per rank.

Under ZeRO-2 only rank 0 writes the model-states file, so DeepSpeed's `client_state` would hand every rank rank 0's
state. Each rank's step, RNG states, data cursor and EMA shard therefore go into `trainer_state_rank{R}.pt`
beside DeepSpeed's files, in the same tag folder. That file holds only tensors and plain Python values (the NumPy
RNG state as a list), so it is read back with `torch.load(..., weights_only=True)`; DeepSpeed's own files are the
one pickle this project reads (`engine.load_checkpoint`), and only from the run's own checkpoint folder.
"""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


TAG_FILE = "droplet_tag"


def tag_for(step: int) -> str:
    return f"step-{step:08d}"


def rank_state_path(folder: Path, tag: str, rank: int) -> Path:
    return Path(folder) / tag / f"trainer_state_rank{rank:05d}.pt"


# what a trainer-state file written before the NumPy state became a list holds besides tensors and plain values
_LEGACY_NUMPY_GLOBALS = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, np.dtypes.UInt32DType]


def rng_state(generator: torch.Generator) -> dict:
    name, key, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (name, key.tolist(), int(pos), int(has_gauss), float(gauss)),
             "torch": torch.get_rng_state(), "generator": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, generator: torch.Generator) -> None:
    random.setstate(state["python"])
    name, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(engine, folder: Path, step: int, rank: int, state: dict, keep: int) -> Path:
    """Collective: every rank calls it. Returns the tag folder."""
    tag = tag_for(step)
    engine.save_checkpoint(str(folder), tag=tag, client_state={"step": step}, save_latest=False)
    path = rank_state_path(folder, tag, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    (path.parent / TAG_FILE).write_text(tag + "\n")  # lets a copied tag folder (Ray Train) name itself
    if dist.is_initialized():
        dist.barrier()
    if rank == 0:  # `latest` only once every rank's files are there
        tmp_latest = Path(folder) / "latest.tmp"
        tmp_latest.write_text(tag)
        tmp_latest.replace(Path(folder) / "latest")
        prune(folder, keep)
    if dist.is_initialized():
        dist.barrier()
    return Path(folder) / tag


def prune(folder: Path, keep: int) -> None:
    tags = sorted(p for p in Path(folder).glob("step-*") if p.is_dir())
    for old in tags[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def latest_tag(folder: Path) -> str | None:
    """The tag `latest` names: written by rank 0 only after every rank saved, so it is always complete."""
    latest = Path(folder) / "latest"
    if latest.exists():
        tag = latest.read_text().strip()
        if (Path(folder) / tag).is_dir():
            return tag
    return None


def restore_layout(tag_folder: Path, work: Path) -> Path:
    """A folder DeepSpeed can load from (`work/<tag>` + `work/latest`) around a copied tag folder."""
    tag = (Path(tag_folder) / TAG_FILE).read_text().strip()
    work.mkdir(parents=True, exist_ok=True)
    link = work / tag
    if not link.exists():
        link.symlink_to(Path(tag_folder).resolve(), target_is_directory=True)
    (work / "latest").write_text(tag)
    return work


def read_rank_state(path: Path) -> dict:
    """A trainer-state file, read without unpickling anything but tensors and plain values (`weights_only=True`;
    NumPy arrays allowed too, for files written when the NumPy RNG state was stored as an array)."""
    with torch.serialization.safe_globals(_LEGACY_NUMPY_GLOBALS):
        return torch.load(path, map_location="cpu", weights_only=True)


def load_checkpoint(engine, folder: Path, rank: int, world_size: int = 1) -> dict | None:
    """Load the latest checkpoint into the engine; returns this rank's trainer state (None: nothing to resume)."""
    tag = latest_tag(folder)
    if tag is None:
        return None
    ranks = len(list((Path(folder) / tag).glob("trainer_state_rank*.pt")))
    if ranks != world_size:
        raise ValueError(f"{folder}/{tag} was written by {ranks} rank(s); this run has {world_size}")
    path = rank_state_path(folder, tag, rank)
    load_path, _ = engine.load_checkpoint(str(folder), tag=tag, load_optimizer_states=True,
                                          load_lr_scheduler_states=True)
    if load_path is None:
        raise RuntimeError(f"DeepSpeed could not load {folder}/{tag}")
    log.info("resumed from %s/%s", folder, tag)
    return read_rank_state(path)
