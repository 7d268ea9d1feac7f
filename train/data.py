"""Training data: WebDataset shards -> bucketed batches of sampled frames, reproducible for exact resume.

Each DataLoader worker of each rank builds its own stream from seeds derived from (seed, rank, worker, epoch):
shards drawn by a seeded `ResampledShards(..., deterministic=True)` (or, with `resampled: false`, the rank's and
worker's slice of the shard list, split explicitly, reshuffled per epoch), a seeded shuffle buffer, then batches
built per bucket inside the worker. Bucket and frame count come from the sample's JSON alone, so a resumed run
skips the batches it already consumed without decoding them. Every batch says which worker made it; the trainer
counts consumed batches per worker (its data cursor).
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from shards.reader import safe_member_name
from shards.sampling import sample_frames

from .buckets import DEFAULT_ASPECT_RATIOS, Bucket, assign_bucket

log = logging.getLogger(__name__)


def stream_seed(seed: int, rank: int, worker: int, epoch: int) -> int:
    """One 31-bit seed per (seed, rank, worker, epoch), well mixed (a linear hash would make worker 1 of epoch 0
    collide with worker 0 of epoch 31)."""
    state = np.random.SeedSequence([int(seed), int(rank), int(worker), int(epoch)]).generate_state(1)[0]
    return int(state) & 0x7FFFFFFF


@dataclass
class StreamSpec:
    urls: list[str]
    frame_counts: list[int]
    token_budget: int
    batch_size: int
    seed: int = 0
    shuffle_buffer: int = 64
    resampled: bool = True
    aspect_ratios: tuple[float, ...] = DEFAULT_ASPECT_RATIOS
    precomputed: bool = False


@dataclass
class Cursor:
    """Where a rank's data stream stands: the epoch and the batches consumed from each worker in it."""

    epoch: int = 0
    consumed: list[int] = field(default_factory=list)

    def advance(self, worker: int) -> None:
        while len(self.consumed) <= worker:
            self.consumed.append(0)
        self.consumed[worker] += 1

    def skip_for(self, worker: int) -> int:
        return self.consumed[worker] if worker < len(self.consumed) else 0

    def next_epoch(self) -> None:
        self.epoch += 1
        self.consumed = []


def _split(items: list, index: int, count: int) -> list:
    return items[index::count] if count > 1 else items


class BucketBatcher:
    """Collects samples per bucket; hands out a bucket's batch as soon as it is full."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.pending: dict[Bucket, list] = {}

    def add(self, bucket: Bucket, item) -> list | None:
        items = self.pending.setdefault(bucket, [])
        items.append(item)
        if len(items) == self.batch_size:
            del self.pending[bucket]
            return items
        return None


class ClipBatches(IterableDataset):
    """Bucketed batches for one rank: {"video": uint8 [B, N, H, W, 3] or latents, "caption", "motion", ...}."""

    def __init__(self, spec: StreamSpec, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        if not spec.urls:
            raise ValueError("no shards to train on")
        self.spec = spec
        self.rank = rank
        self.world_size = world_size
        self.cursor = Cursor()
        self.worker_offset = 0
        self.decode_threads = 0
        self.skipped: Counter[str] = Counter()  # reason -> clips (this process's stream)

    def shard_source(self, worker: int, workers: int, seed: int):
        spec = self.spec
        if spec.resampled:
            return wds.ResampledShards(spec.urls, seed=seed, deterministic=True, worker_seed=lambda: 0)
        urls = _split(_split(list(spec.urls), self.rank, self.world_size), worker, workers)
        if not urls:
            raise ValueError(f"rank {self.rank} worker {worker} has no shard: use many more shards than "
                             f"ranks x workers ({len(spec.urls)} shards, {self.world_size} ranks, {workers} workers)")
        random.Random(seed).shuffle(urls)
        return wds.SimpleShardList(urls)

    def raw_samples(self, worker: int, workers: int) -> Iterator[dict]:
        seed = stream_seed(self.spec.seed, self.rank, worker, self.cursor.epoch)
        return iter(wds.DataPipeline(
            self.shard_source(worker, workers, seed),
            wds.tarfile_to_samples(handler=wds.warn_and_continue, select_files=self.member_wanted),
            wds.shuffle(self.spec.shuffle_buffer, initial=self.spec.shuffle_buffer, rng=random.Random(seed + 1)),
        ))

    def member_wanted(self, name: str) -> bool:
        """A tar member whose name could point outside a folder (absolute, `..`) is skipped with a line and
        never read, so no key made from it reaches a batch or a precomputed shard."""
        if safe_member_name(name):
            return True
        log.warning("skipped tar member %r: unsafe name (absolute or with ..)", name)
        self.skipped["unsafe_name"] += 1
        return False

    def bucket_of(self, meta: dict) -> Bucket | None:
        if self.spec.precomputed:
            b = meta["bucket"]
            return Bucket(b["frames"], b["height"], b["width"])
        return assign_bucket(int(meta["num_frames"]), int(meta["width"]), int(meta["height"]),
                             self.spec.frame_counts, self.spec.token_budget, self.spec.aspect_ratios)

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        worker = (worker + self.worker_offset) % workers
        self.decode_threads = 1 if info else 0
        skip = self.cursor.skip_for(worker)
        batcher = BucketBatcher(self.spec.batch_size)
        for raw in self.raw_samples(worker, workers):
            try:
                raw["json"] = meta = json.loads(raw["json"])  # parsed once, here
                bucket = self.bucket_of(meta)
            except (KeyError, ValueError, TypeError) as exc:
                log.warning("skipped %s: bad metadata (%s)", raw.get("__key__"), exc)
                self.skipped["bad_metadata"] += 1
                continue
            if bucket is None:
                log.debug("skipped %s: too_short for any configured frame count", raw.get("__key__"))
                self.skipped["too_short"] += 1
                continue
            items = batcher.add(bucket, raw)
            if items is None:
                continue
            if skip > 0:  # consumed before the resume: not decoded
                skip -= 1
                continue
            batch = self.make_batch(bucket, items)
            # a group whose clips all failed to decode still counts, so the cursor stays in step with `skip`
            if batch is None:
                batch = {"skipped": True}
            batch["worker"] = worker
            yield batch

    def make_batch(self, bucket: Bucket, items: list[dict]) -> dict | None:
        if self.spec.precomputed:
            return precomputed_batch(bucket, items)
        from .decode import DecodeError, decode_frames  # PyAV: not needed for precomputed shards

        videos, captions, motions, keys, metas = [], [], [], [], []
        for raw in items:
            meta = raw["json"]
            sample = sample_frames(int(meta["num_frames"]), float(meta["fps"]), bucket.frames)
            try:
                videos.append(decode_frames(raw["mp4"], sample.indices, float(meta["fps"]), bucket.height,
                                            bucket.width, threads=self.decode_threads))
            except (DecodeError, KeyError) as exc:
                log.warning("skipped %s: decode_error (%s)", raw.get("__key__"), exc)
                self.skipped["decode_error"] += 1
                continue
            captions.append(raw.get("txt", b"").decode("utf-8"))
            motions.append(sample.motion)
            keys.append(raw["__key__"])
            metas.append(meta)
        if not videos:
            return None
        return {"video": torch.from_numpy(np.stack(videos)), "caption": captions,
                "motion": torch.tensor(motions, dtype=torch.float32), "key": keys, "bucket": bucket.name,
                "meta": metas}


def precomputed_batch(bucket: Bucket, items: list[dict]) -> dict:
    """Batch of shards written by `droplet precompute`: latents, text features, M (and I2V reference latents).
    Each item's "json" is already parsed."""
    from safetensors.torch import load

    tensors = [load(raw["safetensors"]) for raw in items]
    metas = [raw["json"] for raw in items]
    batch = {
        "latents": torch.stack([t["latents"] for t in tensors]),
        "text": torch.stack([t["text"] for t in tensors]),
        "motion": torch.tensor([m["motion"] for m in metas], dtype=torch.float32),
        "caption": [m.get("caption", "") for m in metas],
        "key": [raw["__key__"] for raw in items],
        "bucket": bucket.name,
    }
    if all("reference" in t for t in tensors):  # [B, F', 16, h, w] clean, or [B, K, F', 16, h, w] noisy draws
        batch["reference"] = torch.stack([t["reference"] for t in tensors])
        if all("reference_sigma" in t for t in tensors):
            batch["reference_sigma"] = torch.stack([t["reference_sigma"] for t in tensors])
    return batch


def iterate_epoch(dataset: ClipBatches, num_workers: int, batches: int) -> Iterator[dict]:
    """Up to `batches` batches of the cursor's epoch (`with_epoch` on the loader, counted over all workers),
    advancing the cursor as batches are handed out.

    The loader hands out batches round robin over its workers. A resumed epoch starts the round where the
    stopped run left it: loader worker i plays logical worker (i + consumed) mod workers. Workers come from a
    forkserver: a spawned worker that exits mid-decode runs C++ static destructors and can abort.
    """
    done = sum(dataset.cursor.consumed)
    if batches - done <= 0:
        return
    dataset.worker_offset = done % max(1, num_workers)
    loader = wds.WebLoader(dataset, batch_size=None, num_workers=num_workers,
                           multiprocessing_context="forkserver" if num_workers else None)
    for batch in loader.with_epoch(batches - done):
        dataset.cursor.advance(batch["worker"])
        if not batch.get("skipped"):
            yield batch
