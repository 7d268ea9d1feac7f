"""The Ray Data stages of `curate`, one small function (or callable class, for the model) each.

Every stage turns its own failures into row fields (reason + message), so a bad source or clip never fails
a block, let alone the dataset. Decoding runs in a child process under a time limit (`sandbox`).
"""

from __future__ import annotations

import json
import pickle
from typing import Any

from curation import reasons
from curation.config import CurateConfig
from curation.reasons import Rejected


def _config(config: dict) -> CurateConfig:
    return CurateConfig.model_validate(config)


def _fail(row: dict, exc: BaseException) -> dict:
    if isinstance(exc, Rejected):
        return {**row, "reason": exc.reason, "message": exc.message}
    return {**row, "reason": reasons.DECODE_ERROR, "message": f"{type(exc).__name__}: {exc}"}


def probe_row(row: dict, config: dict) -> dict:
    """Hash + probe one source: adds `probe` (JSON) or `reason` / `message`."""
    from curation.probe import probe_source
    from curation.sandbox import run_isolated

    cfg = _config(config)
    out = {"key": row["key"], "source": row["source"], "probe": None, "reason": None, "message": None}
    try:
        info = run_isolated(probe_source, row["source"], cfg, timeout_s=cfg.timeouts.probe_s)
        out["probe"] = json.dumps(info.to_row())
    except Exception as exc:  # noqa: BLE001
        out = _fail(out, exc)
    return out


def _analyze_in_child(source: str, cfg: CurateConfig, keep_thumbs: bool, fps: float) -> bytes:
    from curation.analyze import analyze_source
    from curation.cuts import detect_cuts
    analysis = analyze_source(source, cfg.analysis, cfg.scenes, keep_thumbs=keep_thumbs, fps=fps)
    cuts: list[int] = []
    if not keep_thumbs:
        cuts, score = detect_cuts(analysis.features, cfg.scenes)
        analysis.features["cut_score"] = score
    return pickle.dumps((analysis, cuts), protocol=pickle.HIGHEST_PROTOCOL)


def analyze_row(row: dict, config: dict) -> dict:
    """The one decode pass (and, but for TransNetV2, the cuts): adds `blob` or `reason`."""
    from curation.sandbox import run_isolated

    cfg = _config(config)
    probe = json.loads(row["probe"])
    limit = cfg.timeouts.analyze_base_s + cfg.timeouts.analyze_per_video_s * probe["duration_s"]
    out = {**row, "blob": None, "reason": None, "message": None}
    try:
        keep_thumbs = cfg.scenes.detector == "transnetv2"
        out["blob"] = run_isolated(_analyze_in_child, row["source"], cfg, keep_thumbs, probe["fps"], timeout_s=limit)
    except Exception as exc:  # noqa: BLE001
        out = _fail(out, exc)
    return out


class TransNetV2Stage:
    """Cuts from TransNetV2 for rows analysed with thumbnails. Holds the model: one per actor."""

    def __init__(self, config: dict):
        from curation.transnet import TransNetV2Model

        self.cfg = _config(config)
        self.model = TransNetV2Model()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from curation.transnet import cuts_from_probabilities

        blobs = list(batch["blob"])
        reasons_ = list(batch["reason"])
        messages = list(batch["message"])
        for i, blob in enumerate(blobs):
            if blob is None:
                continue
            try:
                analysis, _ = pickle.loads(blob)
                probs = self.model.probabilities(analysis.thumbs)
                cuts = cuts_from_probabilities(probs, self.cfg.scenes.transnet_threshold)
                peak = np.maximum(probs, np.concatenate([[0.0], probs[:-1]]))  # the peak sits just before a cut
                analysis.features["cut_score"] = peak / self.cfg.scenes.transnet_threshold
                analysis.thumbs = None
                blobs[i] = pickle.dumps((analysis, cuts), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # noqa: BLE001
                blobs[i], reasons_[i], messages[i] = None, reasons.DECODE_ERROR, f"TransNetV2: {exc}"
        return {**batch, "blob": blobs, "reason": reasons_, "message": messages}


def plan_row(row: dict, config: dict, out_dir: str) -> list[dict]:
    """Scenes and clips of one source, saved as its plan; one row per clip file to write.

    A source with nothing to write still yields one row (`clip_id` None) so the driver can commit it.
    """
    from curation.clips import plan_clips
    from curation.store import OutStore

    cfg = _config(config)
    store = OutStore(out_dir)
    base = {"key": row["key"], "source": row["source"], "clip_id": None, "spec": None, "expected": 0,
            "reason": row.get("reason"), "message": row.get("message")}
    if row.get("blob") is None:
        return [base]
    try:
        analysis, cuts = pickle.loads(row["blob"])
        probe = json.loads(row["probe"])
        scenes, clips = plan_clips(analysis, cuts, probe, row["source"], cfg)
        plan = {
            "probe": probe,
            "decoded_frames": analysis.num_frames,
            "stopped_early": analysis.stopped_early,
            "scenes": scenes,
            "clips": [{"row": c.row, "start_pts": c.start_pts, "start_abs_s": c.start_abs_s,
                       "end_abs_s": c.end_abs_s} for c in clips],
        }
        store.save(store.plan_path(row["key"]), plan)
    except Exception as exc:  # noqa: BLE001
        return [_fail(base, exc)]
    return clip_rows(row["key"], row["source"], plan, store) or [base]


def clip_rows(key: str, source: str, plan: dict, store) -> list[dict]:  # noqa: ANN001
    """Rows for the planned clips that are kept and not written yet."""
    todo = [c for c in plan["clips"] if c["row"]["keep"] and store.load(store.clip_result_path(c["row"]["clip_id"]))
            is None]
    rows = []
    for c in todo:
        r = c["row"]
        spec = {"source": source, "start_frame": r["start_frame"], "end_frame": r["end_frame"],
                "start_pts": c["start_pts"], "start_s": c["start_abs_s"], "end_s": c["end_abs_s"],
                "fps": plan["probe"]["fps"], "rotation": plan["probe"]["rotation"],
                "out_path": str(store.clip_file(r["clip_id"]))}
        rows.append({"key": key, "source": source, "clip_id": r["clip_id"], "spec": json.dumps(spec),
                     "expected": len(todo), "reason": None, "message": None})
    return rows


def _extract_in_child(spec: dict, cfg: CurateConfig) -> dict:
    from curation.extract import ClipSpec, extract_clip

    return extract_clip(ClipSpec(**spec), cfg.extract)


def extract_row(row: dict, config: dict, out_dir: str) -> dict:
    """Write one clip file (in a child process, under a time limit) and record its facts."""
    from curation.sandbox import run_isolated
    from curation.store import OutStore

    if row.get("clip_id") is None:
        return row
    cfg = _config(config)
    store = OutStore(out_dir)
    spec = json.loads(row["spec"])
    limit = cfg.timeouts.extract_base_s + cfg.timeouts.extract_per_clip_s * (spec["end_s"] - spec["start_s"])
    try:
        facts = run_isolated(_extract_in_child, spec, cfg, timeout_s=limit)
        result = {"ok": True, **facts}
    except Exception as exc:  # noqa: BLE001
        failed = _fail({}, exc)
        result = {"ok": False, "reason": failed["reason"], "message": failed["message"]}
    store.save(store.clip_result_path(row["clip_id"]), result)
    return {**row, "spec": None}
