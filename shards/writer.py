"""WebDataset shard writer (data contract: Shards): append-only, reproducible, resumable after a kill.

`write_shards(OUT)` writes the captioned (by default QA-passed) kept clips that are in no shard yet, in
`clip_id` order, into `OUT/shards/shard-%06d.tar`, numbering on from the existing shards. A sample is
`<clip_id>.json` (the clip's clips.parquet row plus caption metadata), `<clip_id>.mp4`, `<clip_id>.txt`.
Each tar is written as `shard-NNNNNN.tar.tmp` and renamed when complete; index.parquet and manifest.json follow.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from shards.captions import is_captioned, latest_captions
from shards.index import IndexState, ShardEntry, index_row, load_state, save_state, shard_name
from shards.layout import OutLayout
from shards.tario import TarWriter, closed_size, sample_bytes

CAPTION_METADATA = ("backend", "model", "prompt_version", "words", "qa_passed", "qa_reason", "repaired")
TEMP_SUFFIX = ".tar.tmp"
LOCK_NAME = ".lock"
SKIP_REASONS = ("not_captioned", "qa_failed", "missing_file")


class ShardsBusy(RuntimeError):
    """Another shard writer holds the shards folder (one line)."""


def plain(value):
    """`value` as plain JSON data: NaN/inf -> None, numpy scalars/arrays -> Python, dates -> ISO strings."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return plain(float(value))
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "tolist"):  # numpy scalar or array
        return plain(value.tolist())
    raise TypeError(f"cannot store {type(value).__name__} in sample JSON")


def sample_json(clip: dict, caption: dict) -> bytes:
    """The `.json` member: clip columns + caption metadata; sorted keys, compact, UTF-8, no NaN. `repaired` is
    false for a caption row made before that column existed."""
    meta = {**clip, **{k: caption.get(k) for k in CAPTION_METADATA}}
    meta["repaired"] = caption.get("repaired") is True
    return json.dumps(plain(meta), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


@dataclass
class Candidate:
    clip: dict
    caption: dict
    path: Path
    size: int


def select(out: Path, sharded: set[str], qa_passed_only: bool) -> tuple[list[Candidate], dict[str, int]]:
    """Kept clips in no shard yet that can be written, in clip_id order, and counts of the others."""
    layout = OutLayout(out)
    clips_path = layout.clips_parquet
    if not clips_path.exists():
        raise FileNotFoundError(f"{clips_path} not found: run `droplet curate` first")
    clips = {c["clip_id"]: c for c in pq.read_table(clips_path).to_pylist()}  # a repeated id: the last row
    captions_path = layout.captions_parquet
    captions = latest_captions(pq.read_table(captions_path)) if captions_path.exists() else {}
    counts = dict.fromkeys(("not_kept", "already_sharded", *SKIP_REASONS), 0)
    chosen = []
    for cid in sorted(clips):
        clip = clips[cid]
        caption = captions.get(cid)
        if not clip.get("keep"):
            counts["not_kept"] += 1
        elif cid in sharded:
            counts["already_sharded"] += 1
        elif not is_captioned(caption):
            counts["not_captioned"] += 1
        elif qa_passed_only and caption.get("qa_passed") is not True:
            counts["qa_failed"] += 1
        else:
            if "." in cid or "/" in cid:
                raise ValueError(f"clip_id {cid!r} cannot be a WebDataset key (no '.' or '/')")
            path = layout.clip_file(cid)
            try:
                size = path.stat().st_size
            except OSError:
                counts["missing_file"] += 1
                continue
            chosen.append(Candidate(clip, caption, path, size))
    return chosen, counts


@contextmanager
def _locked(shards_dir: Path) -> Iterator[None]:
    """One writer per shards folder (an flock; the kernel drops it when the process dies)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(shards_dir / LOCK_NAME, "a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ShardsBusy(f"another shard writer is running on {shards_dir} (it holds {shards_dir / LOCK_NAME}); "
                             "wait for it to end") from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Shard:
    """One shard being written: its temp tar and the index rows of its samples."""

    def __init__(self, shards_dir: Path, number: int, fsync: bool) -> None:
        self.name = shard_name(number)
        self.final = shards_dir / self.name
        self.tar = TarWriter(shards_dir / (self.name[: -len(".tar")] + TEMP_SUFFIX), durable=fsync)
        self.rows: list[dict] = []

    def finish(self, state: IndexState, fsync: bool) -> ShardEntry:
        size, sha = self.tar.close(fsync)
        os.replace(self.tar.path, self.final)
        if fsync:
            _fsync_dir(self.final.parent)
        entry = ShardEntry(self.name, len(self.rows), size, sha)
        state.add(entry, self.rows)
        save_state(self.final.parent, state, fsync)
        return entry


def write_shards(out_dir: str | os.PathLike, *, target_bytes: int = 1_000_000_000, qa_passed_only: bool = True,
                 fsync: bool = True) -> dict:
    """Shards what is captioned and in no shard yet; returns a summary (new shards, samples, bytes, skips).

    A shard is closed when the next sample would take it past `target_bytes` (it always holds at least one
    sample). `fsync` makes each tar durable before it is renamed (turn off only for throwaway output).
    """
    if target_bytes <= 0:
        raise ValueError("target_bytes must be positive")
    out = Path(out_dir)
    shards_dir = OutLayout(out).shards_dir
    shards_dir.mkdir(parents=True, exist_ok=True)
    with _locked(shards_dir):
        removed = sorted(p.name for p in shards_dir.glob("*.tmp"))  # a killed run's tar, index or manifest
        for name in removed:
            (shards_dir / name).unlink()
        state = load_state(shards_dir)
        if state.changed:
            save_state(shards_dir, state, fsync)
        candidates, counts = select(out, state.clip_ids(), qa_passed_only)
        written = _write(candidates, shards_dir, state, target_bytes, fsync)
        return {
            "shards": [e.name for e in written],
            "new_shards": len(written),
            "samples": sum(e.samples for e in written),
            "bytes": sum(e.bytes for e in written),
            "skipped": {k: counts[k] for k in SKIP_REASONS},
            "not_kept": counts["not_kept"],
            "already_sharded": counts["already_sharded"],
            "removed_temp": removed,
            "recovered_shards": state.recovered,
            "total_shards": len(state.shards),
            "total_samples": sum(e.samples for e in state.shards),
        }


def _write(candidates: list[Candidate], shards_dir: Path, state: IndexState, target_bytes: int,
           fsync: bool) -> list[ShardEntry]:
    written: list[ShardEntry] = []
    number = state.next_number()
    shard: _Shard | None = None
    try:
        for cand in candidates:
            cid = cand.clip["clip_id"]
            meta_bytes = sample_json(cand.clip, cand.caption)
            text = cand.caption["caption"].encode("utf-8")
            need = sample_bytes([(f"{cid}.json", len(meta_bytes)), (f"{cid}.mp4", cand.size),
                                 (f"{cid}.txt", len(text))])
            if shard is not None and closed_size(shard.tar.offset + need) > target_bytes:
                done, shard = shard, None
                written.append(done.finish(state, fsync))
            if shard is None:
                shard = _Shard(shards_dir, number, fsync)
                number += 1
            offsets = {"json": (shard.tar.add_bytes(f"{cid}.json", meta_bytes), len(meta_bytes)),
                       "mp4": (shard.tar.add_file(f"{cid}.mp4", cand.path, cand.size), cand.size),
                       "txt": (shard.tar.add_bytes(f"{cid}.txt", text), len(text))}
            shard.rows.append(index_row(json.loads(meta_bytes), shard.name, offsets))
        if shard is not None:
            done, shard = shard, None
            written.append(done.finish(state, fsync))
    finally:
        if shard is not None:
            shard.tar.abort()
    return written
