"""CLIP clip embeddings beside clips.parquet, keyed by clip_id (data contract: OUT layout).

As a run goes, each batch (any file-name-safe key) is written whole to `OUT/_work/embeddings/<key>.npz`
(`clip_ids` [n] str, `embeddings` [n, D] float32, `meta` a JSON string) under a temp name and renamed, so a killed
run leaves whole batches or none, and a re-run embeds only the clips no batch holds. A worker writes one batch per
clip (keyed by its clip_id); when the driver commits a source, `merge` folds that source's clip batches into one
`src-<source key>.npz` and removes them, so the folder holds about one file per source, not per clip.
`OUT/embeddings.parquet` (`clip_id` string, `embedding` fixed-size list<float32>[D], sorted by
clip_id; the model in the schema metadata) is derived from the batches, like the other tables.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from runtime.atomic import temp_name, write_parquet_atomic
from shards.layout import OutLayout

META_KEY = b"droplet.embeddings"
PARQUET_NAME, BATCH_FOLDER = "embeddings.parquet", "embeddings"  # OUT/embeddings.parquet, OUT/_work/embeddings/
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _empty() -> tuple[list[str], np.ndarray]:
    return [], np.zeros((0, 0), np.float32)


class EmbeddingStore:
    """The embedding batches and the embeddings table of one OUT folder."""

    def __init__(self, out: str | Path) -> None:
        layout = OutLayout(out)
        self.dir = layout.embedding_batches
        self.parquet = layout.embeddings_parquet

    def batch_path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"embedding batch key {key!r}: letters, digits, '_', '.', '-' only")
        return self.dir / f"{key}.npz"

    def write_batch(self, key: str, clip_ids: list[str], embeddings: np.ndarray, meta: dict[str, Any] | None = None
                    ) -> Path:
        """Write one batch whole (temp name, then rename); replaces a batch of the same key."""
        matrix = np.asarray(embeddings, dtype=np.float32)
        if matrix.ndim != 2 or len(matrix) != len(clip_ids):
            raise ValueError(f"embedding batch {key}: {len(clip_ids)} clip ids but embeddings of shape {matrix.shape}")
        path = self.batch_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_name(path)
        with open(tmp, "wb") as f:
            np.savez(f, clip_ids=np.array(clip_ids, dtype=str), embeddings=matrix,
                     meta=np.array(json.dumps(meta or {}, sort_keys=True)))
        os.replace(tmp, path)
        return path

    def merge(self, key: str, clip_ids: list[str]) -> int:
        """Fold the one-clip batches of `clip_ids` (a committed source's clips) into batch `src-<key>` and remove
        them; returns how many clips it merged. Killed between the write and the removals, the merged batch is the
        newest and holds the same vectors, so nothing is lost or changed."""
        paths = [self.batch_path(cid) for cid in clip_ids if _KEY.match(cid)]
        paths = [p for p in paths if p.exists()]
        if not paths:
            return 0
        target = self.batch_path(f"src-{key}")
        rows: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {}
        for path in ([target] if target.exists() else []) + paths:  # a resumed run adds clips to a merged source
            batch_ids, matrix, meta = self.read_batch(path)
            rows.update(zip(batch_ids, matrix, strict=True))
        self.write_batch(target.stem, list(rows), np.stack(list(rows.values())), meta)
        for path in paths:
            path.unlink(missing_ok=True)
        return len(paths)

    def merge_committed(self, commits: dict[str, dict]) -> int:
        """Merge the one-clip batches left beside committed sources (`OutStore.committed()`: a run killed between
        a commit and its merge); returns how many clips it merged."""
        loose = {p.stem for p in self.batch_files() if not p.stem.startswith("src-")}
        merged = 0
        for key, commit in commits.items():
            ids = [c["clip_id"] for c in commit.get("clips", []) if c["clip_id"] in loose] if loose else []
            if ids:
                merged += self.merge(key, ids)
        return merged

    def batch_files(self) -> list[Path]:
        """Whole batch files, oldest first (a clip id in several batches: the newest wins)."""
        files = [p for p in self.dir.glob("*.npz") if not p.name.startswith(".")] if self.dir.is_dir() else []
        return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))

    @staticmethod
    def read_batch(path: Path) -> tuple[list[str], np.ndarray, dict[str, Any]]:
        with np.load(path, allow_pickle=False) as data:
            return data["clip_ids"].tolist(), data["embeddings"].astype(np.float32), json.loads(str(data["meta"]))

    def done_clip_ids(self) -> set[str]:
        """Clip ids some batch holds (what a re-run does not embed again)."""
        return {cid for path in self.batch_files() for cid in self.read_batch(path)[0]}

    def load_with_meta(self) -> tuple[list[str], np.ndarray, dict[str, Any]]:
        """All batches merged: clip ids sorted, their embeddings [n, D], the newest batch's meta. ValueError when
        batches disagree on D (embeddings of two models in one OUT)."""
        rows: dict[str, np.ndarray] = {}
        dims, meta = set(), {}
        for path in self.batch_files():
            ids, matrix, meta = self.read_batch(path)
            if len(ids):
                dims.add(matrix.shape[1])
            rows.update(zip(ids, matrix, strict=True))
        if len(dims) > 1:
            raise ValueError(f"{self.dir}: embedding batches of different sizes {sorted(dims)} (two CLIP models)")
        if not rows:
            return *_empty(), meta
        ids = sorted(rows)
        return ids, np.stack([rows[i] for i in ids]), meta

    def load(self) -> tuple[list[str], np.ndarray]:
        ids, matrix, _ = self.load_with_meta()
        return ids, matrix

    def rebuild(self) -> int:
        """Write embeddings.parquet from the batches; returns its row count."""
        ids, matrix, meta = self.load_with_meta()
        dim = matrix.shape[1] if len(ids) else int(meta.get("dim", 0))
        flat = pa.array(matrix.reshape(-1), type=pa.float32())
        table = pa.table({"clip_id": pa.array(ids, pa.string()),
                          "embedding": pa.FixedSizeListArray.from_arrays(flat, dim)})
        table = table.replace_schema_metadata({META_KEY: json.dumps({**meta, "dim": dim}, sort_keys=True).encode()})
        write_parquet_atomic(self.parquet, table)
        return len(ids)


def read_embeddings_parquet(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(clip ids, embeddings [n, D] float32) of an embeddings.parquet."""
    table = pq.read_table(path, columns=["clip_id", "embedding"])
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    matrix = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)
    return table.column("clip_id").to_pylist(), matrix


def load_embeddings(out: str | Path) -> tuple[list[str], np.ndarray]:
    """OUT's clip embeddings, clip ids sorted: from the batches when OUT has them (always current, also during a
    run), else from embeddings.parquet; empty when there are none."""
    store = EmbeddingStore(out)
    if store.batch_files():
        return store.load()
    if store.parquet.exists():
        return read_embeddings_parquet(store.parquet)
    return _empty()
