"""OUT/report.html from the parquet tables: written whatever the clips look like, on OUTs of any age."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq

from curation.report import write_report
from curation.store import OutStore
from curation.summary import CurateSummary
from shards.captions import CAPTION_SCHEMA
from shards.schema import CLIP_SCHEMA, SOURCE_SCHEMA


def _clip(i: int, duration: float) -> dict:
    return {"clip_id": f"abc-{i * 100}-{i * 100 + 98}", "source": "/in/a.mp4", "source_id": "abc",
            "start_frame": i * 100, "end_frame": i * 100 + 98, "start_s": 4.0 * i, "end_s": 4.0 * i + duration,
            "fps": 25.0, "num_frames": 98, "width": 1280, "height": 720, "camera_motion": "pan_left",
            "camera_timeline": [], "camera_motion_score": 0.1, "object_motion_score": 0.01, "keep": True}


def _out(tmp_path, clips: list[dict], schema: pa.Schema = CLIP_SCHEMA) -> OutStore:
    """An OUT with one ok source and these clips (no clip files)."""
    store = OutStore(tmp_path / "out")
    store.prepare()
    table = pa.Table.from_pydict({n: [c.get(n) for c in clips] for n in schema.names}, schema=schema)
    pq.write_table(table, store.clips_parquet)
    source = {"source": "/in/a.mp4", "status": "ok", "clips_kept": sum(bool(c["keep"]) for c in clips)}
    pq.write_table(pa.Table.from_pylist([source], schema=SOURCE_SCHEMA), store.sources_parquet)
    return store


def _cards(page: str) -> list[dict]:
    blob = re.search(r"<script type='application/json' id='clip-data'>(.*?)</script>", page, re.S).group(1)
    return json.loads(blob)["clips"]


def test_report_with_clips_of_almost_equal_length(tmp_path):
    """Durations a float rounding apart (3.92 and 3.9200000000000004 s, as a long source cut every 4 s
    gives) once made the duration histogram fail and the whole curate run exit 2."""
    store = _out(tmp_path, [_clip(i, 3.92 + (i % 2) * 4.4e-16) for i in range(6)])
    write_report(store, CurateSummary(sources=1, sources_ok=1, clips=6, clips_kept=6, skipped_files={".m4a": 1}))
    page = store.report_path.read_text()
    assert "section failed" not in page
    durations = page.split("data-score='duration_s'")[1].split("</svg>")[0]
    assert "<b>duration_s</b><div class='note'>6 clips</div>" in durations and durations.count("<rect") == 1
    assert "input files skipped: extension .m4a" in page


def test_an_old_out_without_quality_columns_or_stage_record(tmp_path):
    """clips.parquet as curate wrote it before the quality stages: the report shows what is there."""
    clips = [_clip(i, 3.0) for i in range(4)]
    clips[3].update(keep=False, reject_reason="static")
    store = _out(tmp_path, clips)
    write_report(store.root)
    page = store.report_path.read_text()
    assert "section failed" not in page and "No stage record in this OUT" in page
    assert "data-score='aesthetic_score'" not in page and "data-score='camera_motion_score'" in page
    assert "<td>kept</td><td>3</td>" in page and "rejected: static</td><td>1</td>" in page
    assert "captioned" not in page and "sharded" not in page  # no captions, no shards yet
    cards = _cards(page)
    assert [c["reason"] for c in cards] == [None, None, None, "static"]
    assert all(c["video"] is None and c["thumb"] is None for c in cards)  # no clip files


def test_captions_are_data_not_markup_and_nan_scores_are_empty(tmp_path):
    clips = [_clip(i, 3.0) for i in range(2)]
    clips[0]["camera_motion_score"] = float("nan")
    store = _out(tmp_path, clips)
    hostile = "</script><script>document.title='owned'</script><!--"
    rows = [{"clip_id": clips[0]["clip_id"], "caption": hostile, "qa_passed": True}]
    pq.write_table(pa.Table.from_pylist(rows, schema=CAPTION_SCHEMA), store.layout.captions_parquet)
    write_report(store)
    page = store.report_path.read_text()
    assert hostile not in page and page.count("</script>") == 2  # the data blob and the browser script
    cards = _cards(page)
    assert cards[0]["caption"] == hostile and cards[0]["scores"]["camera_motion_score"] is None


def test_a_later_call_reuses_the_curate_facts_stages_and_thresholds(tmp_path):
    store = _out(tmp_path, [_clip(i, 3.0) for i in range(3)])
    write_report(store, CurateSummary(sources=1, sources_ok=1, seconds=12.5, skipped_files={".txt": 2}),
                 stages=[{"name": "ocr", "ran": False, "detail": "no weights configured"}],
                 thresholds={"camera_motion_score": 0.05})
    write_report(store.root)  # as `droplet caption` does
    page = store.report_path.read_text()
    assert "input files skipped: extension .txt" in page and "<td>12.5</td>" in page
    assert "<td class='skipped'>skipped</td><td>no weights configured</td>" in page
    assert page.split("data-score='camera_motion_score'")[1].split("</svg>")[0].count("class='threshold'") == 1


def test_an_out_whose_every_source_was_rejected(tmp_path):
    store = OutStore(tmp_path / "out")
    store.prepare()
    rows = [{"source": "/in/x.mp4", "status": "rejected", "reason": "not_a_video", "message": "not a media file"}]
    pq.write_table(pa.Table.from_pylist(rows, schema=SOURCE_SCHEMA), store.sources_parquet)
    write_report(store, CurateSummary(sources=1))
    page = store.report_path.read_text()
    assert "section failed" not in page and "rejected: not_a_video</td><td>1</td>" in page
    assert "<td>clips cut</td><td>0</td>" in page and _cards(page) == []
