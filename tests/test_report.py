"""OUT/report.html from the parquet tables: written whatever the clips look like."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from curation.report import write_report
from curation.store import OutStore
from curation.summary import CurateSummary
from shards.schema import CLIP_SCHEMA, SOURCE_SCHEMA


def _clip(i: int, duration: float) -> dict:
    return {"clip_id": f"abc-{i * 100}-{i * 100 + 98}", "source": "/in/a.mp4", "source_id": "abc",
            "start_frame": i * 100, "end_frame": i * 100 + 98, "start_s": 4.0 * i, "end_s": 4.0 * i + duration,
            "fps": 25.0, "num_frames": 98, "width": 1280, "height": 720, "camera_motion": "pan_left",
            "camera_timeline": [], "camera_motion_score": 0.1, "object_motion_score": 0.01, "keep": True}


def test_report_with_clips_of_almost_equal_length(tmp_path):
    """Durations a float rounding apart (3.92 and 3.9200000000000004 s, as a long source cut every 4 s
    gives) once made matplotlib refuse the histogram and the whole curate run exit 2."""
    store = OutStore(tmp_path / "out")
    store.prepare()
    clips = [_clip(i, 3.92 + (i % 2) * 4.4e-16) for i in range(6)]
    table = pa.Table.from_pydict({n: [c.get(n) for c in clips] for n in CLIP_SCHEMA.names}, schema=CLIP_SCHEMA)
    pq.write_table(table, store.clips_parquet)
    source = {"source": "/in/a.mp4", "status": "ok", "clips_kept": 6}
    pq.write_table(pa.Table.from_pylist([source], schema=SOURCE_SCHEMA), store.sources_parquet)
    write_report(store, CurateSummary(sources=1, sources_ok=1, clips=6, clips_kept=6, skipped_files={".m4a": 1}))
    page = store.report_path.read_text()
    assert "Kept clip durations" in page and "plots failed" not in page
    assert "input files skipped: extension .m4a" in page
