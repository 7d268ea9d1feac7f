"""The Ray Data stages of `curate`: one small callable each (a class when it holds a model), typed rows in
and out (`curation.rows`).

Every stage turns its own failures into row fields, so a bad source or clip never fails a block, let alone
the dataset. Decoding runs in a child process under a time limit (`sandbox`). The config arrives validated
(a `CurateConfig` pickled by Ray), so no worker validates it again. A stage that produces a result a later
run resumes from writes it to the journal (`OutStore`) itself.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from curation import reasons
from curation.config import CurateConfig
from curation.reasons import Rejected
from curation.rows import (
    Analysis,
    ClipPlan,
    ClipResult,
    Failure,
    Probe,
    SourcePlan,
    SourceTask,
    unwrap,
    wrap,
)
from curation.store import OutStore
from runtime.faults import maybe_fail

Planner = Callable[[Analysis, CurateConfig], tuple[list[dict], list, str | None]]
"""An analysed source -> its scenes rows, its `curation.clips.PlannedClip`s, a warning for its source row."""


def failure_of(exc: BaseException) -> Failure:
    """A reason code for any exception: a `Rejected` keeps its own, anything else is a decode error."""
    if isinstance(exc, Rejected):
        return Failure(exc.reason, exc.message)
    return Failure(reasons.DECODE_ERROR, f"{type(exc).__name__}: {exc}")


def probe_stage(row: dict, cfg: CurateConfig, store: OutStore) -> dict:
    """SourceTask -> Probe: hash + probe one source (journaled, so a re-run does not hash again)."""
    from curation.probe import probe_source
    from curation.sandbox import run_isolated

    task: SourceTask = unwrap(row)
    probe = Probe(task.key, task.source)
    try:
        probe.info = run_isolated(probe_source, task.source, cfg, timeout_s=cfg.timeouts.probe_s).to_row()
    except Exception as exc:  # noqa: BLE001 - every failure becomes a reason code
        probe.failure = failure_of(exc)
    store.save_probe(probe)
    return wrap(probe)


def _analyze_in_child(source: str, cfg: CurateConfig, keep_thumbs: bool, fps: float) -> bytes:
    from curation.analyze import analyze_source
    from curation.cuts import detect_cuts

    analysis = analyze_source(source, cfg.analysis, cfg.scenes, keep_thumbs=keep_thumbs, fps=fps)
    cuts = None
    if not keep_thumbs:
        cuts, score = detect_cuts(analysis.features, cfg.scenes)
        analysis.features["cut_score"] = score
    return pickle.dumps((analysis, cuts), protocol=pickle.HIGHEST_PROTOCOL)


def analyze_stage(row: dict, cfg: CurateConfig, store: OutStore | None = None) -> dict:
    """Probe -> Analysis: the one decode pass (and, but for TransNetV2, the cuts). A local file that changed
    since its probe, before or during the pass, is `changed`: its frames are not the bytes its source_id names.
    With `store`, the attempt is counted in its journal (a retry after a dead worker is logged)."""
    from curation.probe import check_unchanged, probed_stamp
    from curation.sandbox import run_isolated

    probe: Probe = unwrap(row)
    result = Analysis(probe.key, probe.source, probe.info)
    limit = cfg.timeouts.analyze_base_s + cfg.timeouts.analyze_per_video_s * probe.info["duration_s"]
    with store.attempt("analysis", probe.key) if store is not None else nullcontext():
        try:
            keep_thumbs = cfg.scenes.detector == "transnetv2"
            check_unchanged(probe.source, probed_stamp(probe.info), "between its probe and its analysis")
            blob = run_isolated(_analyze_in_child, probe.source, cfg, keep_thumbs, probe.info["fps"],
                                timeout_s=limit)
            check_unchanged(probe.source, probed_stamp(probe.info), "while it was analysed")
            result.analysis, result.cuts = pickle.loads(blob)
            del blob  # the row is pickled again on return: hold the analysis once, not twice
        except Exception as exc:  # noqa: BLE001
            result.failure = failure_of(exc)
        maybe_fail("analysis")
    return wrap(result)


class TransNetV2Stage:
    """Analysis -> Analysis with TransNetV2's cuts (rows analysed with thumbnails). Holds the model: it reseeds
    torch for its whole process, so it runs in an actor of its own."""

    def __init__(self, cfg: CurateConfig):
        from curation.transnet import TransNetV2Model

        self.cfg = cfg
        self.model = TransNetV2Model()

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from curation.transnet import cuts_from_probabilities

        item: Analysis = unwrap(row)
        if item.analysis is None:
            return row
        try:
            threshold = self.cfg.scenes.transnet_threshold
            probs = self.model.probabilities(item.analysis.thumbs)
            item.cuts = cuts_from_probabilities(probs, threshold)
            peak = np.maximum(probs, np.concatenate([[0.0], probs[:-1]]))  # the peak sits just before a cut
            item.analysis.features["cut_score"] = peak / threshold
            item.analysis.thumbs = None
        except Exception as exc:  # noqa: BLE001
            item.analysis, item.failure = None, Failure(reasons.DECODE_ERROR, f"TransNetV2: {exc}")
        return wrap(item)


def curate_planner(item: Analysis, cfg: CurateConfig) -> tuple[list[dict], list, str | None]:
    """curate's plan of one analysed source: scenes from its cuts, clips from its scenes (no warning)."""
    from curation.clips import plan_clips

    scenes, clips = plan_clips(item.analysis, item.cuts or [], item.info, item.source, cfg)
    return scenes, clips, None


def plan_stage(row: dict, cfg: CurateConfig, store: OutStore, planner: Planner = curate_planner) -> list[dict]:
    """Analysis -> [SourcePlan, ClipPlan for each clip to write]: scenes and clips of one source (journaled).

    `planner` makes the scenes rows, the `PlannedClip`s and a warning for the source row (or None) from the
    analysis: curate's by default; `droplet import-droplet` plans the clips its metadata lists. A source that
    failed yields its SourcePlan alone, carrying the failure.
    """
    item: Analysis = unwrap(row)
    plan = SourcePlan(item.key, item.source, item.info, failure=item.failure)
    if item.analysis is None:
        return [wrap(plan)]
    try:
        scenes, clips, warning = planner(item, cfg)
        if warning:
            plan.info = {**item.info, "warning": "; ".join(filter(None, [item.info.get("warning"), warning]))}
        plan.decoded_frames = item.analysis.num_frames
        plan.stopped_early = item.analysis.stopped_early
        plan.scenes = scenes
        plan.clips = [c.row for c in clips]
        plan.extract = {c.row["clip_id"]: c.extract for c in clips if c.row["keep"]}
        store.save_plan(plan)
    except Exception as exc:  # noqa: BLE001
        return [wrap(SourcePlan(item.key, item.source, item.info, failure=failure_of(exc)))]
    return clip_plans(plan, store, cfg)


def clip_plans(plan: SourcePlan, store: OutStore, cfg: CurateConfig | None = None) -> list[dict]:
    """The plan's rows: the SourcePlan (carrying the results of kept clips the journal holds already), then a
    ClipPlan for each kept clip still to write, and the journaled ClipResults the checks of `cfg` still need."""
    from curation.clip_checks import needs, stage_plan
    from curation.extract import ClipSpec
    from curation.probe import probed_stamp

    journaled = {cid: store.clip_result(plan.key, cid) for cid in plan.extract}
    stages = stage_plan(cfg) if cfg is not None else None
    unchecked = [r for r in journaled.values() if r is not None and stages is not None and needs(r, stages)]
    redo = {r.clip_id for r in unchecked}
    plan.done = {cid: result for cid, result in journaled.items() if result is not None and cid not in redo}
    rows = [wrap(plan), *(wrap(r) for r in unchecked)]
    for cid in (c for c in plan.extract if c not in plan.done):
        spec = ClipSpec(source=plan.source, fps=plan.info["fps"], rotation=plan.info["rotation"],
                        out_path=str(store.clip_file(cid)), probed=probed_stamp(plan.info), **plan.extract[cid])
        rows.append(wrap(ClipPlan(plan.key, cid, spec)))
    return rows


def _extract_in_child(spec, cfg: CurateConfig) -> dict:  # noqa: ANN001 - a ClipSpec
    from curation.extract import extract_clip

    return extract_clip(spec, cfg.extract)


def extract_stage(row: dict, cfg: CurateConfig, store: OutStore) -> dict:
    """ClipPlan -> ClipResult: write one clip file (in a child process, under a time limit), journal its facts.
    Other rows (the SourcePlans) pass through. A clip whose source changed since its probe is `changed`, and its
    file is removed (it would not hold the bytes its clip_id names)."""
    from curation.probe import check_unchanged
    from curation.sandbox import run_isolated

    item = unwrap(row)
    if not isinstance(item, ClipPlan):
        return row
    spec = item.spec
    limit = cfg.timeouts.extract_base_s + cfg.timeouts.extract_per_clip_s * (spec.end_s - spec.start_s)
    result = ClipResult(item.key, item.clip_id)
    with store.attempt("extraction", item.clip_id):
        try:
            check_unchanged(spec.source, spec.probed, "before this clip was written")
            result.facts = run_isolated(_extract_in_child, spec, cfg, timeout_s=limit)
            check_unchanged(spec.source, spec.probed, "while this clip was written")
        except Exception as exc:  # noqa: BLE001
            result.facts, result.failure = None, failure_of(exc)
            if result.failure.reason == reasons.CHANGED:
                Path(spec.out_path).unlink(missing_ok=True)
        maybe_fail("extraction")  # the clip file is written, its journal entry not yet
        store.save_clip_result(result)
    return wrap(result)
