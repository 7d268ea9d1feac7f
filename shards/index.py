"""`shards/index.parquet` and `shards/manifest.json`: derived from the tars, rebuilt from them when behind.

The index has one row per sample (member data offsets and sizes, metadata columns); the manifest lists each
shard's sample count, byte size and sha256. Both are rewritten atomically after every completed shard. A shard
whose manifest entry is missing or disagrees with the file's size (a run killed between renaming a tar and
writing these files) is read back from its tar instead of being rewritten.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shards.tario import file_sha256, scan_members

INDEX_NAME = "index.parquet"
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
SHARD_PATTERN = re.compile(r"^shard-(\d{6,})\.tar$")
MEMBERS = ("json", "mp4", "txt")

METADATA_FIELDS = [
    ("num_frames", pa.int64()),
    ("fps", pa.float64()),
    ("width", pa.int64()),
    ("height", pa.int64()),
    ("camera_motion", pa.string()),
    ("words", pa.int64()),
    ("qa_passed", pa.bool_()),
    ("source_id", pa.string()),
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),
]
INDEX_SCHEMA = pa.schema(
    [("clip_id", pa.string()), ("shard", pa.string())]
    + [(f"{m}_{part}", pa.int64()) for m in MEMBERS for part in ("offset", "size")]
    + METADATA_FIELDS
)


def shard_name(number: int) -> str:
    return f"shard-{number:06d}.tar"


def shard_number(name: str) -> int | None:
    match = SHARD_PATTERN.match(name)
    return int(match.group(1)) if match else None


def list_shards(shards_dir: Path) -> list[str]:
    """Names of the complete shard tars in `shards_dir`, in shard-number order."""
    names = [p.name for p in shards_dir.iterdir() if p.is_file() and shard_number(p.name) is not None]
    return sorted(names, key=lambda n: shard_number(n) or 0)


def index_row(meta: dict, shard: str, offsets: dict[str, tuple[int, int]]) -> dict:
    """One index row from a sample's JSON metadata and its members' (offset, size)."""
    row = {"clip_id": meta["clip_id"], "shard": shard}
    for member in MEMBERS:
        row[f"{member}_offset"], row[f"{member}_size"] = offsets[member]
    for name, _ in METADATA_FIELDS:
        row[name] = meta.get(name)
    return row


@dataclass
class ShardEntry:
    name: str
    samples: int
    bytes: int
    sha256: str

    def to_json(self) -> dict:
        return {"name": self.name, "samples": self.samples, "bytes": self.bytes, "sha256": self.sha256}


@dataclass
class IndexState:
    """What the shards folder holds: one entry per shard tar and the index rows of all of them."""

    shards: list[ShardEntry] = field(default_factory=list)
    pieces: list[pa.Table] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.recovered or self.dropped)

    def table(self) -> pa.Table:
        if not self.pieces:
            return INDEX_SCHEMA.empty_table()
        return pa.concat_tables(self.pieces)

    def clip_ids(self) -> set[str]:
        return {c for piece in self.pieces for c in piece.column("clip_id").to_pylist()}

    def next_number(self) -> int:
        numbers = [shard_number(s.name) for s in self.shards]
        return max((n for n in numbers if n is not None), default=-1) + 1

    def add(self, entry: ShardEntry, rows: list[dict]) -> None:
        self.shards.append(entry)
        self.pieces.append(pa.Table.from_pylist(rows, schema=INDEX_SCHEMA))


def _read_manifest(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {s["name"]: s for s in data["shards"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _read_index(path: Path) -> pa.Table:
    try:
        return pq.read_table(path).select(INDEX_SCHEMA.names).cast(INDEX_SCHEMA)
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return INDEX_SCHEMA.empty_table()


def scan_shard(path: Path) -> tuple[ShardEntry, list[dict]]:
    """Reads a complete shard back: its manifest entry and index rows (offsets from the tar's headers)."""
    by_key: dict[str, dict[str, tuple[int, int]]] = {}
    for name, offset, size in scan_members(path):
        key, _, ext = name.partition(".")
        by_key.setdefault(key, {})[ext] = (offset, size)
    rows = []
    with open(path, "rb") as f:
        for key, offsets in by_key.items():
            json_offset, json_size = offsets["json"]
            f.seek(json_offset)
            meta = json.loads(f.read(json_size))
            if meta.get("clip_id") != key:
                raise ValueError(f"{path}: member {key}.json holds clip_id {meta.get('clip_id')!r}")
            rows.append(index_row(meta, path.name, offsets))
    entry = ShardEntry(path.name, len(rows), path.stat().st_size, file_sha256(path))
    return entry, rows


def load_state(shards_dir: Path) -> IndexState:
    """The shards in `shards_dir` with their index rows; tars the derived files miss are read back."""
    manifest = _read_manifest(shards_dir / MANIFEST_NAME)
    index = _read_index(shards_dir / INDEX_NAME)
    counts = {}
    if index.num_rows:
        vc = pc.value_counts(index.column("shard")).to_pylist()
        counts = {v["values"]: v["counts"] for v in vc}
    state = IndexState()
    present = list_shards(shards_dir)
    trusted = []
    for name in present:
        known = manifest.get(name)
        size = (shards_dir / name).stat().st_size
        if known and known.get("bytes") == size and counts.get(name) == known.get("samples"):
            state.shards.append(ShardEntry(name, known["samples"], known["bytes"], known["sha256"]))
            trusted.append(name)
        else:
            entry, rows = scan_shard(shards_dir / name)
            state.add(entry, rows)
            state.recovered.append(name)
    state.dropped = sorted(set(manifest) - set(present))
    if trusted:
        state.pieces.append(index.filter(pc.is_in(index.column("shard"), value_set=pa.array(trusted))))
    if state.recovered:  # keep shard-then-offset order
        order = {n: i for i, n in enumerate(present)}
        state.shards.sort(key=lambda s: order[s.name])
        table = state.table()
        rank = pa.array([order[s] for s in table.column("shard").to_pylist()], pa.int64())
        table = table.append_column("_rank", rank).sort_by([("_rank", "ascending"), ("json_offset", "ascending")])
        state.pieces = [table.drop_columns(["_rank"])]
    return state


def _replace_atomically(path: Path, data_writer, fsync: bool) -> None:
    tmp = path.with_name(path.name + ".tmp")
    data_writer(tmp)
    if fsync:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    os.replace(tmp, path)


def save_state(shards_dir: Path, state: IndexState, fsync: bool = True) -> None:
    """Rewrites index.parquet, then manifest.json, each under a temp name and renamed."""
    table = state.table()
    state.pieces = [table]
    _replace_atomically(shards_dir / INDEX_NAME, lambda p: pq.write_table(table, p), fsync)
    manifest = {
        "version": MANIFEST_VERSION,
        "shards": [s.to_json() for s in state.shards],
        "total_samples": sum(s.samples for s in state.shards),
        "total_bytes": sum(s.bytes for s in state.shards),
    }
    text = json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    _replace_atomically(shards_dir / MANIFEST_NAME, lambda p: p.write_text(text, encoding="utf-8"), fsync)
