"""`droplet caption OUT`: caption every kept clip that has no caption yet (or whose last try failed), then
shard. Rows are committed in batch files as they are made (`OUT/_work/captions/`), so a killed run loses at
most a batch; `OUT/captions.parquet` is derived from them (the newest row per clip_id wins)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from tqdm import tqdm

from captioning.config import CaptionConfig

log = logging.getLogger("droplet.caption")

CAPTION_SCHEMA = pa.schema([
    ("clip_id", pa.string()), ("caption", pa.string()), ("backend", pa.string()), ("model", pa.string()),
    ("prompt_version", pa.string()), ("words", pa.int64()), ("qa_passed", pa.bool_()), ("qa_reason", pa.string()),
    ("error", pa.string()), ("created_at", pa.float64()),
])
BATCH = {"grounded": 2048, "openai": 64, "vllm": 1024}


class CaptionConfigMismatch(Exception):
    """OUT was captioned with another config."""


@dataclass
class CaptionSummary:
    clips: int = 0
    todo: int = 0
    captioned: int = 0
    qa_failed: int = 0
    errors: int = 0
    qa_reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    shards: dict = field(default_factory=dict)


def _fingerprint(cfg: CaptionConfig) -> dict:
    """What shapes the captions: backend, prompt inputs, QA and the model (not timeouts or concurrency)."""
    data = {"backend": cfg.backend, "frames": cfg.frames.model_dump(), "qa": cfg.qa.model_dump()}
    if cfg.backend == "openai":
        data["model"] = cfg.openai.model
    elif cfg.backend == "vllm":
        data["model"] = {"path": cfg.vllm.model_path, "family": cfg.vllm.family}
    return data


def lock_caption_config(out: Path, cfg: CaptionConfig) -> None:
    path = out / "caption_config.yaml"
    mine = _fingerprint(cfg)
    if path.exists():
        theirs = yaml.safe_load(path.read_text()) or {}
        if theirs != mine:
            changed = sorted(k for k in set(theirs) | set(mine) if theirs.get(k) != mine.get(k))
            raise CaptionConfigMismatch(f"{out} was captioned with a different config (changed: {', '.join(changed)}); "
                                        "use a new OUT or the same config")
        return
    path.write_text(yaml.safe_dump(mine, sort_keys=True))


def batch_files(out: Path) -> list[Path]:
    return sorted((out / "_work" / "captions").glob("captions-*.parquet"))


def read_caption_rows(out: Path) -> list[dict]:
    """Every caption row ever committed, oldest first."""
    return [row for path in batch_files(out) for row in pq.read_table(path).to_pylist()]


def latest_by_clip(rows: list[dict]) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for row in rows:
        latest[row["clip_id"]] = row
    return latest


def _commit_batch(out: Path, rows: list[dict]) -> None:
    folder = out / "_work" / "captions"
    folder.mkdir(parents=True, exist_ok=True)
    existing = batch_files(out)
    seq = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
    path = folder / f"captions-{seq:07d}.parquet"
    tmp = folder / f".{path.name}.tmp-{os.getpid()}"
    pq.write_table(pa.Table.from_pylist(rows, schema=CAPTION_SCHEMA), tmp)
    os.replace(tmp, path)


def rebuild_captions_parquet(out: Path) -> int:
    rows = read_caption_rows(out)
    tmp = out / ".captions.parquet.tmp"
    pq.write_table(pa.Table.from_pylist(rows, schema=CAPTION_SCHEMA), tmp)
    os.replace(tmp, out / "captions.parquet")
    return len(rows)


def make_backend(cfg: CaptionConfig, out: Path, address: str | None):
    from captioning.backends import GroundedBackend, OpenAIBackend, VLLMBackend

    if cfg.backend == "grounded":
        return GroundedBackend(cfg)
    if cfg.backend == "openai":
        return OpenAIBackend(cfg, out / "clips")
    import ray

    from captioning.vllm_backend import load_runtime_env

    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or "local", logging_level=logging.WARNING)
    return VLLMBackend(cfg, out / "clips", load_runtime_env(cfg.vllm.runtime_env))


def run_caption(out_dir: str, cfg: CaptionConfig, address: str | None = None, shard: bool = True) -> CaptionSummary:
    """Caption what needs it, commit as it goes, rebuild captions.parquet, then shard."""
    from captioning.runner import caption_batch

    started = time.time()
    out = Path(out_dir)
    clips_path = out / "clips.parquet"
    if not clips_path.exists():
        raise ValueError(f"{out} has no clips.parquet: run `droplet curate INPUT {out}` first")
    lock_caption_config(out, cfg)
    kept = [row for row in pq.read_table(clips_path).to_pylist() if row["keep"]]
    latest = latest_by_clip(read_caption_rows(out))
    todo = [c for c in kept if c["clip_id"] not in latest or latest[c["clip_id"]]["error"] is not None]
    summary = CaptionSummary(clips=len(kept), todo=len(todo))
    retried = sum(1 for c in todo if c["clip_id"] in latest)
    log.info("%d kept clips; %d captioned already (skipped), %d to caption (%d retried after an error)",
             len(kept), len(kept) - len(todo), len(todo), retried)
    if todo:
        backend = make_backend(cfg, out, address)
        size = BATCH[cfg.backend]
        with tqdm(total=len(todo), desc=f"caption ({cfg.backend})", unit="clip") as bar:
            for start in range(0, len(todo), size):
                rows = caption_batch(todo[start:start + size], backend, cfg)
                _commit_batch(out, rows)
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
                bar.update(len(rows))
    rebuild_captions_parquet(out)
    if shard:
        summary.shards = run_shard(out, cfg)
    summary.seconds = time.time() - started
    return summary


def run_shard(out: str | Path, cfg: CaptionConfig) -> dict:
    """Shard what is captioned and in no shard yet (append-only)."""
    from shards import write_shards

    out = Path(out)
    if not (out / "captions.parquet").exists() and batch_files(out):
        rebuild_captions_parquet(out)
    if not (out / "captions.parquet").exists():
        raise ValueError(f"{out} has no captions: run `droplet caption {out}` first")
    return write_shards(out, target_bytes=cfg.shards.target_bytes, qa_passed_only=cfg.shards.qa_passed_only)
