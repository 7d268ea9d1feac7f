"""Technical quality on real encoded clips: a sharp photo clip passes; blurred, dark, blown-out and blocky
versions of it fail with the right detail; black bars are cropped at extraction; frames are sampled exactly."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from curation.borders import detect_black_borders, even_inside, rotate_box
from curation.clip_sample import sample_frames
from curation.config import ExtractConfig
from curation.extract import ClipSpec, clip_facts, extract_clip
from curation.quality import QualityConfig, judge_quality, measure_quality
from droplet.sample_data.encode import H264Writer
from droplet.sample_data.synthetic import camera_frames
from shards.sampling import uniform_indices

W, H, N = 640, 360, 40


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1]


DEGRADE = {
    "sharp": lambda f: f,
    "blurry": lambda f: cv2.GaussianBlur(f, (0, 0), 3.0),
    "too_dark": lambda f: (f * 0.15).astype(np.uint8),  # about 5.5 stops under
    "blown_out": lambda f: np.clip(f * 3.5, 0, 255).astype(np.uint8),  # about 4 stops over
    "blocky": lambda f: _jpeg(f, 5),
}


@pytest.fixture(scope="module")
def photo_frames() -> list[np.ndarray]:
    """A slow pan over the sample photo set in a procedural canvas (as `droplet sample-data` renders it)."""
    return list(camera_frames("pan_right", N, 1.5, 11, W, H, style="photo"))


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 25, rotation: int | None = None) -> Path:
    h, w = frames[0].shape[:2]
    with H264Writer(path, w, h, fps=fps, gop=fps, rotation=rotation) as writer:
        for frame in frames:
            writer.write(frame)
    return path


@pytest.fixture(scope="module")
def clips(photo_frames, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("quality")
    return {kind: write_clip(folder / f"{kind}.mp4", [fn(f) for f in photo_frames]) for kind, fn in DEGRADE.items()}


@pytest.mark.parametrize("kind", list(DEGRADE))
def test_each_degradation_fails_with_its_detail(clips, kind):
    cfg = QualityConfig()
    scores = measure_quality(sample_frames(str(clips[kind]), cfg.frames))
    detail = judge_quality(scores, W, H, cfg)
    if kind == "sharp":
        assert detail is None, scores
        assert scores.sharpness > 3 * cfg.min_sharpness and abs(scores.exposure) < 0.2
        assert scores.blockiness < 0.8 * cfg.max_blockiness
    else:
        assert detail is not None and detail.startswith(f"{kind}:"), (detail, scores)


def test_scores_move_the_right_way(clips):
    got = {k: measure_quality(sample_frames(str(p), 4)) for k, p in clips.items()}
    assert got["blurry"].sharpness < got["sharp"].sharpness / 5
    assert got["too_dark"].exposure < -0.3 < got["sharp"].exposure < 0.3 < got["blown_out"].exposure
    assert got["blocky"].blockiness > 1.5 * got["sharp"].blockiness
    row = got["sharp"].to_row()
    assert set(row) == {"sharpness", "exposure"} and all(isinstance(v, float) for v in row.values())


def test_too_small_comes_first_and_sharpness_is_resolution_free(photo_frames):
    cfg = QualityConfig()
    scores = measure_quality(photo_frames[:4])
    assert judge_quality(scores, 160, 88, cfg).startswith("too_small:")
    assert judge_quality(scores, 160, 90, cfg) is None
    big = measure_quality([cv2.resize(f, (1280, 720), interpolation=cv2.INTER_CUBIC) for f in photo_frames[:4]])
    small = measure_quality([cv2.resize(f, (320, 180), interpolation=cv2.INTER_AREA) for f in photo_frames[:4]])
    # a 2x upscale is measured at 640 px, like its source; a reduction only packs the detail closer
    assert 0.7 < big.sharpness / scores.sharpness < 1.3 and small.sharpness > scores.sharpness


def test_flat_black_frames_are_dark_not_blurry():
    black = [np.zeros((H, W, 3), np.uint8)] * 3
    scores = measure_quality(black)
    assert scores.sharpness is None and scores.exposure == -1.0
    assert judge_quality(scores, W, H, QualityConfig()).startswith("too_dark:")
    assert measure_quality([]) is None and judge_quality(None, W, H, QualityConfig()) is None


def test_sample_frames_are_the_exact_frames(clips, photo_frames):
    path = str(clips["sharp"])
    with av.open(path) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == N
    got = sample_frames(path, 5)
    assert len(got) == 5
    for index, frame in zip(uniform_indices(N, 5), got, strict=True):
        assert np.array_equal(frame, decoded[index])
    small = sample_frames(path, 3, max_side=320)
    assert [f.shape for f in small] == [(180, 320, 3)] * 3
    assert len(sample_frames(path, 100)) == N and sample_frames(path, 0) == []


def test_sample_frames_turn_rotated_video(photo_frames, tmp_path):
    stored = [np.ascontiguousarray(np.rot90(f, 1)) for f in photo_frames[:10]]  # stored sideways
    path = write_clip(tmp_path / "rot.mp4", stored, rotation=-90)  # players turn it back
    frame = sample_frames(str(path), 1)[0]
    assert frame.shape == (H, W, 3)
    assert np.abs(frame.astype(int) - photo_frames[5].astype(int)).mean() < 6


# --- black borders ---------------------------------------------------------------------------------------

def _boxed(frames: list[np.ndarray], width: int, height: int, box: tuple[int, int, int, int]) -> list[np.ndarray]:
    x, y, w, h = box
    out = []
    for f in frames:
        canvas = np.zeros((height, width, 3), np.uint8)
        canvas[y:y + h, x:x + w] = cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)
        out.append(canvas)
    return out


def test_detect_black_borders_on_frames(photo_frames):
    letterbox = _boxed(photo_frames[:6], 640, 360, (0, 46, 640, 268))
    noisy = [np.clip(f.astype(np.int16) + np.random.default_rng(i).integers(-6, 7, f.shape), 0, 255)
             .astype(np.uint8) for i, f in enumerate(letterbox)]
    assert detect_black_borders(noisy) == (0, 46, 640, 268)
    assert detect_black_borders(photo_frames[:6]) is None
    dark_scene = [(f * 0.07).astype(np.uint8) for f in photo_frames[:6]]  # dark everywhere: no bars
    assert detect_black_borders(dark_scene) is None
    one_sided = _boxed(photo_frames[:6], 640, 360, (0, 60, 640, 300))  # a bar at the top only
    assert detect_black_borders(one_sided) is None
    fade = [np.zeros_like(letterbox[0])] + letterbox[1:]  # a black frame says nothing
    assert detect_black_borders(fade) == (0, 46, 640, 268)


def test_box_helpers():
    assert even_inside((81, 3, 477, 355), 640, 360) == (82, 4, 476, 354)
    picture = np.arange(6 * 10).reshape(6, 10)
    box = (2, 1, 5, 3)
    for turns in range(4):
        x, y, w, h = rotate_box(box, 10, 6, turns)
        assert np.array_equal(np.rot90(picture, turns)[y:y + h, x:x + w],
                              np.rot90(picture[1:4, 2:7], turns))


def _spec(path: Path, out: Path, n: int, rotation: int = 0, fps: int = 25) -> ClipSpec:
    return ClipSpec(source=str(path), start_frame=0, end_frame=n, start_pts=0, start_s=0.0, end_s=n / fps, fps=fps,
                    rotation=rotation, out_path=str(out))


@pytest.mark.parametrize("case", ["letterbox", "pillarbox", "rotated"])
def test_extraction_crops_black_bars(photo_frames, tmp_path, case):
    frames = photo_frames[:30]
    if case == "letterbox":  # 2.39:1 in 16:9
        source, expected, rotation = _boxed(frames, 640, 360, (0, 46, 640, 268)), (0, 46, 640, 268), 0
    elif case == "pillarbox":  # 4:3 in 16:9, bars of an odd width
        source, expected, rotation = _boxed(frames, 640, 360, (81, 0, 478, 360)), (82, 0, 476, 360), 0
    else:  # letterboxed picture stored sideways, shown turned: bars are left/right as stored, top/bottom shown
        shown = _boxed(frames, 640, 360, (0, 46, 640, 268))
        source, expected, rotation = [np.ascontiguousarray(np.rot90(f, 1)) for f in shown], (0, 46, 640, 268), -90
    path = write_clip(tmp_path / "src.mp4", source, rotation=rotation or None)
    facts = extract_clip(_spec(path, tmp_path / "clip.mp4", len(frames), rotation), ExtractConfig())
    assert facts["crop"] is not None
    assert np.abs(np.array(facts["crop"]) - np.array(expected)).max() <= 2
    assert (facts["width"], facts["height"]) == tuple(facts["crop"][2:])
    assert clip_facts(str(tmp_path / "clip.mp4"))["crop"] == facts["crop"]  # read back on resume
    clip = sample_frames(str(tmp_path / "clip.mp4"), 3)
    assert clip[0].shape == (facts["height"], facts["width"], 3)
    edges = [f[:2].mean() for f in clip] + [f[-2:].mean() for f in clip] + [f[:, :2].mean() for f in clip]
    assert min(edges) > 30, "no black line left at the clip's edges"
    off = extract_clip(_spec(path, tmp_path / "uncropped.mp4", len(frames), rotation),
                       ExtractConfig(crop_black_borders=False))
    assert off["crop"] is None and (off["width"], off["height"]) == (640, 360)


def test_extraction_without_bars_is_unchanged_and_reproducible(photo_frames, tmp_path):
    path = write_clip(tmp_path / "src.mp4", photo_frames[:30])
    on = extract_clip(_spec(path, tmp_path / "on.mp4", 30), ExtractConfig())
    off = extract_clip(_spec(path, tmp_path / "off.mp4", 30), ExtractConfig(crop_black_borders=False))
    assert on["crop"] is None and on == {**off, "crop": None}
    assert (tmp_path / "on.mp4").read_bytes() == (tmp_path / "off.mp4").read_bytes()


def test_cropped_extraction_is_byte_reproducible(photo_frames, tmp_path):
    """As the pipeline runs it: each extraction in its own child process."""
    from curation.sandbox import run_isolated

    path = write_clip(tmp_path / "src.mp4", _boxed(photo_frames[:30], 640, 360, (81, 0, 478, 360)))
    outs = [tmp_path / f"clip{i}.mp4" for i in range(2)]
    facts = [run_isolated(extract_clip, _spec(path, out, 30), ExtractConfig(), timeout_s=120) for out in outs]
    assert facts[0] == facts[1] and facts[0]["crop"] == [82, 0, 476, 360]
    assert outs[0].read_bytes() == outs[1].read_bytes()


def test_every_kept_sample_clip_passes(curated):
    """The defaults keep every clip that curation keeps from the sample data (and find no text on them)."""
    from curation.ocr import TextOverlayReader

    kept = curated["clips"].query("keep")
    cfg = QualityConfig()
    failed = {}
    for clip in kept.itertuples():
        frames = sample_frames(str(curated["out"] / "clips" / f"{clip.clip_id}.mp4"), cfg.frames)
        detail = judge_quality(measure_quality(frames), clip.width, clip.height, cfg)
        if detail:
            failed[clip.clip_id] = detail
    assert len(kept) >= 50 and not failed
    reader = TextOverlayReader()
    for clip in kept.groupby("source_id").head(1).head(8).itertuples():  # OCR on one clip of 8 sources
        path = curated["out"] / "clips" / f"{clip.clip_id}.mp4"
        area, text = reader(sample_frames(str(path), reader.cfg.frames, max_side=reader.cfg.max_side))
        assert area < 0.005 and text == "", (clip.source, area, text)
