"""The OUT folder: its config lock, the per-source commit files a run writes as it goes (what resume
reads), and the parquet tables derived from them (data contract: OUT layout)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from curation.rows import ClipResult, Failure, Probe, SourcePlan
from runtime.atomic import read_json, write_json_atomic, write_parquet_atomic, write_text_atomic
from runtime.lock import lock_config
from shards.layout import OutLayout
from shards.schema import CLIP_SCHEMA, SCENE_SCHEMA, SOURCE_SCHEMA

log = logging.getLogger("droplet.curate")


def source_key(uri: str) -> str:
    """The file-name key of a source's work files (its URI hashed; the content hash is not known yet)."""
    return hashlib.sha1(uri.encode("utf-8")).hexdigest()[:20]


class OutStore:
    """Paths and files of one OUT folder."""

    def __init__(self, out: str | Path):
        layout = OutLayout(out)
        self.layout = layout
        self.root = layout.root
        self.work = layout.work
        self.clips_dir = layout.clips_dir
        self.config_path = layout.config
        self.sources_parquet = layout.sources_parquet
        self.scenes_parquet = layout.scenes_parquet
        self.clips_parquet = layout.clips_parquet
        self.report_path = layout.report
        self.log_path = layout.curate_log

    def prepare(self) -> None:
        """Create the folders; remove temp files a killed curate left (finished files always have their name).
        Captioning's temp files are left alone: `droplet caption` may be writing them on this OUT right now."""
        for d in (self.root, self.clips_dir, self.work / "probes", self.work / "plans", self.work / "clips",
                  self.work / "sources"):
            d.mkdir(parents=True, exist_ok=True)
        for leftover in self.leftover_temp_files():
            leftover.unlink(missing_ok=True)

    def leftover_temp_files(self) -> list[Path]:
        """Temp files of curate's own outputs (`.<name>.tmp-<pid>`), not captioning's."""
        captioning = {self.layout.caption_config.name, self.layout.captions_parquet.name}
        work = [p for p in self.work.glob("*/.*.tmp-*") if p.parent != self.layout.caption_batches]
        root = [p for p in self.root.glob(".*.tmp-*") if p.name[1:].rsplit(".tmp-", 1)[0] not in captioning]
        return [*self.clips_dir.glob("*.tmp-*"), *work, *root]

    def lock_config(self, fingerprint: dict, full: dict) -> None:
        """Write OUT/config.yaml, or check that the existing one was made with the same settings."""
        from curation.config import FREE_KEYS, CurateConfig

        lock_config(self.config_path, fingerprint, full=full, ignore=FREE_KEYS,
                    defaults=CurateConfig().fingerprint())

    # --- the journal: what each stage wrote, what a re-run resumes from ----------------------------
    def probe_path(self, key: str) -> Path:
        return self.work / "probes" / f"{key}.json"

    def plan_path(self, key: str) -> Path:
        return self.work / "plans" / f"{key}.json"

    def clip_result_path(self, clip_id: str) -> Path:
        return self.work / "clips" / f"{clip_id}.json"

    def commit_path(self, key: str) -> Path:
        return self.work / "sources" / f"{key}.json"

    def clip_file(self, clip_id: str) -> Path:
        return self.layout.clip_file(clip_id)

    def load(self, path: Path) -> Any | None:
        return read_json(path)

    def save(self, path: Path, data: Any) -> None:
        write_json_atomic(path, data)

    def save_probe(self, probe: Probe) -> None:
        failure = probe.failure
        self.save(self.probe_path(probe.key), {"source": probe.source, "probe": probe.info,
                                               "reason": failure.reason if failure else None,
                                               "message": failure.message if failure else None})

    def load_probe(self, key: str) -> Probe | None:
        data = self.load(self.probe_path(key))
        if data is None:
            return None
        failure = Failure(data["reason"], data["message"] or "") if data["probe"] is None else None
        return Probe(key, data["source"], data["probe"], failure)

    def save_plan(self, plan: SourcePlan) -> None:
        self.save(self.plan_path(plan.key), plan.to_json())

    def load_plan(self, key: str) -> SourcePlan | None:
        data = self.load(self.plan_path(key))
        return None if data is None or "extract" not in data else SourcePlan.from_json(data)

    def save_clip_result(self, result: ClipResult) -> None:
        self.save(self.clip_result_path(result.clip_id), result.to_json())

    def clip_result(self, key: str, clip_id: str) -> ClipResult | None:
        data = self.load(self.clip_result_path(clip_id))
        return None if data is None else ClipResult.from_json(key, clip_id, data)

    # --- attempts: what a worker that died (or a killed run) left unfinished --------------------------------
    @contextmanager
    def attempt(self, stage: str, key: str) -> Iterator[int]:
        """Count an attempt at `stage` of `key` (a source key or a clip id) for the `with` block; yields the count,
        more than one when an earlier attempt died before finishing (Ray retried the task, or a killed run was
        re-run). A first attempt that finishes leaves nothing; a retried one stays for `report_attempts`."""
        path = self.work / "attempts" / f"{stage}-{key}"
        count = int(path.read_text() or 0) + 1 if path.exists() else 1
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, str(count))
        if count > 1:
            log.warning("%s of %s again: attempt %d (an earlier one did not finish)", stage, key, count)
        yield count
        if count == 1:
            path.unlink(missing_ok=True)

    def report_attempts(self) -> dict[str, int]:
        """At the end of a run: log each stage item that needed more than one attempt, forget them all, and return
        the retry count per stage."""
        folder = self.work / "attempts"
        retried: dict[str, int] = {}
        for path in sorted(folder.glob("*")) if folder.is_dir() else []:
            if path.name.startswith("."):
                continue
            stage, _, key = path.name.partition("-")
            count = int(path.read_text() or 0)
            if count > 1:
                retried[stage] = retried.get(stage, 0) + 1
                log.warning("retried: %s of %s took %d attempts (a worker died or the run was killed)", stage,
                            key, count)
            path.unlink(missing_ok=True)
        return retried

    def commit(self, key: str, commit: dict) -> None:
        """Record a source as done: its sources.parquet row, scenes and clip rows (what the tables are built from)."""
        self.save(self.commit_path(key), commit)

    def decisions(self) -> dict[str, dict]:
        """The end-of-run decisions (near-duplicates, selection) by clip_id (`curation.decisions`)."""
        return read_json(self.layout.decisions) or {}

    def committed_clips(self, commit: dict, decisions: dict[str, dict]) -> list[dict]:
        """A commit's clip rows with the end-of-run decisions applied."""
        from curation.decisions import apply_decisions

        return [apply_decisions(row, decisions) for row in commit.get("clips", [])]

    def committed(self) -> dict[str, dict]:
        """Committed sources by key."""
        out = {}
        for path in sorted((self.work / "sources").glob("*.json")):
            data = read_json(path)
            if data is not None:
                out[path.stem] = data
        return out

    # --- derived tables ---------------------------------------------------------------------------
    def rebuild_tables(self) -> dict[str, int]:
        """Write sources/scenes/clips parquet from every commit file; returns row counts."""
        commits = sorted(self.committed().values(), key=lambda c: c["source"]["source"])
        decisions = self.decisions()
        decided = [self.committed_clips(c, decisions) for c in commits]
        sources = [{**c["source"], "clips_kept": sum(1 for r in rows if r["keep"])} if c["source"]["status"] == "ok"
                   else c["source"] for c, rows in zip(commits, decided, strict=True)]
        scenes = [s for c in commits for s in c.get("scenes", [])]
        clips = sorted((r for rows in decided for r in rows), key=lambda r: r["clip_id"])
        _write_table(self.sources_parquet, sources, SOURCE_SCHEMA)
        _write_table(self.scenes_parquet, scenes, SCENE_SCHEMA)
        _write_table(self.clips_parquet, clips, CLIP_SCHEMA)
        return {"sources": len(sources), "scenes": len(scenes), "clips": len(clips)}


def _write_table(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    write_parquet_atomic(path, pa.Table.from_pydict(columns, schema=schema))
