"""What the report shows, read from OUT's tables with bounded memory: counts and histograms over every clip (column
by column, in Arrow and numpy), full rows only for the clips the grid shows.

Every column past the basic ones may be missing (an OUT written before a stage existed) or null (the stage did not
run); the report shows what is there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.reasons import ALL as REASON_CODES
from shards.labels import PAPER_CLASSES

SCORES = ("aesthetic_score", "sharpness", "exposure", "text_area", "camera_motion_score", "object_motion_score",
          "camera_jitter", "brightness")
"""Score columns in the order the report shows them; any other float column of clips.parquet follows them."""
NOT_SCORES = frozenset({"start_s", "end_s", "fps"})
DURATION = "duration_s"  # derived: end_s - start_s
DETAIL_COLUMNS = ("source", "camera_timeline", "reject_message", "scene_tags", "crop", "ocr_text", "duplicate_of")
"""Columns read only for the clips the grid shows."""
QUALITY_REASONS = ("low_quality", "low_aesthetic", "text_overlay", "near_duplicate", "not_selected")
"""Reason codes of the quality stages, in pipeline order (after the codes of `curation.reasons.ALL`)."""
HIST_BINS = 30
UNCLASSED = "none"


def read_columns(path: Path, wanted: Sequence[str] | None = None) -> pa.Table | None:
    """The columns of `wanted` that the parquet file has (all when None); None when there is no file."""
    if not path.exists():
        return None
    names = pq.read_schema(path).names
    return pq.read_table(path, columns=[c for c in wanted if c in names] if wanted is not None else None)


def latest_rows(table: pa.Table, key: str = "clip_id") -> pa.Table:
    """The last row per `key`, in file order (the newest caption row of a clip wins)."""
    if table.num_rows == 0:
        return table
    order = table.append_column("_row", pa.array(np.arange(table.num_rows)))
    last = order.group_by(key, use_threads=False).aggregate([("_row", "max")])["_row_max"]
    return table.take(pc.take(last, pc.sort_indices(last)))


def score_columns(clips: pa.Table, thresholds: Mapping[str, object]) -> list[str]:
    """The numeric score columns with at least one value: the known ones in order, then the others (floats not
    naming a time, and any column a threshold names)."""
    names = clips.column_names
    extra = [n for n in names if n not in SCORES and n not in NOT_SCORES
             and (pa.types.is_floating(clips.schema.field(n).type) or (n in thresholds and
                                                                       pa.types.is_integer(clips.schema.field(n).type)))]
    return [n for n in (*SCORES, *extra) if n in names and clips[n].null_count < clips.num_rows]


@dataclass
class Histogram:
    name: str
    edges: list[float]
    kept: list[int]
    rejected: list[int]
    values: int  # clips with a value
    missing: int  # clips without one (the stage did not run for them)
    thresholds: list[float] = field(default_factory=list)


def threshold_list(value: object) -> list[float]:
    """A threshold setting as a list of lines: a number, or a (low, high) pair with None for an open side."""
    if value is None:
        return []
    if isinstance(value, int | float):
        return [float(value)]
    return [float(v) for v in value if v is not None]  # type: ignore[union-attr]


def histogram(name: str, values: pa.ChunkedArray | pa.Array, keep: np.ndarray, lines: list[float]) -> Histogram:
    """Kept and rejected counts of `values` in HIST_BINS bins spanning the values and the threshold lines."""
    data = np.asarray(pc.fill_null(pc.cast(values, pa.float64()), np.nan).to_numpy(zero_copy_only=False),
                      dtype=np.float64)
    finite = np.isfinite(data)
    present = data[finite]
    low, high = (float(present.min()), float(present.max())) if present.size else (0.0, 1.0)
    if lines:
        low, high = min(low, *lines), max(high, *lines)
    if high - low < 1e-9 * max(1.0, abs(high)):  # equal values (or floats a rounding apart): one bar, centred
        low = low - (HIST_BINS // 2 + 0.5) / HIST_BINS
        high = low + 1.0
    edges = np.linspace(low, high, HIST_BINS + 1)
    kept = np.histogram(data[finite & keep], bins=edges)[0]
    rejected = np.histogram(data[finite & ~keep], bins=edges)[0]
    return Histogram(name, edges.tolist(), kept.tolist(), rejected.tolist(), int(finite.sum()),
                     int((~finite).sum()), lines)


def histograms(clips: pa.Table, thresholds: Mapping[str, object]) -> list[Histogram]:
    """One histogram per score column present (and clip duration), kept and rejected stacked."""
    if clips.num_rows == 0:
        return []
    keep = np.asarray(pc.fill_null(clips["keep"], False).to_numpy(zero_copy_only=False), dtype=bool)
    out = [histogram(n, clips[n], keep, threshold_list(thresholds.get(n))) for n in score_columns(clips, thresholds)]
    if "start_s" in clips.column_names and "end_s" in clips.column_names:
        duration = pc.subtract(clips["end_s"], clips["start_s"])
        out.append(histogram(DURATION, duration, keep, threshold_list(thresholds.get(DURATION))))
    return out


def counts(table: pa.Table | None, *keys: str) -> dict[tuple, int]:
    """Row counts per combination of `keys` (missing columns count as None)."""
    if table is None or table.num_rows == 0:
        return {}
    cols = {k: table[k] if k in table.column_names else pa.nulls(table.num_rows) for k in keys}
    grouped = pa.table(cols).group_by(list(keys), use_threads=False).aggregate([([], "count_all")]).to_pylist()
    return {tuple(row[k] for k in keys): row["count_all"] for row in grouped}


@dataclass
class FunnelStep:
    label: str
    count: int
    unit: str  # "sources" or "clips"
    kind: str  # "total", "rejected", "kept", "later"


def _pipeline_order(item: tuple[tuple, int]) -> tuple:
    """Rejections in the order the pipeline applies them (known codes), then the others, most frequent first."""
    (_, reason), n = item
    known = list(dict.fromkeys((*REASON_CODES, *QUALITY_REASONS)))
    return (known.index(reason), 0, "") if reason in known else (len(known), -n, str(reason))


def funnel(sources: pa.Table | None, clips: pa.Table | None, captioned: int | None,
           sharded: int | None) -> list[FunnelStep]:
    """Inputs, each source rejection, sources ok; clips cut, each clip rejection, kept, captioned, sharded
    (the last two only when OUT has captions / shards)."""
    steps: list[FunnelStep] = []
    by_status = counts(sources, "status", "reason")
    steps.append(FunnelStep("input sources", sum(by_status.values()), "sources", "total"))
    for (status, reason), n in sorted(by_status.items(), key=_pipeline_order):
        if status != "ok":
            steps.append(FunnelStep(f"rejected: {reason}", n, "sources", "rejected"))
    steps.append(FunnelStep("sources ok", sum(n for (s, _), n in by_status.items() if s == "ok"), "sources", "kept"))
    by_keep = counts(clips, "keep", "reject_reason")
    steps.append(FunnelStep("clips cut", sum(by_keep.values()), "clips", "total"))
    for (keep, reason), n in sorted(by_keep.items(), key=_pipeline_order):
        if not keep:
            steps.append(FunnelStep(f"rejected: {reason}", n, "clips", "rejected"))
    steps.append(FunnelStep("kept", sum(n for (k, _), n in by_keep.items() if k), "clips", "kept"))
    if captioned is not None:
        steps.append(FunnelStep("captioned", captioned, "clips", "later"))
    if sharded is not None:
        steps.append(FunnelStep("sharded", sharded, "clips", "later"))
    return steps


def labels_by_class(clips: pa.Table | None) -> list[tuple[str, str, int, int]]:
    """(paper class, camera label, kept, rejected) for every pair present, classes C1..C6 in order."""
    by = counts(clips, "paper_class", "camera_motion", "keep")
    pairs: dict[tuple[str, str], list[int]] = {}
    for (cls, label, keep), n in by.items():
        pairs.setdefault((cls or UNCLASSED, label or "none"), [0, 0])[0 if keep else 1] += n
    order = {c: i for i, c in enumerate(PAPER_CLASSES)}
    return [(c, lab, k, r) for (c, lab), (k, r) in sorted(pairs.items(), key=lambda kv: (order.get(kv[0][0], 99),
                                                                                          kv[0][0], kv[0][1]))]


def light_columns(path: Path, extra: Sequence[str] = ()) -> list[str]:
    """The clips.parquet columns read for every clip: ids, labels, outcome, times and numeric scores (not the
    lists and texts, which are read for the shown clips only)."""
    schema = pq.read_schema(path)
    basic = ("clip_id", "keep", "reject_reason", "camera_motion", "paper_class", "start_s", "end_s")
    floats = [f.name for f in schema if pa.types.is_floating(f.type) and f.name not in NOT_SCORES]
    return list(dict.fromkeys(n for n in (*basic, *floats, *extra) if n in schema.names))


def read_light(path: Path, thresholds: Mapping[str, object]) -> pa.Table:
    """`light_columns` of clips.parquet, the label and reason columns dictionary-encoded (few distinct values)."""
    columns = light_columns(path, [n for n in thresholds if n != DURATION])
    return pq.read_table(path, columns=columns,
                         read_dictionary=[c for c in ("reject_reason", "camera_motion", "paper_class") if c in columns])


def grid_sample(clip_ids: pa.ChunkedArray | pa.Array, max_clips: int) -> tuple[np.ndarray, str]:
    """Row numbers of the clips the grid shows, in clip_id order: all of them, or `max_clips` evenly spaced in
    clip_id order (so every part of OUT is represented), with a sentence saying which."""
    total = len(clip_ids)
    if max_clips <= 0:
        return np.zeros(0, dtype=np.int64), f"none of the {total} clips (the grid is off)"
    order = pc.sort_indices(clip_ids).to_numpy()
    if total <= max_clips:
        return order, f"all {total} clips"
    step = total / max_clips
    return order[(np.arange(max_clips) * step).astype(np.int64)], (
        f"{max_clips} of {total} clips (every {step:.4g}th in clip_id order; the counts and charts above cover "
        "all of them)")


def take_rows(path: Path, rows: np.ndarray, columns: Sequence[str], batch_size: int = 65536) -> list[dict]:
    """The given row numbers of a parquet file as dicts, in the order given, read batch by batch (memory: one
    batch of `columns` at a time)."""
    names = pq.read_schema(path).names
    columns = [c for c in columns if c in names]
    if not columns or len(rows) == 0:
        return [{} for _ in rows]
    wanted = np.unique(rows)
    found: dict[int, dict] = {}
    offset = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns):
        lo, hi = np.searchsorted(wanted, [offset, offset + batch.num_rows])
        if hi > lo:
            picked = wanted[lo:hi]
            for row, values in zip(picked, batch.take(pa.array(picked - offset)).to_pylist(), strict=True):
                found[int(row)] = values
        offset += batch.num_rows
    return [found[int(r)] for r in rows]


@dataclass
class LaterStages:
    """What captioning and sharding added: the newest caption row per shown clip, the shard per shown clip,
    and totals over OUT (None when the table does not exist)."""

    captions: dict[str, dict] = field(default_factory=dict)
    shards: dict[str, str] = field(default_factory=dict)
    captioned: int | None = None
    qa_passed: int | None = None
    sharded: int | None = None


def _caption_outcomes(path: Path, shown: pa.Array, batch_size: int = 65536) -> tuple[pa.Table, list[dict]]:
    """One pass over captions.parquet: per row its clip_id and whether it is a caption (no error) that passed QA
    (the texts are not kept), and the full rows of the shown clips."""
    names = pq.read_schema(path).names
    wanted = [c for c in ("clip_id", "caption", "backend", "qa_passed", "qa_reason", "error") if c in names]
    thin, rows = [], []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=wanted):
        table = pa.Table.from_batches([batch])
        ok = pc.is_valid(table["caption"])
        if "error" in names:
            ok = pc.and_(ok, pc.is_null(table["error"]))
        passed = pc.and_(ok, pc.fill_null(table["qa_passed"], False)) if "qa_passed" in names else ok
        thin.append(pa.table({"clip_id": table["clip_id"], "ok": ok, "passed": passed}))
        rows += table.filter(pc.is_in(table["clip_id"], value_set=shown)).to_pylist()
    return (pa.concat_tables(thin) if thin else pa.table({"clip_id": pa.array([], pa.string()),
                                                          "ok": pa.array([], pa.bool_()),
                                                          "passed": pa.array([], pa.bool_())})), rows


def later_stages(captions_path: Path, index_path: Path, shown: Sequence[str]) -> LaterStages:
    out = LaterStages()
    wanted = pa.array(list(shown), pa.string())
    if captions_path.exists():
        outcomes, rows = _caption_outcomes(captions_path, wanted)
        latest = latest_rows(outcomes)
        out.captioned = int(pc.sum(pc.cast(latest["ok"], pa.int64())).as_py() or 0)
        out.qa_passed = int(pc.sum(pc.cast(latest["passed"], pa.int64())).as_py() or 0)
        out.captions = {row["clip_id"]: row for row in rows}  # file order: the newest row of a clip last
    if index_path.exists():
        index = pq.read_table(index_path, columns=["clip_id", "shard"], read_dictionary=["shard"])
        out.sharded = len(pc.unique(index["clip_id"]))
        mine = index.filter(pc.is_in(index["clip_id"], value_set=wanted))
        out.shards = dict(zip(mine["clip_id"].to_pylist(), mine["shard"].to_pylist(), strict=True))
    return out
