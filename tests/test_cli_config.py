"""`droplet` command line and config: --help without heavy imports, one-line errors with exit 2."""

from __future__ import annotations

import os
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import PYTHON, REPO, run_droplet

from curation.config import CURATE_YAML_HEADER, CurateConfig
from curation.store import OutStore
from runtime.config import render_yaml

HELP_PROBE = """
import sys
from droplet.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("HEAVY:", sorted(m for m in ("torch", "ray", "cv2", "av", "scenedetect") if m in sys.modules))
"""


@pytest.mark.parametrize("args", [["--help"], ["sample-data", "--help"], ["curate", "--help"],
                                  ["import-droplet", "--help"], ["config-defaults", "--help"]])
def test_help_is_light(args):
    result = subprocess.run([PYTHON, "-c", HELP_PROBE, *args], capture_output=True, text=True, cwd=REPO)
    assert "usage: droplet" in result.stdout
    assert result.stdout.strip().endswith("HEAVY: []")


@pytest.mark.parametrize("name", ["curate", "caption"])
def test_shipped_config_is_the_documented_default(name):
    from captioning.config import CAPTION_YAML_HEADER, CaptionConfig

    defaults = {"curate": (CurateConfig, CURATE_YAML_HEADER), "caption": (CaptionConfig, CAPTION_YAML_HEADER)}
    model, header = defaults[name]
    assert (REPO / "configs" / f"{name}.yaml").read_text() == render_yaml(model(), header)


@pytest.mark.parametrize("body, words", [
    ("clips:\n  min_frames: 61\n  max_frame: 300\n", "clips.max_frame: unknown setting"),
    ("clips:\n  min_frames: -3\n", "clips.min_frames"),
    ("clips:\n  min_frames: 100\n  max_frames: 80\n", "max_frames must be at least"),
    ("scenes:\n  detector: magic\n", "scenes.detector"),
    ("scenes: [1, 2\n", "not valid YAML"),
])
def test_bad_config_exits_2_with_one_line(tmp_path, body, words):
    config = tmp_path / "bad.yaml"
    config.write_text(body)
    result = run_droplet(["curate", str(tmp_path), str(tmp_path / "out"), "--config", str(config)])
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], result.stderr


def test_missing_input_and_config_file(tmp_path):
    result = run_droplet(["curate", str(tmp_path / "nowhere"), str(tmp_path / "out")])
    assert result.returncode == 2 and "input not found" in result.stderr
    result = run_droplet(["curate", str(tmp_path), str(tmp_path / "out"), "--config", str(tmp_path / "no.yaml")])
    assert result.returncode == 2 and "config file not found" in result.stderr


def test_different_config_on_existing_out(tmp_path):
    out = tmp_path / "out"
    made_with = CurateConfig()
    OutStore(out).lock_config(made_with.fingerprint(), made_with.model_dump(mode="json"))
    other = tmp_path / "other.yaml"
    other.write_text("clips:\n  min_frames: 81\n")
    result = run_droplet(["curate", str(tmp_path), str(out), "--config", str(other)])
    assert result.returncode == 2
    assert "different config" in result.stderr and "clips.min_frames" in result.stderr


def test_no_command_prints_help():
    result = run_droplet([])
    assert result.returncode == 2 and "curate" in result.stdout


@pytest.mark.parametrize("name", ["caption-qwen2.5-vl.yaml", "caption-internvl2.yaml", "caption.yaml"])
def test_shipped_caption_configs_validate(name):
    from captioning.config import CaptionConfig
    from runtime.config import load_config

    cfg = load_config(REPO / "configs" / name, CaptionConfig)
    if name != "caption.yaml":
        assert cfg.backend == "vllm" and (REPO / cfg.vllm.runtime_env).exists()


@pytest.mark.parametrize("name", ["train-tiny.yaml", "train-5b.yaml"])
def test_shipped_train_configs_validate(name):
    from runtime.config import load_config
    from train.config import TrainConfig

    cfg = load_config(REPO / "configs" / name, TrainConfig)
    assert (REPO / cfg.deepspeed).exists()
    if name == "train-5b.yaml":
        assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.eps) == (2e-5, 3e-2, 1e-10)
        assert cfg.data.token_budget == 13_312 and cfg.data.frame_counts == [49]


def test_train_config_defaults_round_trip_and_bad_train_config_exits_2(tmp_path):
    from runtime.config import load_config
    from train.config import TrainConfig

    result = run_droplet(["config-defaults", "train"])
    (tmp_path / "train.yaml").write_text(result.stdout)
    assert load_config(tmp_path / "train.yaml", TrainConfig) == TrainConfig()
    (tmp_path / "bad.yaml").write_text("data:\n  frame_counts: [10]\n")
    bad = run_droplet(["train", "--config", str(tmp_path / "bad.yaml"), "--data", str(tmp_path)])
    assert bad.returncode == 2 and "4k+1" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


MISSING = "/nonexistent/droplet-test-weights"


def _missing_path_case(case: str, tmp_path) -> tuple[list[str], str]:
    """(droplet args, the one stderr line expected) for a command given a local path that is not there."""
    vllm = tmp_path / "vllm.yaml"
    vllm.write_text(f"vllm:\n  model_path: {MISSING}\n")
    train = tmp_path / "train.yaml"
    train.write_text(f"model:\n  pretrained: {MISSING}\n")
    out = tmp_path / "out"  # a curated OUT with one kept clip: without the check, captioning would start Ray
    out.mkdir()
    pq.write_table(pa.table({"clip_id": ["c-0-100"], "keep": [True]}), out / "clips.parquet")
    cases = {
        "caption": (["caption", str(out), "--backend", "vllm", "--config", str(vllm)],
                    f"vllm.model_path {MISSING}: no such folder"),
        "rewrite-prompt": (["rewrite-prompt", "a red kite", "--backend", "vllm", "--config", str(vllm)],
                           f"vllm.model_path {MISSING}: no such folder"),
        "sample": (["sample", "--checkpoint", MISSING, "--prompt", "x", "--out", str(tmp_path / "x.mp4")],
                   f"--checkpoint {MISSING}: no such folder"),
        "train": (["train", "--config", str(train), "--data", str(tmp_path / "no-shards")],
                  f"model.pretrained {MISSING}: no such folder"),
        "precompute": (["precompute", "--config", str(train), "--data", str(out), "--output", str(tmp_path / "l")],
                       f"model.pretrained {MISSING}: no such folder"),
    }
    args, line = cases[case]
    return args, f"droplet {case}: error: {line}"


@pytest.mark.parametrize("case", ["caption", "rewrite-prompt", "sample", "train", "precompute"])
def test_a_missing_local_model_path_exits_2_with_one_line_before_anything_starts(tmp_path, case):
    """Checked before Ray, torch or a processor starts: without it, `caption`/`rewrite-prompt --backend vllm`
    started an embedded Ray and a vLLM processor and did not return within 120 s."""
    args, expected = _missing_path_case(case, tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    result = run_droplet(args, env=env, timeout=30)
    assert result.returncode == 2, result.stderr[-2000:]
    assert [line for line in result.stderr.splitlines() if line.strip()] == [expected]
    assert not (tmp_path / "out" / "_work").exists()  # OUT not locked to a config it cannot run


def test_require_local_paths_names_every_bad_setting(tmp_path):
    from runtime.paths import MissingPath, require_local_paths

    (tmp_path / "weights").mkdir()
    (tmp_path / "env.yaml").write_text("pip: []\n")
    require_local_paths(folders={"a": str(tmp_path / "weights"), "b": None}, files={"c": str(tmp_path / "env.yaml")})
    with pytest.raises(MissingPath) as info:
        require_local_paths(folders={"m": str(tmp_path / "env.yaml"), "n": MISSING}, files={"f": str(tmp_path)})
    assert str(info.value) == (f"m {tmp_path / 'env.yaml'}: not a folder; n {MISSING}: no such folder; "
                               f"f {tmp_path}: not a file")


def test_a_setting_added_since_the_out_was_made_counts_at_its_default(tmp_path):
    """An OUT locked before a setting existed (here `limits.max_frames`) takes the default of it, and refuses
    any other value of it, or of the settings it had."""
    from runtime.lock import ConfigMismatch

    old = CurateConfig().fingerprint()
    del old["limits"]["max_frames"]
    del old["ocr"]  # a whole section added since
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    store = OutStore(tmp_path)
    store.lock_config(CurateConfig().fingerprint(), {})  # the defaults: the same OUT
    with pytest.raises(ConfigMismatch, match=r"changed: limits\.max_frames\)"):
        store.lock_config(CurateConfig(limits={"max_frames": 10}).fingerprint(), {})
    with pytest.raises(ConfigMismatch, match=r"changed: ocr\)"):
        store.lock_config(CurateConfig(ocr={"enabled": False}).fingerprint(), {})
    with pytest.raises(ConfigMismatch, match=r"changed: clips\.min_frames\)"):
        store.lock_config(CurateConfig(clips={"min_frames": 81}).fingerprint(), {})
