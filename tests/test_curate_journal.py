"""The curate driver's journal and commits, without Ray: what a re-run finds, it uses; every source that reaches
the driver is committed exactly once; a Ctrl-C is never journaled as a bad source."""

from __future__ import annotations

import os
import signal

from curation.config import CurateConfig
from curation.pipeline import CommitTracker, _ray_address
from curation.rows import ClipResult, SourcePlan, unwrap
from curation.sandbox import run_isolated
from curation.stages import clip_plans
from curation.store import OutStore

INFO = {"source_id": "abc", "fps": 25.0, "rotation": 0, "duration_s": 4.0}


def _plan(kept: list[str]) -> SourcePlan:
    clips = [{"clip_id": cid, "keep": True, "reject_reason": None, "start_frame": 0, "end_frame": 70} for cid in kept]
    extract = {cid: {"start_frame": 0, "end_frame": 70, "start_pts": 0, "start_s": 0.0, "end_s": 2.8}
               for cid in kept}
    return SourcePlan("key", "/in/a.mp4", INFO, decoded_frames=100, scenes=[], clips=clips, extract=extract)


def _facts() -> dict:
    return {"num_frames": 70, "fps": 25.0, "width": 640, "height": 360, "bytes": 1000}


def test_clips_the_journal_holds_count_for_a_fresh_plan(tmp_path):
    """A source planned again (its input moved, say) whose clips a killed run wrote: committed at once."""
    store = OutStore(tmp_path / "out")
    store.prepare()
    store.save_clip_result(ClipResult("other-key", "abc-0-70", facts=_facts()))
    rows = [unwrap(r) for r in clip_plans(_plan(["abc-0-70", "abc-80-150"]), store)]
    assert [type(r).__name__ for r in rows] == ["SourcePlan", "ClipPlan"] and rows[1].clip_id == "abc-80-150"
    tracker = CommitTracker(store, total=1)
    tracker.add(rows[0])
    assert not store.committed()
    tracker.add(ClipResult("key", "abc-80-150", facts=_facts()))
    commit = store.committed()["key"]
    assert [c["file_bytes"] for c in commit["clips"]] == [1000, 1000] and tracker.bar.n == 1
    tracker.close()


def test_a_plan_with_nothing_to_write_is_committed_once(tmp_path):
    store = OutStore(tmp_path / "out")
    store.prepare()
    tracker = CommitTracker(store, total=1)
    for row in clip_plans(_plan([]), store):
        tracker.add(unwrap(row))
    assert list(store.committed()) == ["key"] and tracker.bar.n == 1 and not tracker.plans
    tracker.close()


def _interrupted() -> str:
    os.kill(os.getpid(), signal.SIGINT)  # what a Ctrl-C in the terminal sends the whole process group
    return "finished"


def test_a_ctrl_c_does_not_turn_a_child_into_a_decode_error():
    assert run_isolated(_interrupted, timeout_s=60) == "finished"


def test_ray_address_order(monkeypatch):
    cfg = CurateConfig.model_validate({"ray": {"address": "10.0.0.1:6379"}})
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert _ray_address(cfg, "127.0.0.1:7000") == "127.0.0.1:7000"
    assert _ray_address(cfg, None) == "127.0.0.1:6379"
    monkeypatch.delenv("RAY_ADDRESS")
    assert _ray_address(cfg, None) == "10.0.0.1:6379" and _ray_address(CurateConfig(), None) is None


def test_prepare_removes_what_a_killed_writer_left(tmp_path):
    store = OutStore(tmp_path / "out")
    store.prepare()
    left = [store.root / f".clips.parquet.tmp-{os.getpid()}", store.clips_dir / "x.mp4.tmp-7",
            store.work / "plans" / ".k.json.tmp-7"]
    for path in left:
        path.write_text("partial")
    store.prepare()
    assert not [p for p in left if p.exists()]
