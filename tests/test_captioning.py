"""Captioning: QA catches planted errors; grounded captions of the synthetic set pass QA and agree with the
truth; the OpenAI-compatible backend against a stub server on 127.0.0.1 that fails in every way; the vLLM
processor is built from config (vLLM itself runs only inside its actors, never here)."""

from __future__ import annotations

import base64
import http.server
import json
import re
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import run_droplet

from captioning.config import CaptionConfig, FramesConfig, OpenAIConfig, QAConfig, VLLMConfig
from captioning.grounded import GroundedCaptioner
from captioning.openai_backend import MalformedResponse, build_request, parse_response
from captioning.qa import check_caption, count_words, mentioned_moves
from captioning.timeline import DIRECTIONAL, Segment, segments_of
from captioning.vllm_backend import postprocess_row, preprocess_row

PAN_RIGHT = [Segment(0.0, 3.5, "pan_right", 0.1, 0.95)]
FILLER = ("The shot is continuous and the light stays even, with the colours holding steady from the first "
          "frame to the last while the layout of the scene remains easy to follow. ")


def _caption(*sentences: str, words: int = 200) -> str:
    text = " ".join(sentences) + " "
    while count_words(text) < words:
        text += FILLER
    return " ".join(text.split()[:words])


# --------------------------------------------------------------------------------------------- QA


def test_qa_passes_a_right_caption():
    assert check_caption(_caption("The camera pans steadily to the right, revealing a street."), PAN_RIGHT,
                         150, 260, 0.5).passed


@pytest.mark.parametrize("text, reason", [
    (_caption("The camera pans slowly to the left across the room."), "wrong_direction"),
    (_caption("A leftward pan follows the runner."), "wrong_direction"),
    (_caption("The camera pans right.", words=60), "too_short"),
    (_caption("The camera pans right.", words=300), "too_long"),
    (_caption("The camera zooms in on a face."), "missing_move"),
])
def test_qa_catches_planted_errors(text, reason):
    result = check_caption(text, PAN_RIGHT, 150, 260, 0.5)
    assert not result.passed and result.reason.startswith(reason), result.reason


def test_qa_still_camera_and_uncertain_segments():
    still = [Segment(0.0, 3.0, "static", 0.0, 0.9)]
    assert check_caption(_caption("The camera tilts up to the sky."), still, 150, 260, 0.5).reason.startswith(
        "moved_a_still_camera")
    assert check_caption(_caption("The camera holds still on the square."), still, 150, 260, 0.5).passed
    unsure = [Segment(0.0, 3.0, "pan_right", 0.1, 0.3)]  # not confident: not asserted either way
    assert check_caption(_caption("The camera pans to the left."), unsure, 150, 260, 0.5).passed


def test_mentions_are_parsed():
    text = ("It pans quickly toward the right, then tilts downward, zooms out, and finally rolls "
            "counter-clockwise while the camera remains fixed on nothing.")
    assert mentioned_moves(text) == {"pan_right", "tilt_down", "zoom_out", "roll_ccw", "static"}
    assert mentioned_moves("the camera rolls clockwise") == {"roll_cw"}


# --------------------------------------------------------------------------------------------- grounded


@pytest.fixture(scope="module")
def captioned(curated, tmp_path_factory) -> Path:
    """A copy of the test run's curated OUT, captioned with the grounded backend (the default), and sharded."""
    out = tmp_path_factory.mktemp("captioned") / "out"
    shutil.copytree(curated["out"], out)
    result = run_droplet(["caption", str(out)])
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_grounded_captions_pass_qa_and_agree_with_truth(captioned, curated, truth):
    captions = pq.read_table(captioned / "captions.parquet").to_pandas().set_index("clip_id")
    clips = curated["clips"]
    kept = clips[clips.keep]
    assert set(captions.index) == set(kept.clip_id)
    assert captions.qa_passed.all() and captions.error.isna().all()
    assert captions.words.between(150, 260).all()
    assert set(captions.backend) == {"grounded"} and captions.prompt_version.notna().all()
    checked = 0
    for relpath, video in truth["synthetic"].items():
        source = str(curated["sample"] / relpath)
        for shot in video["shots"]:
            if shot["kind"] not in ("camera", "reframe", "flash"):
                continue
            mine = kept[(kept.source == source) & (kept.start_frame < shot["end_frame"])
                        & (kept.end_frame > shot["start_frame"])]
            for clip_id in mine.clip_id:
                said = mentioned_moves(captions.loc[clip_id, "caption"])
                assert shot["label"] in said, (clip_id, shot["label"], said)
                opposite = {"left": "right", "right": "left", "up": "down", "down": "up", "in": "out", "out": "in",
                            "cw": "ccw", "ccw": "cw"}
                family, way = shot["label"].split("_")
                assert f"{family}_{opposite[way]}" not in said
                checked += 1
    assert checked >= 16


def test_grounded_captions_vary_and_never_move_a_still_camera(captioned, curated, truth):
    """Over the synthetic set: the most common sentence is in at most 30% of the captions, and no caption names a
    move opposite to the truth or a move where the camera was still. The music video's figure is reported."""
    from captioning.variety import most_common_sentence

    captions = pq.read_table(captioned / "captions.parquet").to_pandas().set_index("clip_id")
    kept = curated["clips"][curated["clips"].keep]
    synthetic = kept[kept.source.str.contains("/synthetic3?d?/")]
    music = kept[kept.source.str.endswith("real/music_video.mp4")]
    sentence, share = most_common_sentence(captions.loc[synthetic.clip_id, "caption"])
    assert len(synthetic) >= 40 and share <= 0.30, (share, sentence)
    music_sentence, music_share = most_common_sentence(captions.loc[music.clip_id, "caption"])
    print(f"most common sentence: synthetic {share:.3f} of {len(synthetic)} ({sentence!r}); music video "
          f"{music_share:.3f} of {len(music)} ({music_sentence!r})")
    opposite = {"left": "right", "right": "left", "up": "down", "down": "up", "in": "out", "out": "in",
                "cw": "ccw", "ccw": "cw"}
    checked = 0
    for group in ("synthetic", "synthetic3d"):
        for relpath, video in truth[group].items():
            source = str(curated["sample"] / relpath)
            for shot in video["shots"]:
                inside = synthetic[(synthetic.source == source) & (synthetic.start_frame >= shot["start_frame"] - 3)
                                   & (synthetic.end_frame <= shot["end_frame"] + 3)]
                for clip_id in inside.clip_id:
                    said = mentioned_moves(captions.loc[clip_id, "caption"]) & DIRECTIONAL
                    if shot["label"] in ("static", "shaky"):
                        assert not said, (clip_id, shot["label"], said)
                    elif shot["label"] in DIRECTIONAL:
                        family, way = shot["label"].rsplit("_", 1)
                        assert f"{family}_{opposite[way]}" not in said, (clip_id, shot["label"], said)
                    checked += 1
    assert checked >= 30


def test_caption_is_shards_and_a_rerun_redoes_nothing(captioned):
    manifest = json.loads((captioned / "shards" / "manifest.json").read_text())
    assert manifest["total_samples"] == pq.read_table(captioned / "captions.parquet").num_rows
    before = pq.read_table(captioned / "captions.parquet").num_rows
    again = run_droplet(["caption", str(captioned)])
    assert again.returncode == 0 and "0 to caption" in again.stderr
    assert pq.read_table(captioned / "captions.parquet").num_rows == before


def test_shard_alone_appends_nothing_new(captioned):
    shards = sorted((captioned / "shards").glob("shard-*.tar"))
    stamps = [p.stat().st_mtime_ns for p in shards]
    result = run_droplet(["shard", str(captioned)])
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted((captioned / "shards").glob("shard-*.tar")) == shards
    assert [p.stat().st_mtime_ns for p in shards] == stamps


def test_a_different_caption_config_is_refused(captioned, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("qa:\n  min_words: 100\n")
    result = run_droplet(["caption", str(captioned), "--config", str(config)])
    assert result.returncode == 2 and "different config" in result.stderr


def test_grounded_captions_of_many_clips_pass_qa():
    """Every caption of a batch of clips passes QA against its timeline; clips/s is bench/caption_bench.py's."""
    clip = {"clip_id": "x-0-100", "start_s": 0.0, "end_s": 4.0, "brightness": 0.5, "colors": ["#204060"],
            "object_motion_score": 0.0, "camera_timeline": [{"start_s": 0.0, "end_s": 4.0, "label": "zoom_in",
                                                             "speed": 0.05, "confidence": 1.0}]}
    qa = QAConfig()
    captioner = GroundedCaptioner(qa.min_words, qa.max_words, min_confidence=qa.min_confidence)
    captions = [captioner.caption({**clip, "clip_id": f"x-{i}-100"}) for i in range(50)]
    for text in captions:
        assert check_caption(text, segments_of(clip), qa.min_words, qa.max_words, qa.min_confidence).passed, text
        assert mentioned_moves(text) == {"zoom_in"}


# --------------------------------------------------------------------------------------------- openai


def test_request_building_and_response_parsing():
    cfg = OpenAIConfig(model="m", max_tokens=300)
    jpeg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    payload = build_request(cfg, "describe", [jpeg, jpeg])
    user = payload["messages"][1]["content"]
    assert payload["model"] == "m" and payload["max_tokens"] == 300
    assert [p["type"] for p in user] == ["image_url", "image_url", "text"] and user[-1]["text"] == "describe"
    assert base64.b64decode(user[0]["image_url"]["url"].split(",", 1)[1]) == jpeg
    video = build_request(OpenAIConfig(video=True), "d", [jpeg, jpeg])["messages"][1]["content"]
    assert video[0]["type"] == "video_url" and video[0]["video_url"]["url"].startswith("data:video/jpeg;base64,")
    body = json.dumps({"choices": [{"message": {"content": "  A   caption.\n"}}]})
    assert parse_response(body) == "A caption."
    for bad in ("not json", "{}", json.dumps({"choices": []}), json.dumps({"choices": [{"message": {}}]})):
        with pytest.raises(MalformedResponse):
            parse_response(bad)


MOVE_WORDS = {"pans left": "pans to the left", "pans right": "pans to the right", "tilts up": "tilts upward",
              "tilts down": "tilts downward", "zooms in": "zooms in", "zooms out": "zooms out",
              "rolls clockwise": "rolls clockwise", "rolls counter-clockwise": "rolls counter-clockwise",
              "holds still": "holds still"}


class Stub(http.server.BaseHTTPRequestHandler):
    """A chat-completions server that fails on purpose. `mode` chaos: by request number, a 500, a hang past
    the client's time limit, a malformed body, or an answer; good: always answers. Answers follow the
    facts in the prompt, except that a first attempt in `wrong_first` mode (every attempt in `wrong_always`)
    names the opposite pan."""

    state = {"mode": "chaos", "n": 0, "prompts": [], "media": []}
    lock = threading.Lock()

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        content = body["messages"][1]["content"]
        prompt = content if isinstance(content, str) else content[-1]["text"]
        with self.lock:
            n = self.state["n"]
            self.state["n"] += 1
            self.state["prompts"].append(prompt)
            self.state["media"].append([] if isinstance(content, str) else [p for p in content if p["type"] != "text"])
        mode = self.state["mode"]
        if mode == "chaos" and n % 4 == 0:
            return self._send(500, b'{"error": "overloaded"}')
        if mode == "chaos" and n % 4 == 1:
            time.sleep(0.6)
            return self._send(200, b"{}")
        if mode == "chaos" and n % 4 == 2:
            return self._send(200, b"<html>not json</html>")
        facts = re.findall(r"the camera (pans \w+|tilts \w+|zooms \w+|rolls [\w-]+|trucks \w+|pedestals \w+|"
                           r"dollies \w+|orbits \w+|tracks \w+|holds still).*\(certain\)", prompt)
        moves = [MOVE_WORDS.get(f, f) for f in facts] or ["holds still"]
        if mode == "wrong_always" or (mode == "wrong_first" and "failed a check" not in prompt):
            moves = [m.replace("right", "LEFT").replace("left", "right").replace("LEFT", "left") for m in moves]
        text = _caption(*(f"Then the camera {m}, and new parts of the scene enter the frame." for m in moves))
        return self._send(200, json.dumps({"choices": [{"message": {"content": text}}]}).encode())

    def _send(self, status: int, data: bytes):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def stub():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    Stub.state.update(mode="chaos", n=0, prompts=[], media=[])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def _openai_config(tmp_path: Path, base_url: str) -> Path:
    config = tmp_path / "openai.yaml"
    config.write_text(f"backend: openai\nframes:\n  num_frames: 4\n  max_side: 128\nopenai:\n  base_url: {base_url}\n"
                      "  model: stub\n  timeout_s: 0.2\n  retries: 1\n  backoff_s: 0.01\n  concurrency: 4\n")
    return config


def test_openai_backend_against_a_failing_server(captioned, stub, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(captioned, out, ignore=shutil.ignore_patterns("captions.parquet", "_work", "shards",
                                                                  "caption_config.yaml"))
    shutil.copytree(captioned / "_work", out / "_work", ignore=shutil.ignore_patterns("captions"))
    config = _openai_config(tmp_path, stub)
    first = run_droplet(["caption", str(out), "--config", str(config), "--no-shard"])
    assert first.returncode == 0, first.stderr[-3000:]
    rows = pq.read_table(out / "captions.parquet").to_pandas()
    kept = pq.read_table(out / "clips.parquet").to_pandas().query("keep")
    assert set(rows.clip_id) == set(kept.clip_id), "every clip has a row: nothing lost"
    failed = rows[rows.error.notna()]
    assert len(failed) > 0 and failed.error.str.startswith("caption_failed").all()
    assert failed.error.str.contains("HTTP 500|timed out|malformed").all()
    good = rows[rows.error.isna()]
    assert len(good) > 0 and good.qa_passed.all()

    Stub.state["mode"] = "good"
    second = run_droplet(["caption", str(out), "--config", str(config)])
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"{len(failed)} retried after an error" in second.stderr
    rows2 = pq.read_table(out / "captions.parquet").to_pandas()
    latest = rows2.groupby("clip_id").tail(1)
    assert len(rows2) == len(rows) + len(failed), "only the failed clips were asked again"
    assert latest.error.isna().all() and latest.qa_passed.all() and len(latest) == len(kept)
    assert json.loads((out / "shards" / "manifest.json").read_text())["total_samples"] == len(kept)


def test_qa_failure_is_retried_once_with_feedback(captioned, stub, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(captioned, out, ignore=shutil.ignore_patterns("captions.parquet", "_work", "shards",
                                                                  "caption_config.yaml"))
    shutil.copytree(captioned / "_work", out / "_work", ignore=shutil.ignore_patterns("captions"))
    Stub.state["mode"] = "wrong_first"
    result = run_droplet(["caption", str(out), "--config", str(_openai_config(tmp_path, stub)), "--no-shard"])
    assert result.returncode == 0, result.stderr[-3000:]
    rows = pq.read_table(out / "captions.parquet").to_pandas()
    sideways = rows[rows.caption.str.contains(r"(?:pans to the|trucks|orbits|tracks) (?:left|right)")]
    assert len(sideways) > 0 and sideways.qa_passed.all()  # the stub swapped left and right in these at first
    retries = [p for p in Stub.state["prompts"] if "failed a check: wrong_direction" in p]
    # one retry per clip at most (a clip whose timeline goes both ways still names both after the swap)
    assert 0 < len(retries) <= len(sideways)


# --------------------------------------------------------------------------------------------- repair

SRC = "00112233aabbccdd"
PAN_LEFT_SAID = "Then the camera pans to the left, and new parts of the scene enter the frame."


def _seg(start: float, end: float, label: str) -> dict:
    return {"start_s": start, "end_s": end, "label": label, "speed": 0.1, "confidence": 0.95}


def _clip(start: int, end: int, timeline: list[dict]) -> dict:
    return {"clip_id": f"{SRC}-{start}-{end}", "source": "/v.mp4", "source_id": SRC, "start_frame": start,
            "end_frame": end, "start_s": 0.0, "end_s": timeline[-1]["end_s"], "fps": 24.0, "num_frames": end - start,
            "width": 64, "height": 48, "camera_motion": timeline[0]["label"], "camera_timeline": timeline,
            "brightness": 0.5, "colors": ["#204060"], "object_motion_score": 0.0, "keep": True}


REPAIRABLE = _clip(0, 84, [_seg(0.0, 3.5, "pan_right")])
STILL = _clip(100, 184, [_seg(0.0, 3.5, "static")])
# six measured moves: the VLM's one-line camera sentences become six grounded ones, too long for QA
CROWDED = _clip(200, 344, [_seg(0.0, 1.0, "pan_right"), _seg(1.0, 2.0, "tilt_up"), _seg(2.0, 3.0, "zoom_in"),
                           _seg(3.0, 4.0, "roll_cw"), _seg(4.0, 5.0, "pan_right"), _seg(5.0, 6.0, "tilt_down")])


def _write_mp4(path: Path, frames: int = 12) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture()
def small_out(tmp_path: Path) -> Path:
    """An OUT with three kept clips (pan right, still, six moves) and their files: no curation run needed."""
    import pyarrow as pa

    from shards.schema import CLIP_SCHEMA

    out = tmp_path / "out"
    (out / "clips").mkdir(parents=True)
    clips = [REPAIRABLE, STILL, CROWDED]
    pq.write_table(pa.Table.from_pylist(clips, schema=CLIP_SCHEMA), out / "clips.parquet")
    for clip in clips:
        _write_mp4(out / "clips" / f"{clip['clip_id']}.mp4")
    return out


def _stub_config(base_url: str) -> CaptionConfig:
    return CaptionConfig(backend="openai", frames=FramesConfig(num_frames=2, max_side=64),
                         openai=OpenAIConfig(base_url=base_url, model="stub", timeout_s=5, retries=0, concurrency=2))


def _shard_json(out: Path) -> dict[str, dict]:
    import tarfile

    found = {}
    for path in sorted((out / "shards").glob("shard-*.tar")):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    found[member.name.removesuffix(".json")] = json.loads(tar.extractfile(member).read())
    return found


def test_a_caption_wrong_after_its_retry_is_repaired_and_sharded(small_out, stub):
    from captioning.pipeline import run_caption
    from captioning.repair import split_sentences
    from shards import write_shards

    Stub.state["mode"] = "wrong_always"  # the stub names the opposite pan, first and on the retry
    summary = run_caption(str(small_out), _stub_config(stub))
    assert summary.captioned == 2 and summary.repaired == 1 and summary.qa_failed == 1
    retries = [p for p in Stub.state["prompts"] if "failed a check: wrong_direction" in p]
    assert len(retries) == 2  # the pan-right clip and the six-move one were asked twice

    rows = {r["clip_id"]: SimpleNamespace(**r) for r in pq.read_table(small_out / "captions.parquet").to_pylist()}
    fixed = rows[REPAIRABLE["clip_id"]]
    assert fixed.repaired is True and fixed.qa_passed and fixed.qa_reason is None and fixed.error is None
    said = _caption(PAN_LEFT_SAID)  # what the stub answered both times
    content = [s for s in split_sentences(said) if not mentioned_moves(s)]
    assert content and all(s in fixed.caption for s in content)
    assert [fixed.caption.index(s) for s in content] == sorted(fixed.caption.index(s) for s in content)
    assert "pans to the left" not in fixed.caption and mentioned_moves(fixed.caption) == {"pan_right"}
    assert check_caption(fixed.caption, segments_of(REPAIRABLE), 150, 260, 0.5).passed
    assert fixed.words == count_words(fixed.caption)

    still = rows[STILL["clip_id"]]
    assert still.qa_passed and still.repaired is False and "holds still" in still.caption
    crowded = rows[CROWDED["clip_id"]]
    assert crowded.qa_passed is False and crowded.repaired is False
    assert crowded.qa_reason.startswith("wrong_direction: says pan_left, measured pan_right")
    assert "not repaired: the repaired caption failed QA: too_long" in crowded.qa_reason
    assert "pans to the left" in crowded.caption  # the VLM's own caption stays on the failed row

    samples = _shard_json(small_out)
    assert set(samples) == {REPAIRABLE["clip_id"], STILL["clip_id"]}, "the contradicting caption is in no shard"
    assert samples[REPAIRABLE["clip_id"]]["repaired"] is True and samples[STILL["clip_id"]]["repaired"] is False
    assert samples[REPAIRABLE["clip_id"]]["qa_passed"] is True

    again = small_out.parent / "again"  # the same inputs shard to the same bytes
    shutil.copytree(small_out, again, ignore=shutil.ignore_patterns("shards"))
    write_shards(again, fsync=False)
    for path in sorted((small_out / "shards").glob("shard-*.tar")):
        assert (again / "shards" / path.name).read_bytes() == path.read_bytes()


class ScriptedVLM:
    """An in-process VLM backend that answers every request for a clip with the same text."""

    name, model, retries_with_feedback = "openai", "scripted", True

    def __init__(self, texts: dict[str, str]):
        self.texts = texts
        self.asked: list[str] = []

    def generate(self, requests):
        self.asked += [clip["clip_id"] for clip, _ in requests]
        return [(self.texts[clip["clip_id"]], None) for clip, _ in requests]


def test_what_cannot_be_repaired_stays_excluded():
    from captioning.repair import regrounded_caption
    from captioning.runner import caption_batch

    only_camera = " ".join(["The camera pans to the left over the rooftops and the chimneys and the antennas."] * 12)
    texts = {REPAIRABLE["clip_id"]: only_camera,
             STILL["clip_id"]: _caption("The camera holds still on the square.", words=60)}
    backend = ScriptedVLM(texts)
    rows = {r["clip_id"]: r for r in caption_batch([REPAIRABLE, STILL], backend, CaptionConfig())}
    assert backend.asked.count(REPAIRABLE["clip_id"]) == 2  # asked once more before any repair
    camera_only = rows[REPAIRABLE["clip_id"]]
    assert not camera_only["qa_passed"] and not camera_only["repaired"] and camera_only["caption"] == only_camera
    assert camera_only["qa_reason"].endswith("not repaired: no sentence left besides the camera sentences")
    assert regrounded_caption(only_camera, REPAIRABLE, 0.5) is None
    short = rows[STILL["clip_id"]]  # a length failure is not a camera failure: no repair
    assert short["qa_reason"].startswith("too_short") and "repaired" not in short["qa_reason"]
    assert not short["repaired"] and not short["qa_passed"]


def test_only_a_failing_vlm_caption_is_repaired():
    from captioning.backends import GroundedBackend
    from captioning.runner import caption_batch

    right = _caption("The camera pans steadily to the right past a market.")
    rows = caption_batch([REPAIRABLE], ScriptedVLM({REPAIRABLE["clip_id"]: right}), CaptionConfig())
    assert rows[0]["qa_passed"] and rows[0]["repaired"] is False and rows[0]["caption"] == right
    grounded = caption_batch([REPAIRABLE, CROWDED], GroundedBackend(CaptionConfig()), CaptionConfig())
    assert all(r["repaired"] is False for r in grounded)
    # qa.retry off: the failing caption is repaired straight away, the backend asked once
    backend = ScriptedVLM({REPAIRABLE["clip_id"]: _caption(PAN_LEFT_SAID)})
    rows = caption_batch([REPAIRABLE], backend, CaptionConfig(qa=QAConfig(retry=False)))
    assert backend.asked == [REPAIRABLE["clip_id"]] and rows[0]["repaired"] and rows[0]["qa_passed"]


def test_sentences_are_split_where_they_end():
    from captioning.repair import split_sentences

    text = 'A harbour at dawn. Gulls circle over 3.5 m waves, e.g. small ones. "Quiet." (Then) 2 boats leave!  Calm?'
    assert split_sentences(text) == ["A harbour at dawn.", "Gulls circle over 3.5 m waves, e.g. small ones.",
                                     '"Quiet."', "(Then) 2 boats leave!", "Calm?"]


# --------------------------------------------------------------------------------------------- vllm


def test_vllm_processor_is_built_from_config(ray_client, tmp_path):
    model = tmp_path / "Qwen2.5-VL-7B-Instruct"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"architectures": ["Qwen2_5_VLForConditionalGeneration"],
                                                   "model_type": "qwen2_5_vl"}))
    from captioning.vllm_backend import build_caption_processor, load_runtime_env

    cfg = CaptionConfig(backend="vllm", vllm=VLLMConfig(model_path=str(model), batch_size=4, tensor_parallel_size=2))
    runtime_env = load_runtime_env(Path(__file__).parents[1] / "configs" / "vllm-runtime-env.yaml")
    assert any("vllm" in p for p in runtime_env["pip"]["packages"])
    processor = build_caption_processor(cfg, str(tmp_path / "clips"), runtime_env)
    stages = list(processor.stages)
    assert stages == ["PrepareMultimodalStage", "ChatTemplateStage", "TokenizeStage", "vLLMEngineStage",
                      "DetokenizeStage"]
    engine = processor.stages["vLLMEngineStage"]
    assert engine.fn_constructor_kwargs["engine_kwargs"]["tensor_parallel_size"] == 2
    assert engine.fn_constructor_kwargs["engine_kwargs"]["limit_mm_per_prompt"] == {"video": 1}
    assert engine.map_batches_kwargs["runtime_env"] == runtime_env
    media = processor.stages["PrepareMultimodalStage"].fn_constructor_kwargs["model_config_kwargs"]
    assert media["media_io_kwargs"] == {"video": {"num_frames": 16}}


def test_vllm_preprocess_and_postprocess(captioned):
    clip_id = pq.read_table(captioned / "clips.parquet").to_pandas().query("keep").clip_id.iloc[0]
    row = {"clip_id": clip_id, "prompt": "describe it"}
    qwen = preprocess_row(row, CaptionConfig(), str(captioned / "clips"))
    user = qwen["messages"][1]["content"]
    assert user[0] == {"type": "video_url", "video_url": {"url": f"file://{captioned}/clips/{clip_id}.mp4"}}
    assert user[1]["text"] == "describe it" and qwen["sampling_params"]["max_tokens"] == 512
    intern = preprocess_row(row, CaptionConfig(vllm=VLLMConfig(family="internvl2")), str(captioned / "clips"))
    images = [p for p in intern["messages"][1]["content"] if p["type"] == "image_url"]
    assert len(images) == 16
    frame = cv2.imdecode(np.frombuffer(base64.b64decode(images[0]["image_url"]["url"].split(",")[1]), np.uint8), 1)
    assert frame is not None and max(frame.shape[:2]) <= 448
    assert postprocess_row({"clip_id": "a", "generated_text": " A  caption ", "num_generated_tokens": 3}) == {
        "clip_id": "a", "caption": "A caption", "error": None, "input_tokens": 0, "output_tokens": 3}
    assert postprocess_row({"clip_id": "a", "generated_text": "", "__inference_error__": "OOM"})["error"] == "OOM"


# --------------------------------------------------------------------------------------------- rewrite


def test_rewrite_prompt_grounded():
    result = run_droplet(["rewrite-prompt", "A red kite over a beach; the camera pans left and then zooms out."])
    assert result.returncode == 0
    text = result.stdout.strip()
    assert count_words(text) >= 150 and {"pan_left", "zoom_out"} <= mentioned_moves(text)
    assert "{" not in text and "}" not in text
    assert "grounded mode" in result.stderr and "templates" in result.stderr
    assert "grounded rewrite: template" in result.stderr


def test_rewrite_prompt_with_an_openai_endpoint(stub, tmp_path):
    Stub.state["mode"] = "good"
    config = _openai_config(tmp_path, stub)
    result = run_droplet(["rewrite-prompt", "a harbour at dawn", "--config", str(config)])
    assert result.returncode == 0, result.stderr[-2000:]
    assert count_words(result.stdout) >= 150 and "rewritten by stub" in result.stderr
    assert "Prompt: a harbour at dawn" in Stub.state["prompts"][-1]


def test_rewrite_prompt_with_a_first_frame(stub, tmp_path):
    Stub.state["mode"] = "good"
    image = tmp_path / "first.png"
    cv2.imwrite(str(image), np.full((300, 600, 3), (40, 90, 200), np.uint8))  # BGR: an orange frame, 2:1
    config = _openai_config(tmp_path, stub)
    prompt = "a harbour at dawn, the camera pans left and then zooms out"
    result = run_droplet(["rewrite-prompt", prompt, "--image", str(image), "--config", str(config)])
    assert result.returncode == 0, result.stderr[-2000:]
    asked, media = Stub.state["prompts"][-1], Stub.state["media"][-1]
    assert "first frame of a video" in asked and f"Prompt: {prompt}" in asked
    assert "Requested camera movement: the camera pans to the left, then the camera zooms out." in asked
    assert len(media) == 1 and media[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    sent = cv2.imdecode(np.frombuffer(base64.b64decode(media[0]["image_url"]["url"].split(",")[1]), np.uint8), 1)
    assert sent.shape == (64, 128, 3) and np.abs(sent.mean((0, 1)) - (40, 90, 200)).max() < 8  # max_side 128
    assert result.stdout.strip() == _caption("Then the camera holds still, and new parts of the scene enter the "
                                             "frame.")  # the stub's answer is the output
    assert f"rewritten by stub from the first frame {image} (dv-rewrite-image-v1)" in result.stderr

    plain = run_droplet(["rewrite-prompt", prompt, "--config", str(config)])
    assert plain.returncode == 0 and Stub.state["media"][-1] == [] and "first frame" not in Stub.state["prompts"][-1]
    missing = run_droplet(["rewrite-prompt", prompt, "--image", str(tmp_path / "none.png"), "--config", str(config)])
    assert missing.returncode == 2 and "--image" in missing.stderr


def test_grounded_rewrite_with_an_image_stays_a_template(tmp_path):
    from captioning.rewrite import requested_moves

    image = tmp_path / "first.png"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    prompt = "A red kite over a beach; the camera zooms out and then pans left."
    with_image = run_droplet(["rewrite-prompt", prompt, "--image", str(image)])
    without = run_droplet(["rewrite-prompt", prompt])
    assert with_image.returncode == 0 and with_image.stdout == without.stdout
    assert "grounded rewrite: template" in with_image.stderr and "--image is not looked at" in with_image.stderr
    text = with_image.stdout
    assert text.index("the camera zooms out steadily") < text.index("the camera pans steadily to the left")
    assert requested_moves("it tilts up, then rolls clockwise before it holds still; the camera holds still") == [
        "tilt_up", "roll_cw", "static"]


def test_a_vllm_rewrite_sends_the_first_frame():
    from captioning.rewrite import rewrite_messages

    jpeg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    system, user = rewrite_messages("describe it", jpeg)
    assert system["role"] == "system" and user["content"][1] == {"type": "text", "text": "describe it"}
    assert base64.b64decode(user["content"][0]["image_url"]["url"].split(",")[1]) == jpeg
    assert rewrite_messages("describe it")[1] == {"role": "user", "content": "describe it"}


def test_timeline_times_are_relative_to_the_clip():
    clip = {"start_s": 10.0, "camera_timeline": [{"start_s": 10.0, "end_s": 12.5, "label": "pan_left", "speed": 0.1,
                                                  "confidence": 0.9}]}
    assert segments_of(clip) == [Segment(0.0, 2.5, "pan_left", 0.1, 0.9)]
    assert QAConfig().min_words == 150
