"""`droplet caption OUT`: caption every kept clip that has no caption yet (or whose last try failed), then
shard. Rows are committed in batch files as they are made (`OUT/_work/captions/`), so a killed run loses at
most a batch; `OUT/captions.parquet` is derived from them (the newest row per clip_id wins)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from captioning.config import CaptionConfig
from runtime.atomic import write_parquet_atomic
from runtime.faults import maybe_fail
from runtime.lock import lock_config
from runtime.out_lock import hold_folder_lock
from shards.captions import CAPTION_SCHEMA, latest_captions
from shards.layout import OutLayout

log = logging.getLogger("droplet.caption")

BATCH = {"grounded": 2048, "openai": 64, "vllm": 1024, "transformers": 64}


@dataclass
class CaptionSummary:
    clips: int = 0
    todo: int = 0
    captioned: int = 0
    qa_failed: int = 0
    repaired: int = 0  # of `captioned`: passed QA once their camera sentences were the grounded writer's
    errors: int = 0
    qa_reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    shards: dict = field(default_factory=dict)


def _fingerprint(cfg: CaptionConfig) -> dict:
    """What shapes the captions: backend, prompt inputs, QA and the model (not timeouts or concurrency)."""
    data = {"backend": cfg.backend, "frames": cfg.frames.model_dump(), "qa": cfg.qa.model_dump()}
    if cfg.backend == "grounded":
        data["grounded"] = cfg.grounded.model_dump()
    elif cfg.backend == "openai":
        data["model"] = cfg.openai.model
    elif cfg.backend == "vllm":
        data["model"] = {"path": cfg.vllm.model_path, "family": cfg.vllm.family}
    elif cfg.backend == "transformers":
        t = cfg.transformers
        data["model"] = {"path": t.model_path, "media": t.media, "max_new_tokens": t.max_new_tokens, "seed": t.seed}
    return data


def lock_caption_config(out: Path, cfg: CaptionConfig) -> None:
    defaults = _fingerprint(CaptionConfig(backend=cfg.backend))
    lock_config(OutLayout(out).caption_config, _fingerprint(cfg), what="captioned", defaults=defaults)


def batch_files(out: Path) -> list[Path]:
    return sorted(OutLayout(out).caption_batches.glob("captions-*.parquet"))


def read_caption_rows(out: Path) -> list[dict]:
    """Every caption row ever committed, oldest first (`repaired` false in rows made before that column)."""
    rows = [row for path in batch_files(out) for row in pq.read_table(path).to_pylist()]
    return [{**row, "repaired": row.get("repaired") is True} for row in rows]


def _commit_batch(out: Path, rows: list[dict]) -> None:
    existing = batch_files(out)
    seq = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
    path = OutLayout(out).caption_batches / f"captions-{seq:07d}.parquet"
    write_parquet_atomic(path, pa.Table.from_pylist(rows, schema=CAPTION_SCHEMA))


def rebuild_captions_parquet(out: Path) -> int:
    rows = read_caption_rows(out)
    write_parquet_atomic(OutLayout(out).captions_parquet, pa.Table.from_pylist(rows, schema=CAPTION_SCHEMA))
    return len(rows)


def make_backend(cfg: CaptionConfig, out: Path, address: str | None):
    from captioning.backends import GroundedBackend, OpenAIBackend, TransformersBackend, VLLMBackend
    from runtime.ray_connect import connect_ray, ray_target

    if cfg.backend == "grounded":
        return GroundedBackend(cfg)
    if cfg.backend == "openai":
        return OpenAIBackend(cfg, OutLayout(out).clips_dir)
    if cfg.backend == "transformers":
        use_ray = cfg.transformers.ray or ray_target(address) is not None
        if use_ray:
            connect_ray(address)
        return TransformersBackend(cfg, OutLayout(out).clips_dir, use_ray=use_ray)
    from captioning.vllm_backend import load_runtime_env

    connect_ray(address)
    return VLLMBackend(cfg, OutLayout(out).clips_dir, load_runtime_env(cfg.vllm.runtime_env))


def run_caption(out_dir: str, cfg: CaptionConfig, address: str | None = None, shard: bool = True) -> CaptionSummary:
    """Caption what needs it, commit as it goes, rebuild captions.parquet, then shard, holding
    `OUT/_work/caption.lock` throughout (another caption on `out` raises `FolderBusy`). The backend's local paths
    are checked first (`runtime.paths.MissingPath`, a ValueError): before Ray starts or OUT is locked."""
    from runtime.paths import require_local_paths
    from runtime.ray_connect import ray_target

    require_local_paths(**cfg.local_paths(on_cluster=ray_target(address) is not None))
    started = time.time()
    out = Path(out_dir)
    clips_path = OutLayout(out).clips_parquet
    if not clips_path.exists():
        raise ValueError(f"{out} has no clips.parquet: run `droplet curate INPUT {out}` first")
    with hold_folder_lock(OutLayout(out).caption_lock, out, "caption"):
        return _caption(out, cfg, address, shard, started)


def _caption(out: Path, cfg: CaptionConfig, address: str | None, shard: bool, started: float) -> CaptionSummary:
    lock_caption_config(out, cfg)
    kept = [row for row in pq.read_table(OutLayout(out).clips_parquet).to_pylist() if row["keep"]]
    latest = latest_captions(read_caption_rows(out))
    todo = [c for c in kept if c["clip_id"] not in latest or latest[c["clip_id"]]["error"] is not None]
    summary = CaptionSummary(clips=len(kept), todo=len(todo))
    retried = sum(1 for c in todo if c["clip_id"] in latest)
    log.info("%d kept clips; %d captioned already (skipped), %d to caption (%d retried after an error)",
             len(kept), len(kept) - len(todo), len(todo), retried)
    if todo:
        _caption_all(out, todo, make_backend(cfg, out, address), cfg, cfg.commit_every or BATCH[cfg.backend],
                     summary)
    rebuild_captions_parquet(out)
    if shard:
        summary.shards = run_shard(out, cfg)
    summary.seconds = time.time() - started
    return summary


def _caption_all(out: Path, todo: list[dict], backend, cfg: CaptionConfig, size: int,  # noqa: ANN001
                 summary: CaptionSummary, progress: bool = True) -> None:
    """Caption `todo` in batches of `size`, committing each batch; count what came out in `summary`."""
    from captioning.runner import caption_batch

    with tqdm(total=len(todo), desc=f"caption ({backend.name})", unit="clip", disable=not progress) as bar:
        for start in range(0, len(todo), size):
            rows = caption_batch(todo[start:start + size], backend, cfg)
            _commit_batch(out, rows)
            maybe_fail("caption")  # after a committed batch
            for row in rows:
                if row["error"]:
                    summary.errors += 1
                    log.warning("caption failed for %s: %s", row["clip_id"], row["error"])
                elif not row["qa_passed"]:
                    summary.qa_failed += 1
                    key = (row["qa_reason"] or "").split(":")[0]
                    summary.qa_reasons[key] = summary.qa_reasons.get(key, 0) + 1
                    log.warning("caption of %s failed QA: %s", row["clip_id"], row["qa_reason"])
                else:
                    summary.captioned += 1
                    summary.repaired += bool(row.get("repaired"))
            bar.update(len(rows))


class ImportedCaptions:
    """A backend that answers with captions that came with imported metadata (`droplet import-droplet
    --caption-column`): no prompt, so no prompt version, and nothing to retry."""

    name = "imported"
    prompt_version = None
    retries_with_feedback = False

    def __init__(self, model: str, texts: dict[str, str]):
        self.model, self.texts = model, texts

    def generate(self, requests: list[tuple[dict, str]]) -> list[tuple[str | None, str | None]]:
        return [(self.texts[clip["clip_id"]], None) for clip, _ in requests]


def import_captions(out_dir: str | Path, texts: dict[str, str], model: str, cfg: CaptionConfig,
                    progress: bool = True) -> CaptionSummary:
    """Caption rows from imported captions (clip_id -> text) for the kept clips that have none yet (or whose
    newest row is an error), checked by QA like any backend's, committed and derived like `run_caption`'s."""
    out = Path(out_dir)
    with hold_folder_lock(OutLayout(out).caption_lock, out, "import-droplet"):  # the lock caption takes
        return _import_captions(out, texts, model, cfg, progress)


def _import_captions(out: Path, texts: dict[str, str], model: str, cfg: CaptionConfig,
                     progress: bool) -> CaptionSummary:
    started = time.time()
    kept = [row for row in pq.read_table(OutLayout(out).clips_parquet).to_pylist() if row["keep"]]
    latest = latest_captions(read_caption_rows(out))
    todo = [c for c in kept if c["clip_id"] in texts
            and (c["clip_id"] not in latest or latest[c["clip_id"]]["error"] is not None)]
    summary = CaptionSummary(clips=len(kept), todo=len(todo))
    log.info("%d kept clips; %d with an imported caption, %d of them to commit", len(kept),
             sum(1 for c in kept if c["clip_id"] in texts), len(todo))
    if todo:
        _caption_all(out, todo, ImportedCaptions(model, texts), cfg, BATCH["grounded"], summary, progress)
    if batch_files(out):
        rebuild_captions_parquet(out)
    summary.seconds = time.time() - started
    return summary


def run_shard(out: str | Path, cfg: CaptionConfig) -> dict:
    """Shard what is captioned and in no shard yet (append-only)."""
    from shards import write_shards

    out = Path(out)
    captions = OutLayout(out).captions_parquet
    if not captions.exists() and batch_files(out):
        rebuild_captions_parquet(out)
    if not captions.exists():
        raise ValueError(f"{out} has no captions: run `droplet caption {out}` first")
    return write_shards(out, target_bytes=cfg.shards.target_bytes, qa_passed_only=cfg.shards.qa_passed_only)
