"""The clip stages through the local executor and Ray Data on a tiny OUT of three short clips: CLIP scores from a
tiny random open_clip model and a linear head with known weights, and the selection's C5 share; plus the selection
rule."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from curation.config import CurateConfig, SelectionConfig
from curation.decisions import select
from curation.pipeline import run_curate
from droplet.sample_data.synthetic import _cam, _object_shot, write_video

TINY = {"embed_dim": 32, "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
PREPROCESS = {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
              "interpolation": "bicubic", "resize_mode": "shortest"}
HEAD = np.linspace(-1, 1, 32)


def _tiny_clip(folder: Path) -> Path:
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY)
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY, "preprocess_cfg": PREPROCESS}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


def _curate(inputs: Path, out: Path, cfg: CurateConfig, address: str | None):
    """run_curate in this process; attached to `address` (a Ray cluster) only for the run."""
    if address is None:
        return run_curate(str(inputs), str(out), cfg)
    import ray

    try:
        return run_curate(str(inputs), str(out), cfg, address=address)
    finally:
        ray.shutdown()


def _row(cid: str, cls: str, score: float | None = None) -> dict:
    return {"clip_id": cid, "paper_class": cls, "aesthetic_score": score}


def test_selection_keeps_c5_up_to_its_share_best_first_and_never_unselects_a_sharded_clip():
    rows = [_row(f"a{i:02d}", "C2") for i in range(19)] + [_row("c6", "C6"), _row("c6-sharded", "C6")]
    rows += [_row("s1", "C5", 3.0), _row("s2", "C5", 7.0), _row("s3", "C5", None), _row("s4", "C5", 5.0)]
    out = select(rows, {"c6-sharded"}, SelectionConfig(enabled=True))
    # 20 kept besides C5 (19 C2 + the sharded C6): floor(0.05 * 20 / 0.95) = 1 static clip, the best one
    assert set(out) == {"c6", "s1", "s3", "s4"} and all(d["reason"] == "not_selected" for d in out.values())
    out = select(rows, {"c6-sharded", "s3"}, SelectionConfig(enabled=True))
    assert set(out) == {"c6", "s1", "s2", "s4"}  # a sharded C5 clip takes the room
    out = select(rows, set(), SelectionConfig(enabled=True, static_share=0.15))
    assert set(out) == {"c6", "c6-sharded", "s3"}  # floor(0.15 * 19 / 0.85) = 3: the scored ones before s3
    assert out["c6"]["message"] == "class C6 is not selected"


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_clip_scores_and_selection_through_each_executor(executor: str, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture, request):
    """The same three clips through the local executor, and through Ray Data on the test run's head (the CLIP
    scoring actor stage, the check tasks)."""
    caplog.set_level(logging.INFO, logger="droplet")
    address = request.getfixturevalue("ray_head")["address"] if executor == "ray" else None
    inputs = tmp_path / "in"
    inputs.mkdir()
    w, h = 320, 180
    write_video(inputs / "pan.mp4", w, h, [_cam("pan_left", "slow", 70, 11)])
    write_video(inputs / "object_a.mp4", w, h, [_object_shot(70, 12, w, h)])
    write_video(inputs / "object_b.mp4", w, h, [_object_shot(70, 13, w, h)])
    head = tmp_path / "head.pth"
    torch.save({"weight": torch.tensor(HEAD[None, :], dtype=torch.float32),
                "bias": torch.tensor([5.0], dtype=torch.float32)}, head)
    cfg = CurateConfig(ray={"executor": executor, "num_cpus": 2 if executor == "local" else None,
                            "progress_bars": False},
                       embeddings={"weights": str(_tiny_clip(tmp_path / "clip"))},
                       aesthetic={"head": str(head), "thresholds": {"linear": 0.0}},
                       selection={"enabled": True, "static_share": 0.5},
                       dedup={"enabled": False})  # the two object shots share their backdrop
    out = tmp_path / "out"
    summary = _curate(inputs, out, cfg, address)
    clips = pq.read_table(out / "clips.parquet").to_pandas().set_index("clip_id")
    assert len(clips) == 3 and clips.aesthetic_score.notna().all() and clips.sharpness.notna().all()
    assert all(len(tags) >= 1 for tags in clips.scene_tags)
    ids = pq.read_table(out / "embeddings.parquet").column("clip_id").to_pylist()
    assert sorted(ids) == sorted(clips.index)
    batches = sorted(p.name for p in (out / "_work" / "embeddings").glob("*.npz"))
    assert len(batches) == 3 and all(name.startswith("src-") for name in batches)  # one batch per source
    # the known head: 5 + HEAD . embedding
    from curation.embedding_store import load_embeddings

    eids, matrix = load_embeddings(out)
    for cid, vector in zip(eids, matrix, strict=True):
        assert clips.loc[cid, "aesthetic_score"] == pytest.approx(5.0 + float(HEAD @ vector), abs=1e-4)
    statics = clips[clips.paper_class == "C5"]
    assert len(statics) == 2 and (clips.paper_class == "C2").sum() == 1
    # one moving class clip: room for one C5 (share 0.5), the better scored
    best = statics.aesthetic_score.idxmax()
    assert clips.loc[best, "keep"] and clips.drop(best).loc[statics.index.drop(best), "reject_reason"].tolist() == \
        ["not_selected"]
    assert summary.clip_rejections == {"not_selected": 1}
    assert "aesthetic: runs" in caplog.text and "selection: runs" in caplog.text
    before = (out / "clips.parquet").read_bytes()
    _curate(inputs, out, cfg, address)  # nothing to do: the same tables
    assert (out / "clips.parquet").read_bytes() == before
