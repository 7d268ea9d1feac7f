"""The OUT folder: its config lock, the per-source commit files a run writes as it goes (what resume
reads), and the parquet tables derived from them (SPEC: OUT layout)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from shards.schema import CLIP_SCHEMA, SCENE_SCHEMA

SOURCE_COLUMNS = (
    ("source", pa.string()), ("source_id", pa.string()), ("status", pa.string()), ("reason", pa.string()),
    ("message", pa.string()), ("file_bytes", pa.int64()), ("container", pa.string()), ("codec", pa.string()),
    ("pix_fmt", pa.string()), ("width", pa.int64()), ("height", pa.int64()), ("rotation", pa.int64()),
    ("fps", pa.float64()), ("nominal_fps", pa.float64()), ("vfr", pa.bool_()), ("num_frames", pa.int64()),
    ("duration_s", pa.float64()), ("has_audio", pa.bool_()), ("bit_rate", pa.int64()), ("warning", pa.string()),
    ("decoded_frames", pa.int64()), ("scenes", pa.int64()), ("clips", pa.int64()), ("clips_kept", pa.int64()),
)
SOURCE_SCHEMA = pa.schema(list(SOURCE_COLUMNS))


class ConfigMismatch(Exception):
    """OUT was made with another config."""


def source_key(uri: str) -> str:
    """The file-name key of a source's work files (its URI hashed; the content hash is not known yet)."""
    return hashlib.sha1(uri.encode("utf-8")).hexdigest()[:20]


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, sort_keys=True, default=_json_default))
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


class OutStore:
    """Paths and files of one OUT folder."""

    def __init__(self, out: str | Path):
        self.root = Path(out)
        self.work = self.root / "_work"
        self.clips_dir = self.root / "clips"
        self.config_path = self.root / "config.yaml"
        self.sources_parquet = self.root / "sources.parquet"
        self.scenes_parquet = self.root / "scenes.parquet"
        self.clips_parquet = self.root / "clips.parquet"
        self.report_path = self.root / "report.html"
        self.log_path = self.root / "curate.log"

    def prepare(self) -> None:
        """Create the folders; remove temp files a killed run left (finished files always have their name)."""
        for d in (self.root, self.clips_dir, self.work / "probes", self.work / "plans", self.work / "clips",
                  self.work / "sources"):
            d.mkdir(parents=True, exist_ok=True)
        for leftover in [*self.clips_dir.glob("*.tmp-*"), *self.work.glob("*/.*.tmp-*")]:
            leftover.unlink(missing_ok=True)

    def lock_config(self, fingerprint: dict, full: dict) -> None:
        """Write OUT/config.yaml, or check that the existing one was made with the same settings."""
        if self.config_path.exists():
            existing = yaml.safe_load(self.config_path.read_text()) or {}
            old = {k: v for k, v in existing.items() if k != "ray"}
            if old != fingerprint:
                changed = sorted(_diff_keys(old, fingerprint))
                raise ConfigMismatch(
                    f"{self.root} was made with a different config (changed: {', '.join(changed[:6])}); "
                    "use a new OUT or the same config"
                )
            return
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.config_path.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(full, sort_keys=False))
        os.replace(tmp, self.config_path)

    # --- work files -------------------------------------------------------------------------------
    def probe_path(self, key: str) -> Path:
        return self.work / "probes" / f"{key}.json"

    def plan_path(self, key: str) -> Path:
        return self.work / "plans" / f"{key}.json"

    def clip_result_path(self, clip_id: str) -> Path:
        return self.work / "clips" / f"{clip_id}.json"

    def commit_path(self, key: str) -> Path:
        return self.work / "sources" / f"{key}.json"

    def clip_file(self, clip_id: str) -> Path:
        return self.clips_dir / f"{clip_id}.mp4"

    def load(self, path: Path) -> Any | None:
        return _read_json(path)

    def save(self, path: Path, data: Any) -> None:
        write_json_atomic(path, data)

    def committed(self) -> dict[str, dict]:
        """Committed sources by key."""
        out = {}
        for path in sorted((self.work / "sources").glob("*.json")):
            data = _read_json(path)
            if data is not None:
                out[path.stem] = data
        return out

    # --- derived tables ---------------------------------------------------------------------------
    def rebuild_tables(self) -> dict[str, int]:
        """Write sources/scenes/clips parquet from every commit file; returns row counts."""
        commits = sorted(self.committed().values(), key=lambda c: c["source"]["source"])
        sources = [c["source"] for c in commits]
        scenes = [s for c in commits for s in c.get("scenes", [])]
        clips = sorted((r for c in commits for r in c.get("clips", [])), key=lambda r: r["clip_id"])
        _write_table(self.sources_parquet, sources, SOURCE_SCHEMA)
        _write_table(self.scenes_parquet, scenes, SCENE_SCHEMA)
        _write_table(self.clips_parquet, clips, CLIP_SCHEMA)
        return {"sources": len(sources), "scenes": len(scenes), "clips": len(clips)}


def _write_table(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    table = pa.Table.from_pydict(columns, schema=schema)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _diff_keys(a: Any, b: Any, prefix: str = "") -> set[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) | set(b)
        out: set[str] = set()
        for k in keys:
            out |= _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return set() if a == b else {prefix.rstrip(".")}
