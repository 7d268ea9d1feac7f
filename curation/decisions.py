"""Decisions over the whole OUT, taken by the driver at the end of each run: near-duplicates and selection.

Near-duplicates are judged where the commits are ordered, not in the workers (they only hash): every kept clip
the index has not judged yet, source by source in input order (as exact duplicates are), each source's clips in
clip_id order (`DuplicateIndex.judge`), after everything earlier runs committed to `OUT/dedup/`. So the first
committed clip wins across runs, and within a run the outcome does not depend on worker timing (or on a kill
and resume).

Selection (`selection.enabled`) then runs over every clip still kept: `keep_classes` stay, C5 stays up to
`static_share` of the kept clips (best aesthetic_score first, then clip_id), the rest is `not_selected`; clips
already in a shard (`OUT/shards/index.parquet`) are never unselected.

Both are written to `OUT/_work/decisions.json` (clip_id -> reason, message, duplicate_of), which the tables and
the summary apply over the commit files.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from curation import reasons
from curation.config import CurateConfig, SelectionConfig
from curation.store import OutStore

log = logging.getLogger("droplet.curate")

STATIC_CLASS = "C5"


def decide(store: OutStore, cfg: CurateConfig) -> dict[str, dict]:
    """Judge near-duplicates, select, write `decisions.json`; returns the decisions."""
    committed = store.committed()
    kept = sorted(((key, clip) for key, c in committed.items() for clip in c.get("clips", []) if clip["keep"]),
                  key=lambda kc: kc[1]["clip_id"])
    decisions: dict[str, dict] = {}
    if cfg.dedup.enabled:
        decisions.update(judge_duplicates(store, cfg, kept))
    if cfg.selection.enabled:
        rows = [clip for _, clip in kept if clip["clip_id"] not in decisions]
        decisions.update(select(rows, sharded_clips(store), cfg.selection))
    store.save(store.layout.decisions, decisions)
    return decisions


def judge_duplicates(store: OutStore, cfg: CurateConfig, kept: list[tuple[str, dict]]) -> dict[str, dict]:
    """The near-duplicate decisions of every kept clip (earlier runs' from the index, the rest judged now)."""
    from curation.dedup import ClipSignature, DuplicateIndex

    index = DuplicateIndex.open(store.root, cfg.dedup)
    embeddings = _embeddings(store) if cfg.dedup.embedding_cosine < 1 else {}
    by_source: dict[str, list] = {}
    for key, clip in kept:
        cid = clip["clip_id"]
        if cid in index:
            continue
        result = store.clip_result(key, cid)
        hashes = ((result.facts or {}).get("checks") or {}).get("dedup_hashes") if result else None
        if hashes is None:
            continue
        matrix = np.array(hashes, dtype=np.uint64).reshape(len(hashes), cfg.dedup.views)
        by_source.setdefault(clip["source"], []).append(ClipSignature(cid, matrix, embeddings.get(cid)))
    for source in sorted(by_source):  # input order (as for exact duplicates), then clip_id order
        index.judge(by_source[source])
    index.commit()
    batch = [sig for sigs in by_source.values() for sig in sigs]
    found = {}
    for _, clip in kept:
        first = index.decisions.get(clip["clip_id"])
        if first is not None:
            found[clip["clip_id"]] = {"reason": reasons.NEAR_DUPLICATE, "message": f"looks like {first}",
                                      "duplicate_of": first}
    log.info("dedup: %d clip(s) judged now, %d near-duplicate(s) of %d kept", len(batch), len(found), len(kept))
    return found


def _embeddings(store: OutStore) -> dict[str, np.ndarray]:
    from curation.embedding_store import EmbeddingStore

    embeddings = EmbeddingStore(store.root)
    if not embeddings.batch_files():
        return {}
    ids, matrix = embeddings.load()
    return dict(zip(ids, matrix, strict=True))


def sharded_clips(store: OutStore) -> set[str]:
    """clip_ids already in a shard of this OUT."""
    import pyarrow.parquet as pq

    path = store.layout.shards_dir / "index.parquet"
    return set(pq.read_table(path, columns=["clip_id"]).column(0).to_pylist()) if path.exists() else set()


def select(rows: list[dict], sharded: set[str], cfg: SelectionConfig) -> dict[str, dict]:
    """`not_selected` decisions over kept clip rows: other classes than keep_classes and C5 go (unless sharded);
    C5 stays up to `static_share` of the kept clips, best aesthetic_score first (then clip_id)."""
    out: dict[str, dict] = {}
    statics = [r for r in rows if r.get("paper_class") == STATIC_CLASS and STATIC_CLASS not in cfg.keep_classes]
    static_ids = {r["clip_id"] for r in statics}
    kept_other = 0
    for r in rows:
        cls = r.get("paper_class")
        if r["clip_id"] in static_ids:
            continue
        if cls in cfg.keep_classes or r["clip_id"] in sharded:
            kept_other += 1
        else:
            out[r["clip_id"]] = {"reason": reasons.NOT_SELECTED, "message": f"class {cls} is not selected",
                                 "duplicate_of": None}
    # n statics kept with n <= share * (kept_other + n)
    room = math.floor(cfg.static_share * kept_other / (1 - cfg.static_share) + 1e-9)
    forced = [r for r in statics if r["clip_id"] in sharded]
    ranked = sorted((r for r in statics if r["clip_id"] not in sharded),
                    key=lambda r: (-(r.get("aesthetic_score") if r.get("aesthetic_score") is not None
                                     else -math.inf), r["clip_id"]))
    for r in ranked[max(0, room - len(forced)):]:
        out[r["clip_id"]] = {"reason": reasons.NOT_SELECTED,
                             "message": f"static (C5) over selection.static_share {cfg.static_share}",
                             "duplicate_of": None}
    return out


def apply_decisions(row: dict, decisions: dict[str, dict]) -> dict:
    """A committed clip row with its decision (if any) applied: not kept, the reason, `duplicate_of`."""
    decision = decisions.get(row["clip_id"])
    if decision is None or not row["keep"]:
        return row
    return {**row, "keep": False, "reject_reason": decision["reason"], "reject_message": decision["message"],
            "duplicate_of": decision["duplicate_of"]}
