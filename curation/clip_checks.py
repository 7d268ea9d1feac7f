"""The checks on a written clip file, after extraction: technical quality, text overlays (OCR), the
near-duplicate hashes, and (when CLIP weights are configured) embeddings, aesthetic score and scene tags.

Each check adds its results to the clip's facts (`ClipResult.facts`), which the extract stage journals, so a
re-run does not redo them:

- `checks`: `{"sharpness", "exposure", "text_area", "ocr_text", "dedup_hashes", "reject"}` where `reject` is
  `[reason, message]` or None; a key is None when its check did not run.
- `scores` (CLIP): `{"aesthetic_score", "scene_tags", "reject"}`; the embedding goes to `EmbeddingStore`.

A clip that fails a check keeps its file and its scores (`reject` carries the reason). A clip file the checks
cannot read is rejected `decode_error` with the message, never a crash. Near-duplicates are not judged here
(workers only hash): the driver judges them in clip_id order at the end of a run (`curation.decisions`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from curation import reasons
from curation.config import CurateConfig
from curation.rows import ClipResult, unwrap, wrap
from curation.store import OutStore
from runtime.faults import maybe_fail

log = logging.getLogger("droplet.curate")

CHECKS, SCORES = "checks", "scores"


@dataclass(frozen=True)
class StagePlan:
    """Which clip stages a config runs, and why each skipped one does not."""

    ran: dict[str, str]  # stage -> what it does
    skipped: dict[str, str]  # stage -> why not

    @property
    def checks(self) -> bool:
        return any(s in self.ran for s in ("quality", "ocr", "dedup"))

    @property
    def clip(self) -> bool:
        return "embeddings" in self.ran


def stage_plan(cfg: CurateConfig) -> StagePlan:
    """The clip stages of `cfg`: quality, ocr, dedup (no weights needed), embeddings, aesthetic, scene_tags, and
    selection."""
    from curation.clip_scoring import skipped_stages

    ran, skipped = {}, {}
    for name, on, what in (("quality", cfg.quality.enabled, "sharpness, exposure, blockiness, size"),
                           ("ocr", cfg.ocr.enabled, "text overlays (RapidOCR)"),
                           ("dedup", cfg.dedup.enabled, "near-duplicates (pHash)")):
        if on:
            ran[name] = what
        else:
            skipped[name] = f"{name}.enabled is false"
    clip_skipped = skipped_stages(cfg.embeddings, cfg.aesthetic, cfg.scene_tags)
    for name, what in (("embeddings", "CLIP embeddings"), ("aesthetic", "aesthetic score"),
                       ("scene_tags", "zero-shot scene tags")):
        if name in clip_skipped:
            skipped[name] = f"no weights: {clip_skipped[name]}" if "is not set" in clip_skipped[name] \
                else clip_skipped[name]
        else:
            ran[name] = what
    if cfg.selection.enabled:
        ran["selection"] = f"keep {', '.join(cfg.selection.keep_classes)}, C5 up to {cfg.selection.static_share:.0%}"
    else:
        skipped["selection"] = "selection.enabled is false"
    return StagePlan(ran, skipped)


def needs(result: ClipResult, plan: StagePlan) -> bool:
    """The clip file is written and a check the plan runs has not been done on it yet."""
    if result.failure is not None or result.facts is None:
        return False
    return (plan.checks and CHECKS not in result.facts) or (plan.clip and SCORES not in result.facts)


def check_clip(path: str, width: int, height: int, cfg: CurateConfig, reader) -> dict:  # noqa: ANN001
    """The `checks` facts of one clip file; `reader` is a `TextOverlayReader` (None: OCR off)."""
    from curation.clip_sample import sample_frames
    from curation.dedup import file_hashes
    from curation.quality import judge_quality, measure_quality

    out = {"sharpness": None, "exposure": None, "text_area": None, "ocr_text": None, "dedup_hashes": None,
           "reject": None}
    if cfg.quality.enabled:
        scores = measure_quality(sample_frames(path, cfg.quality.frames))
        if scores is not None:
            out.update(scores.to_row())
        detail = judge_quality(scores, width, height, cfg.quality)
        if detail is not None:
            out["reject"] = [reasons.LOW_QUALITY, detail]
    if reader is not None:
        area, text = reader(sample_frames(path, cfg.ocr.frames, cfg.ocr.max_side))
        out["text_area"], out["ocr_text"] = round(area, 6), text
        if area > cfg.ocr.max_text_area and out["reject"] is None:
            out["reject"] = [reasons.TEXT_OVERLAY, f"text covers {area:.3f} of a frame > {cfg.ocr.max_text_area}"
                             f"{': ' + text[:80] if text else ''}"]
    if cfg.dedup.enabled:
        out["dedup_hashes"] = [[int(v) for v in row] for row in file_hashes(path, cfg.dedup)]
    return out


class ClipCheckStage:
    """ClipResult -> ClipResult with its `checks` facts (journaled). Holds an OCR engine per thread (Ray actor,
    or a thread of the local executor). Other rows pass through."""

    def __init__(self, cfg: CurateConfig, store: OutStore):
        self.cfg, self.store = cfg, store
        self.plan = stage_plan(cfg)
        self._local = threading.local()

    def _reader(self):  # noqa: ANN202 - a TextOverlayReader, or None
        if not self.cfg.ocr.enabled:
            return None
        if getattr(self._local, "reader", None) is None:
            from curation.ocr import TextOverlayReader

            self._local.reader = TextOverlayReader(self.cfg.ocr)
        return self._local.reader

    def __call__(self, row: dict) -> dict:
        item = unwrap(row)
        if not isinstance(item, ClipResult) or not self.plan.checks or not needs(item, self.plan) \
                or CHECKS in item.facts:
            return row
        path = str(self.store.clip_file(item.clip_id))
        with self.store.attempt("checks", item.clip_id):
            try:
                item.facts[CHECKS] = check_clip(path, item.facts["width"], item.facts["height"], self.cfg,
                                                self._reader())
            except Exception as exc:  # noqa: BLE001 - an unreadable clip file is this clip's reason
                item.facts[CHECKS] = {"reject": [reasons.DECODE_ERROR,
                                                 f"clip checks: {type(exc).__name__}: {exc}"]}
            maybe_fail("checks")
            self.store.save_clip_result(item)
        return wrap(item)


class ClipScoreStage:
    """ClipResult -> ClipResult with its CLIP `scores` facts (journaled) and its embedding in the OUT's
    embedding store. Holds the CLIP model (loaded once per actor / executor); calls are serialised."""

    def __init__(self, cfg: CurateConfig, store: OutStore):
        from curation.clip_scoring import ClipScorer
        from curation.embedding_store import EmbeddingStore

        self.cfg, self.store = cfg, store
        self.plan = stage_plan(cfg)
        self.scorer = ClipScorer(cfg.embeddings, cfg.aesthetic, cfg.scene_tags)
        self.embeddings = EmbeddingStore(store.root)
        self._lock = threading.Lock()

    def __call__(self, row: dict) -> dict:
        item = unwrap(row)
        if not isinstance(item, ClipResult) or not needs(item, self.plan) or SCORES in item.facts:
            return row
        try:
            with self._lock:
                scores = self.scorer(self.store.clip_file(item.clip_id))
            if scores.error is not None:
                reason, _, message = scores.error.partition(": ")
                item.facts[SCORES] = {"reject": [reason, message]}
            else:
                self.embeddings.write_batch(item.clip_id, [item.clip_id], scores.embedding[None, :],
                                            {"model": self.scorer.embedder.name})
                reject = None
                if scores.reject_reason:
                    reject = [reasons.LOW_AESTHETIC, f"aesthetic score {scores.aesthetic_score:.2f} < "
                              f"{self.scorer.threshold}"]
                item.facts[SCORES] = {"aesthetic_score": scores.aesthetic_score, "scene_tags": scores.scene_tags,
                                      "reject": reject}
        except Exception as exc:  # noqa: BLE001
            item.facts[SCORES] = {"reject": [reasons.DECODE_ERROR, f"CLIP scoring: {type(exc).__name__}: {exc}"]}
        self.store.save_clip_result(item)
        return wrap(item)


def clip_columns(facts: dict) -> tuple[dict, list | None]:
    """The clips.parquet columns of a written clip's facts, and the first check's `[reason, message]` (or
    None)."""
    checks, scores = facts.get(CHECKS) or {}, facts.get(SCORES) or {}
    columns = {"crop": facts.get("crop"), "sharpness": checks.get("sharpness"), "exposure": checks.get("exposure"),
               "text_area": checks.get("text_area"), "ocr_text": checks.get("ocr_text"),
               "aesthetic_score": scores.get("aesthetic_score"), "scene_tags": scores.get("scene_tags")}
    return columns, checks.get("reject") or scores.get("reject")
