"""The transformers caption backend end to end with a tiny random Qwen2-VL (real architecture and processor,
random weights, a tokenizer trained on the spot): every kept clip ends as a row, QA reasons and retries are
recorded. Then the same model behind `transformers serve` on 127.0.0.1, captioned through the openai backend
with the frames sent as images. The model's words are noise: these tests check rows, timings, reasons."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import PYTHON, REPO, free_ports, kill_tree, run_droplet

from captioning.config import CaptionConfig, FramesConfig, TransformersConfig
from captioning.tiny_vlm import write_tiny_vlm

FRAMES = "frames:\n  num_frames: 4\n  max_side: 112\n"


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory) -> Path:
    return write_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-qwen2-vl", "qwen2_vl")


@pytest.fixture(scope="module")
def small_out(sample_data, tmp_path_factory) -> Path:
    """One synthetic video with six camera shots, curated with the local executor: six kept clips."""
    source = tmp_path_factory.mktemp("in")
    shutil.copy(sample_data / "synthetic" / "moves_a.mp4", source / "moves_a.mp4")
    out = tmp_path_factory.mktemp("small") / "out"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    result = run_droplet(["curate", str(source), str(out), "--executor", "local", "--no-progress"], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _fresh_copy(out: Path, dest: Path) -> Path:
    shutil.copytree(out, dest)
    return dest


def _rows_and_kept(out: Path):
    rows = pq.read_table(out / "captions.parquet").to_pandas()
    kept = pq.read_table(out / "clips.parquet").to_pandas().query("keep")
    return rows, kept


def test_droplet_caption_with_the_transformers_backend(small_out, tiny_vlm, tmp_path):
    out = _fresh_copy(small_out, tmp_path / "out")
    kept = pq.read_table(out / "clips.parquet").to_pandas().query("keep")
    assert len(kept) >= 3
    lost = kept.clip_id.iloc[0]
    (out / "clips" / f"{lost}.mp4").unlink()  # an unreadable clip: that clip's error row, nobody else's
    config = tmp_path / "tf.yaml"
    config.write_text(f"{FRAMES}transformers:\n  model_path: {tiny_vlm}\n  device: cpu\n  max_new_tokens: 16\n"
                      "  batch_size: 4\n")
    result = run_droplet(["caption", str(out), "--backend", "transformers", "--config", str(config), "--no-shard"])
    assert result.returncode == 0, result.stderr[-3000:]
    rows, kept = _rows_and_kept(out)
    assert sorted(rows.clip_id) == sorted(kept.clip_id), "every kept clip ends as a row"
    assert set(rows.backend) == {"transformers"} and set(rows.model) == {"tiny-qwen2-vl"}
    failed = rows.set_index("clip_id").loc[lost]
    assert failed.error.startswith("caption_failed: frames: ") and not isinstance(failed.caption, str)
    good = rows[rows.clip_id != lost]
    assert good.error.isna().all() and good.caption.notna().all()
    # 16 tokens of noise are far too short: QA says so, after the one retry with feedback
    assert (~good.qa_passed).all()
    assert good.qa_reason.str.match(r"too_short: \d+ words \(at least 150\) \(after a retry with feedback\)").all()
    assert f"failed QA             {len(good)}" in result.stdout and f"too_short: {len(good)}" in result.stdout
    timings = re.findall(r"transformers: (\d+) clips in ([\d.]+) s of generation: ([\d.]+) clips/s, "
                         r"([\d.]+) output tokens/s", result.stderr)
    assert [int(n) for n, *_ in timings] == [len(kept), len(good)], "a first pass, then one retry per caption"
    assert all(float(rate) > 0 and float(tokens) > 0 for _, _, rate, tokens in timings)
    assert "frames as one video" in result.stderr  # Qwen2-VL takes the clip as a video

    again = run_droplet(["caption", str(out), "--backend", "transformers", "--config", str(config), "--no-shard"])
    assert again.returncode == 0 and "1 to caption (1 retried after an error)" in again.stderr


def test_the_captioner_is_a_ray_data_callable_and_reproducible(small_out, tiny_vlm):
    from captioning.transformers_backend import OUTPUT_KEYS, TransformersCaptioner

    cfg = CaptionConfig(backend="transformers", frames=FramesConfig(num_frames=4, max_side=112),
                        transformers=TransformersConfig(model_path=str(tiny_vlm), device="cpu", media="images",
                                                        max_new_tokens=16, batch_size=2))
    captioner = TransformersCaptioner(cfg, str(small_out / "clips"))
    assert not captioner.video
    ids = pq.read_table(small_out / "clips.parquet").to_pandas().query("keep").clip_id.tolist()[:2]
    batch = {"clip_id": np.array([*ids, "no-such-clip"]), "prompt": np.array(["Describe the clip."] * 3),
             "duration_s": np.array([3.0, 3.0, 1.0])}
    answer = captioner(batch)
    assert sorted(answer) == sorted(OUTPUT_KEYS) and list(answer["clip_id"]) == [*ids, "no-such-clip"]
    assert all(answer["caption"][:2]) and answer["error"][2].startswith("frames: ")
    assert all(n > 0 for n in answer["input_tokens"][:2]) and all(0 < n <= 16 for n in answer["output_tokens"][:2])
    again = captioner(batch)
    assert list(again["caption"]) == list(answer["caption"]), "greedy with a fixed seed: the same words"


def _serve_command() -> list[str] | None:
    cli = Path(PYTHON).parent / "transformers"
    if not cli.exists() or not all(importlib.util.find_spec(m) for m in ("fastapi", "uvicorn")):
        return None
    return [str(cli), "serve"]


@pytest.fixture()
def served(tiny_vlm, tmp_path):
    """`transformers serve` with the tiny model on 127.0.0.1 (a free port); its base URL."""
    command = _serve_command()
    if command is None:
        if os.environ.get("CI"):
            pytest.fail("`transformers serve` is not installed (pip install 'transformers[serving]')")
        pytest.skip("`transformers serve` is not installed (pip install 'transformers[serving]')")
    port = free_ports(1)[0]
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([*command, str(tiny_vlm), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
                             "--log-level", "info"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=tmp_path)
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.time() < deadline, "transformers serve did not start in 120 s"
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        kill_tree(proc.pid)
        log.close()


def test_openai_backend_against_transformers_serve(small_out, tiny_vlm, served, tmp_path):
    out = _fresh_copy(small_out, tmp_path / "out")
    config = tmp_path / "openai.yaml"
    config.write_text(f"backend: openai\n{FRAMES}openai:\n  base_url: {served}\n  model: {tiny_vlm}\n"
                      "  max_tokens: 16\n  temperature: 0.0\n  concurrency: 2\n  timeout_s: 120\n  video: false\n")
    result = run_droplet(["caption", str(out), "--config", str(config), "--no-shard"])
    assert result.returncode == 0, result.stderr[-3000:]
    rows, kept = _rows_and_kept(out)
    assert sorted(rows.clip_id) == sorted(kept.clip_id), "every kept clip ends as a row"
    assert rows.error.isna().all(), rows.error.dropna().tolist()[:2]
    assert set(rows.backend) == {"openai"} and rows.caption.notna().all()
    assert rows.qa_reason.str.match(r"too_short: .* \(after a retry with feedback\)").all()
    assert f"failed QA             {len(kept)}" in result.stdout


def test_the_model_folder_is_checked_before_anything_starts(tmp_path):
    out = tmp_path / "out"  # a curated OUT with one kept clip
    out.mkdir()
    pq.write_table(pa.table({"clip_id": ["c-0-100"], "keep": [True]}), out / "clips.parquet")
    config = tmp_path / "tf.yaml"
    config.write_text(f"transformers:\n  model_path: {tmp_path / 'no-model'}\n")
    result = run_droplet(["caption", str(out), "--backend", "transformers", "--config", str(config)], cwd=REPO,
                         timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        f"droplet caption: error: transformers.model_path {tmp_path / 'no-model'}: no such folder"]
    assert not (out / "_work").exists()


def test_rewrite_prompt_with_the_transformers_backend(tiny_vlm):
    from captioning.rewrite import rewrite

    cfg = CaptionConfig(backend="transformers", transformers=TransformersConfig(model_path=str(tiny_vlm),
                                                                                device="cpu", max_new_tokens=16))
    text, note = rewrite("a kite over a beach, the camera pans left", cfg)
    assert text and note.startswith(f"rewritten by {tiny_vlm} (dv-rewrite-v2)")
    assert rewrite("a kite over a beach, the camera pans left", cfg)[0] == text, "greedy: the same text again"


def _write_clip(path: Path, frames: int = 24) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 128, 72, "yuv420p"
        for i in range(frames):
            image = np.full((72, 128, 3), (i * 10) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_the_captioner_runs_as_ray_data_actors(ray_client, ray_head, tiny_vlm, tmp_path):
    from captioning.transformers_backend import caption_with_ray

    ids = ["a-0-24", "b-0-24"]
    for clip_id in ids:
        _write_clip(tmp_path / f"{clip_id}.mp4")
    cfg = CaptionConfig(backend="transformers", frames=FramesConfig(num_frames=4, max_side=112),
                        transformers=TransformersConfig(model_path=str(tiny_vlm), max_new_tokens=16, batch_size=2))
    rows = [{"clip_id": i, "prompt": "Describe the clip.", "duration_s": 2.0} for i in [*ids, "no-such-clip"]]
    answers = {a["clip_id"]: a for a in caption_with_ray(rows, cfg, str(tmp_path))}
    assert sorted(answers) == sorted([*ids, "no-such-clip"])
    assert all(answers[i]["caption"] and answers[i]["error"] is None and answers[i]["output_tokens"] > 0 for i in ids)
    assert answers["no-such-clip"]["error"].startswith("frames: ")
    # the actor killed (`kill -9`) after captioning its first batch: Ray Data restarts it and runs the batch again
    faults = tmp_path / "faults"
    ray_client.shutdown()
    ray_client.init(address=ray_head["address"], logging_level="ERROR", runtime_env={"env_vars": {
        "DROPLET_FAULT": "caption_worker:1", "DROPLET_FAULT_DIR": str(faults)}})
    again = {a["clip_id"]: a for a in caption_with_ray(rows, cfg, str(tmp_path))}
    assert (faults / "caption_worker.fired").exists()
    assert {i: (a["caption"], a["error"]) for i, a in again.items()} == \
        {i: (a["caption"], a["error"]) for i, a in answers.items()}
