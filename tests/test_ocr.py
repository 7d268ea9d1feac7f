"""Text overlays read by the real PP-OCR models of rapidocr-onnxruntime on encoded clips with rendered text."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from curation.clip_sample import sample_frames
from curation.ocr import SEPARATOR, OcrConfig, TextOverlayReader, _merge
from droplet.sample_data.encode import H264Writer
from droplet.sample_data.synthetic import camera_frames

FRAMES = 15


@pytest.fixture(scope="module")
def reader() -> TextOverlayReader:
    return TextOverlayReader(OcrConfig())


def _clip(path: Path, width: int, height: int, texts: list[tuple[str, tuple[float, float], float, int]],
          shown: range = range(FRAMES)) -> Path:
    """A slow pan over the sample photo with `texts` (text, (x, y) as frame shares, scale at 640 px, thickness)
    drawn on frames `shown`."""
    s = width / 640
    with H264Writer(path, width, height, gop=FRAMES) as writer:
        for i, frame in enumerate(camera_frames("pan_right", FRAMES, 1.0, 3, width, height, style="photo")):
            frame = frame.copy()
            if i in shown:
                for text, (x, y), scale, thick in texts:
                    cv2.putText(frame, text, (int(x * width), int(y * height)), cv2.FONT_HERSHEY_DUPLEX, scale * s,
                                (255, 255, 255), max(1, round(thick * s)), cv2.LINE_AA)
            writer.write(frame)
    return path


def test_large_text_is_an_overlay(reader, tmp_path):
    path = _clip(tmp_path / "headline.mp4", 1280, 720, [("SUMMER SALE TODAY", (0.06, 0.22), 1.4, 3)])
    area, text = reader(sample_frames(str(path), reader.cfg.frames))
    assert area > 2 * reader.cfg.max_text_area
    assert "SUMMER SALE TODAY" in text
    assert text.count("SUMMER") == 1, "the same line on every frame is kept once"


def test_small_text_is_read_but_is_no_overlay(reader, tmp_path):
    path = _clip(tmp_path / "caption.mp4", 640, 360, [("watch more videos", (0.62, 0.94), 0.55, 1)])
    area, text = reader(sample_frames(str(path), reader.cfg.frames))
    assert 0.002 < area < reader.cfg.max_text_area
    assert "watchmorevideos" in text.replace(" ", "")  # small text: the recogniser may drop the spaces


def test_no_text_gives_nothing(reader, tmp_path):
    path = _clip(tmp_path / "plain.mp4", 640, 360, [])
    area, text = reader(sample_frames(str(path), reader.cfg.frames))
    assert area < 0.002 and text == ""


def test_text_on_one_sampled_frame_counts_and_lines_are_ordered(reader, tmp_path):
    texts = [("BIG NEWS", (0.1, 0.2), 1.5, 3), ("second line here", (0.1, 0.8), 0.8, 2)]
    path = _clip(tmp_path / "middle.mp4", 640, 360, texts, shown=range(5, 10))  # the middle frame only
    frames = sample_frames(str(path), 3)
    areas = [reader.read(f)[0] for f in frames]
    assert areas[0] == areas[2] == 0.0 and areas[1] > reader.cfg.max_text_area
    area, text = reader(frames)
    assert area == areas[1], "the most over the frames"
    assert text.split(SEPARATOR) == ["BIG NEWS", "second line here"]


def test_lines_read_twice_are_merged_keeping_the_better_reading():
    kept = _merge([], "BREARING NEWS", 0.8)
    kept = _merge(kept, "BREAKING NEWS", 0.95)
    kept = _merge(kept, "breaking news", 0.7)
    kept = _merge(kept, "weather", 0.9)
    assert kept == [("BREAKING NEWS", 0.95), ("weather", 0.9)]


def test_frames_are_downscaled_before_ocr(reader):
    big = np.zeros((1440, 2560, 3), np.uint8)
    cv2.putText(big, "HELLO WORLD", (200, 700), cv2.FONT_HERSHEY_DUPLEX, 8.0, (255, 255, 255), 16, cv2.LINE_AA)
    area, lines = reader.read(big)
    assert [t for t, _ in lines] == ["HELLO WORLD"] and 0.03 < area < 0.2


def test_a_ray_check_task_runs_ocr_on_its_own_cpus():
    from curation.config import CurateConfig
    from curation.pipeline import task_ocr_threads

    assert task_ocr_threads(CurateConfig()).ocr.threads == 1  # check_cpus 0.5: one thread, not every core
    assert task_ocr_threads(CurateConfig(ray={"check_cpus": 2.5})).ocr.threads == 3
    assert task_ocr_threads(CurateConfig(ocr={"threads": 4})).ocr.threads == 4  # set by the user: kept
