"""Decoding streams: on a 60 s 1280x720 input the analysing process stays under 1.5 GB (proportional set
size) and does not grow between 20 s and 60 s of input."""

from __future__ import annotations

import json
import subprocess

from conftest import PYTHON, REPO

from droplet.sample_data import make_long_video

PROBE = """
import json, sys, psutil
from curation.analyze import analyze_source
from curation.config import CurateConfig
cfg, me, marks = CurateConfig(), psutil.Process(), {}
def on_frame(i):
    if i in (25 * 20, 25 * 40, 25 * 60 - 1):
        marks[i] = me.memory_full_info().pss
result = analyze_source(sys.argv[1], cfg.analysis, cfg.scenes, fps=25.0, on_frame=on_frame)
print(json.dumps({"frames": result.num_frames, "pss": marks}))
"""


def test_analysis_memory_is_flat(tmp_path):
    video = make_long_video(tmp_path / "long.mp4", 60.0, width=1280, height=720)
    result = subprocess.run([PYTHON, "-c", PROBE, str(video)], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["frames"] == 1500
    pss = {int(k): v for k, v in report["pss"].items()}
    print("PSS MB", {k: round(v / 1e6, 1) for k, v in pss.items()})
    assert max(pss.values()) < 1.5e9, pss
    assert pss[1499] - pss[500] < 25e6, f"grew by {(pss[1499] - pss[500]) / 1e6:.1f} MB from 20 s to 60 s"
