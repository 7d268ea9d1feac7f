"""OUT/report.html: what a curate run kept and rejected and why, and a browser of its clips.

The page is one self-contained file (style, script, charts and thumbnail strips inline; nothing is fetched from
the network) that links into OUT only for the clip videos (`clips/<clip_id>.mp4`), so it works wherever OUT is
opened or copied whole. It shows: the curate facts; each quality stage, ran or skipped and why; the funnel from
inputs through each rejection to kept, captioned and sharded clips; a histogram per score with its threshold;
camera labels by paper class; a grid of clips (thumbnail strip, labels, scores, caption, reject reason, a playable
video) filterable by camera label, paper class, reject reason and score; the sources.

`write_report` can be called again at any time (after `droplet caption` or `droplet shard`): it rereads OUT's
tables, and reuses the stage record, thresholds and curate facts the last curate run passed in (kept in
`_work/report/inputs.json`) and the thumbnail strips decoded before (`_work/report/thumbs/`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

from curation import report_data as data
from curation import report_page as render
from curation.report_thumbs import cached_strips
from curation.store import OutStore
from curation.summary import CurateSummary
from runtime.atomic import read_json, write_json_atomic, write_text_atomic

log = logging.getLogger("droplet.curate")

MAX_CLIPS = 2000
"""Clips the grid shows at most (evenly spaced in clip_id order beyond that); counts and charts cover all."""
MAX_SOURCES = 2000


@dataclass(frozen=True)
class StageRun:
    """One quality stage in the report: `ran`, or skipped with `detail` saying why (e.g. "no weights configured:
    quality.aesthetic.weights"); when it ran, `detail` may say with what (model, threshold, clips rejected)."""

    name: str
    ran: bool
    detail: str = ""


def _stage_dict(stage: StageRun | Mapping[str, Any]) -> dict:
    if isinstance(stage, Mapping):
        return {"name": str(stage["name"]), "ran": bool(stage["ran"]), "detail": str(stage.get("detail") or "")}
    return {"name": stage.name, "ran": bool(stage.ran), "detail": stage.detail or ""}


def _inputs_path(store: OutStore) -> Path:
    return store.work / "report" / "inputs.json"


def _remembered(store: OutStore, summary: CurateSummary | None, stages: Sequence | None,
                thresholds: Mapping | None) -> tuple[CurateSummary | None, list[dict] | None, dict]:
    """The arguments given, else what the last call that had them recorded; what is given is recorded."""
    old = read_json(_inputs_path(store)) or {}
    given = {}
    if summary is not None:
        given["summary"] = dataclasses.asdict(summary)
    if stages is not None:
        given["stages"] = [_stage_dict(s) for s in stages]
    if thresholds is not None:
        given["thresholds"] = {str(k): v for k, v in thresholds.items()}
    if given:
        write_json_atomic(_inputs_path(store), {**old, **given})
    merged = {**old, **given}
    fields = {f.name for f in dataclasses.fields(CurateSummary)}
    remembered = CurateSummary(**{k: v for k, v in merged["summary"].items() if k in fields}) \
        if "summary" in merged else None
    return remembered, merged.get("stages"), dict(merged.get("thresholds") or {})


def _facts(summary: CurateSummary | None, sources: pa.Table | None, clips: pa.Table | None,
           later: data.LaterStages) -> list[tuple[str, object]]:
    n_sources = sources.num_rows if sources is not None else 0
    ok = int(pc.sum(pc.cast(pc.equal(sources["status"], "ok"), pa.int64())).as_py() or 0) if n_sources else 0
    kept = pc.fill_null(clips["keep"], False) if clips is not None else None
    n_kept = int(pc.sum(pc.cast(kept, pa.int64())).as_py() or 0) if clips is not None and clips.num_rows else 0
    kept_s = 0.0
    if n_kept:
        kept_s = float(pc.sum(pc.filter(pc.subtract(clips["end_s"], clips["start_s"]), kept)).as_py() or 0.0)
    facts: list[tuple[str, object]] = [("sources", n_sources), ("sources ok", ok)]
    if summary is not None:
        facts += [("video hours (ok sources)", f"{summary.video_seconds / 3600:.3f}"), ("scenes", summary.scenes)]
    facts += [("clips", clips.num_rows if clips is not None else 0), ("clips kept", n_kept),
              ("kept hours", f"{kept_s / 3600:.3f}")]
    if later.captioned is not None:
        facts.append(("clips captioned", later.captioned))
        if later.qa_passed is not None:
            facts.append(("captions passing QA", later.qa_passed))
    if later.sharded is not None:
        facts.append(("clips in shards", later.sharded))
    if summary is not None:
        facts.append(("curate run seconds", f"{summary.seconds:.1f}"))
        facts += [(f"input files skipped: extension {ext}", n) for ext, n in sorted(summary.skipped_files.items())]
    return facts


def _clean(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _card(row: dict, detail: dict, scores: Sequence[str], thumbs: dict[str, str], has_file: bool,
          later: data.LaterStages) -> dict:
    """One clip as the browser's script reads it."""
    cid = row["clip_id"]
    caption = later.captions.get(cid)
    state = None
    if caption is not None:
        state = (f"error: {caption.get('error')}" if caption.get("error") else
                 "QA passed" if caption.get("qa_passed") else f"QA failed: {caption.get('qa_reason') or ''}")
        state = f"{state} ({caption.get('backend')})" if caption.get("backend") else state
    duration = (row["end_s"] - row["start_s"]) if row.get("end_s") is not None and row.get("start_s") is not None \
        else None
    return {
        "id": cid, "label": row.get("camera_motion") or "none", "cls": row.get("paper_class") or data.UNCLASSED,
        "keep": bool(row.get("keep")), "reason": row.get("reject_reason"), "message": detail.get("reject_message"),
        "dur": _clean(duration), "scores": {s: _clean(row.get(s)) for s in scores},
        "tags": [{"tag": t.get("tag"), "score": _clean(t.get("score"))} for t in (detail.get("scene_tags") or [])][:5],
        "timeline": [{k: _clean(seg.get(k)) for k in ("label", "start_s", "end_s")}
                     for seg in (detail.get("camera_timeline") or [])],
        "crop": detail.get("crop"), "ocr": detail.get("ocr_text"), "dup": detail.get("duplicate_of"),
        "caption": caption.get("caption") if caption else None, "captionState": state,
        "shard": later.shards.get(cid), "thumb": thumbs.get(cid),
        "video": f"clips/{quote(cid)}.mp4" if has_file else None,
    }


def _grid(store: OutStore, clips: pa.Table | None, limits: Mapping, max_clips: int, thumbnails: bool,
          workers: int) -> tuple[list[dict], list[dict], str, data.LaterStages]:
    """The shown clips as cards, the score ranges the sliders span, the sentence saying which clips are shown,
    and what captioning and sharding added."""
    rows, details, note = [], [], "no clips"
    if clips is not None and clips.num_rows:
        picked, note = data.grid_sample(clips["clip_id"], max_clips)
        rows = clips.take(pa.array(picked)).to_pylist()
        details = data.take_rows(store.clips_parquet, picked, data.DETAIL_COLUMNS)
    shown = [r["clip_id"] for r in rows]
    later = data.later_stages(store.layout.captions_parquet, store.layout.shards_dir / "index.parquet", shown)
    has_file = {cid: store.clip_file(cid).exists() for cid in shown}
    thumbs = {}
    if thumbnails and shown:
        thumbs = cached_strips([(cid, store.clip_file(cid)) for cid in shown if has_file[cid]],
                               store.work / "report" / "thumbs", workers=workers)
    scores = data.score_columns(clips, limits) if clips is not None else []
    cards = [_card(r, d, scores, thumbs, has_file[r["clip_id"]], later) for r, d in zip(rows, details, strict=True)]
    ranges = []
    for s in scores:
        values = [c["scores"][s] for c in cards if c["scores"][s] is not None]
        if values:
            ranges.append({"name": s, "min": min(values), "max": max(values)})
    return cards, ranges, note, later


def _sources(sources: pa.Table | None) -> tuple[list[dict], int]:
    """Up to MAX_SOURCES sources, rejected ones first, and how many there are."""
    if sources is None or sources.num_rows == 0:
        return [], 0
    order = pc.sort_indices(pa.table({"ok": pc.equal(sources["status"], "ok"), "source": sources["source"]}),
                            sort_keys=[("ok", "ascending"), ("source", "ascending")])
    return sources.take(order.slice(0, MAX_SOURCES)).to_pylist(), sources.num_rows


def _section(name: str, make: Callable[[], str]) -> str:
    """A section's HTML; a section that fails says so in its place and costs the run nothing else."""
    try:
        return make()
    except Exception as exc:  # noqa: BLE001
        log.warning("report: the %s section failed: %s: %s", name, type(exc).__name__, exc)
        return f"<p class='note'>This section failed: {escape(type(exc).__name__)}: {escape(str(exc))}</p>"


def write_report(out: str | os.PathLike | OutStore, summary: CurateSummary | None = None, *,
                 stages: Sequence[StageRun | Mapping[str, Any]] | None = None,
                 thresholds: Mapping[str, float | Sequence[float | None]] | None = None,
                 max_clips: int = MAX_CLIPS, thumbnails: bool = True, workers: int | None = None) -> Path:
    """Write OUT/report.html from OUT's tables; returns its path.

    out: the OUT folder (or its OutStore).
    summary: the curate run's counts (`curation.summary.summarize`); None after captioning/sharding, which
        reuses the last one given.
    stages: each quality stage, in pipeline order, as `StageRun(name, ran, detail)` or a mapping with those
        keys; None reuses the last record (an OUT with none says so).
    thresholds: score column -> the threshold the stage applied: a number, or `(low, high)` with None for an
        open side (e.g. `{"aesthetic_score": 4.5, "exposure": (0.1, 0.9), "text_area": 0.02}`); drawn on that
        score's histogram. None reuses the last ones given.
    max_clips: clips the grid shows at most; larger OUTs show that many, evenly spaced in clip_id order.
    thumbnails: decode thumbnail strips (4 frames, 96 px high) of the shown clips that have none cached.
    workers: decoding threads for the thumbnail strips (default: this machine's CPUs, at most 4).
    """
    store = out if isinstance(out, OutStore) else OutStore(out)
    summary, stage_rows, limits = _remembered(store, summary, stages, thresholds)
    sources = data.read_columns(store.sources_parquet, ["source", "status", "reason", "message", "warning",
                                                       "clips_kept"])
    clips = data.read_light(store.clips_parquet, limits) if store.clips_parquet.exists() else None
    workers = workers or min(4, os.cpu_count() or 1)
    cards, ranges, note, later = _grid(store, clips, limits, max_clips, thumbnails, workers)
    sections = [
        ("facts", "Summary", lambda: render.facts_table(_facts(summary, sources, clips, later))),
        ("quality-stages", "Quality stages", lambda: render.stages_table(stage_rows)),
        ("funnel-section", "Funnel",
         lambda: render.funnel_table(data.funnel(sources, clips, later.captioned, later.sharded))),
        ("scores", "Scores",
         lambda: render.histograms_block(data.histograms(clips, limits) if clips is not None else [])),
        ("labels", "Camera labels by paper class", lambda: render.classes_table(data.labels_by_class(clips))),
        ("browser", "Clips", lambda: render.browser_block(cards, ranges, note)),
        ("sources-section", "Sources", lambda: render.sources_table(*_sources(sources))),
    ]
    html = render.page(f"droplet curate: {store.root}",
                       [(sid, head, _section(head, make)) for sid, head, make in sections])
    write_text_atomic(store.report_path, html)
    log.info("report: %s (%d clips in the grid)", store.report_path, len(cards))
    return store.report_path
