"""The setup `droplet train` and `python -m train.ray_launch` share: the data's URLs and kind, the effective config.

The data kind is decided here and nowhere else: "latents" when `data.precomputed` is set or every `--data` item is
a `droplet precompute` folder (its manifest) or `latents-*` shards; "pixels" (clips decoded from shards) otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .config import TrainConfig

DataKind = Literal["pixels", "latents"]


class RunError(ValueError):
    """The run folder or the data and the request disagree (exit 2)."""


@dataclass(frozen=True)
class TrainData:
    """Shard URLs and what their samples hold: clips to decode ("pixels") or precomputed latents ("latents")."""

    urls: tuple[str, ...]
    kind: DataKind


@dataclass(frozen=True)
class RunPlan:
    """The effective config (`output` applied; `data.precomputed` records the kind) and the data."""

    config: TrainConfig
    data: TrainData


def _is_plain_path(item: str) -> bool:
    return "::" not in item and "{" not in item and not item.startswith("pipe:") and "://" not in item


def resolve_item(item: str) -> tuple[list[str], DataKind]:
    """One `--data` item: an OUT folder or shards folder (its complete shards), a precompute folder, shard files,
    brace patterns, URLs or `pipe:` commands."""
    from webdataset.shardlists import expand_urls

    from shards.reader import shard_urls

    from .precompute import precomputed_urls

    if not _is_plain_path(item):
        urls = expand_urls(item)
    else:
        path = Path(item)
        if not path.exists():
            raise RunError(f"--data {item}: no such file or folder")
        latents = precomputed_urls(path) if path.is_dir() else None
        if latents is not None:
            return latents, "latents"
        urls = shard_urls(path)
        if not urls:
            raise RunError(f"--data {item}: no shards (run `droplet caption` or `droplet shard` first)")
    named_latents = bool(urls) and all(Path(u).name.startswith("latents-") for u in urls)
    return urls, "latents" if named_latents else "pixels"


def resolve_data(data: str | list[str] | None, precomputed: bool = False) -> TrainData:
    """The URLs of `data` and their kind (`precomputed`: the config says latents whatever the names)."""
    items = [data] if isinstance(data, str) else list(data or [])
    urls: list[str] = []
    kinds: set[str] = set()
    for item in items:
        found, kind = resolve_item(item)
        urls.extend(found)
        if found:
            kinds.add(kind)
    if not urls:
        raise RunError("no training data: pass --data OUT (or shard URLs), or set data.urls in the config")
    if precomputed:
        return TrainData(tuple(urls), "latents")
    if len(kinds) > 1:
        raise RunError("--data mixes precomputed latent shards and clip shards: train on one kind")
    return TrainData(tuple(urls), kinds.pop())


def resolve_urls(data: str | list[str] | None) -> list[str]:
    """Just the URLs of `data` (`droplet precompute`)."""
    return list(resolve_data(data).urls)


def plan_run(config: TrainConfig, data: str | list[str] | None = None, output: str | None = None) -> RunPlan:
    """Resolve `data` (default: the config's data.urls), decide its kind, and apply `output`."""
    resolved = resolve_data(data or config.data.urls, config.data.precomputed)
    changes = {"data.precomputed": resolved.kind == "latents"}
    if output:
        changes["output"] = str(output)
    return RunPlan(config.updated(changes), resolved)
