"""`droplet import-droplet CSV VIDEO_DIR OUT`: a CSV shaped like the released DropletVideo metadata over sample
videos named by fake YouTube ids. The importer cuts exactly the listed time ranges (the CSV's frames at the
CSV's fps, as times, onto the file's own frames, also where the CSV says 60 fps and the file is 25 or 30),
carries the CSV's columns, keeps the named caption column's captions (QA'd) so `droplet shard` takes them, gives
a missing or broken video a source row with its reason, and resumes."""

from __future__ import annotations

import csv
import json
import math
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import read_table, run_droplet

from curation.droplet_csv import frame_time, nearest_frame, parse_framestamp, video_id_of_file, youtube_id
from curation.extract import output_rate

MOVES = "abcdefghijk"  # synthetic/moves_a.mp4, 25 fps, named the way yt-dlp names by default
THIRTY = "Zyx-_98765Q"  # a 30 fps file written here, in the released script's <id>/<id>.mp4 layout
LATE = "late-vid_01"  # missing on the first run, downloaded before the second
BROKEN = "brokenvid00"  # not a video
GONE = "missingvid0"  # never downloaded
CAPTION = ("The camera pans right across a patterned surface while the light stays even. "
           + "Soft shadows slide over the textured ground and the colours remain calm and balanced. " * 11)
COLUMNS = ["url", "fps", "framestamp", "quality_score", "category", "caption"]
ROWS = [  # (url, CSV fps, framestamp, quality_score, category, caption)
    (f"https://www.youtube.com/watch?v={MOVES}", "60.0", "(240, 400)", "0.91", "pan", CAPTION),
    (f"https://www.youtube.com/watch?v={MOVES}&t=5s", "25", "(190, 260)", "0.52", "tilt", "Too short."),
    (f"https://www.youtube.com/watch?v={MOVES}", "25", "(600, 700)", "0.40", "outside", ""),
    (f"https://youtu.be/{THIRTY}?t=1", "60", "(20, 170)", "0.77", "youtube 60 on 30", ""),
    (f"https://www.youtube.com/shorts/{LATE}", "30", "[3, 93]", "0.66", "late", ""),
    (f"https://www.youtube.com/watch?v={BROKEN}", "30", "(0, 90)", "0.80", "broken", "x"),
    (f"https://www.youtube.com/watch?v={GONE}", "30", "(0, 90)", "0.80", "gone", "x"),
    (f"https://www.youtube.com/watch?v={MOVES}", "25", "(10,)", "0.80", "malformed", "x"),
]
FILE_FPS = {MOVES: 25, THIRTY: 30, LATE: 30}


def expected_frames(row: tuple) -> tuple[int, int]:
    """The file frames a CSV row means: its frames at its fps as times rounded to 10 ms (as the released
    generate_samples.py cuts), each onto the nearest frame boundary of the file."""
    vid = youtube_id(row[0])
    fps = float(row[1])
    first, end = (int(x) for x in row[2].strip("()[]").split(","))
    start_s, end_s = round(first / fps, 2), round(end / fps, 2)
    return math.floor(start_s * FILE_FPS[vid] + 0.5), math.floor(end_s * FILE_FPS[vid] + 0.5)


def write_30fps(path: Path, seed: int) -> None:
    from droplet.sample_data.encode import H264Writer
    from droplet.sample_data.synthetic import camera_frames

    path.parent.mkdir(parents=True, exist_ok=True)
    with H264Writer(path, 320, 180, fps=30) as writer:
        for frame in camera_frames("pan_right", 96, 2.0, seed, 320, 180):
            writer.write(frame)


@pytest.fixture(scope="module")
def imported(sample_data: Path, truth: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("import")
    videos = root / "videos"
    videos.mkdir()
    (videos / f"Moves A [{MOVES}].mp4").symlink_to(sample_data / "synthetic" / "moves_a.mp4")
    write_30fps(videos / THIRTY / f"{THIRTY}.mp4", seed=7)
    shutil.copy(sample_data / "broken" / "not_a_video.mp4", videos / f"{BROKEN}.mp4")
    write_30fps(root / "later" / f"{LATE}.mp4", seed=8)
    (videos / "notes.txt").write_text("not a video")
    table = root / "DropletVideo-sample.csv"
    with table.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(ROWS)
    out = root / "out"
    args = ["import-droplet", str(table), str(videos), str(out), "--caption-column", "caption", "--no-progress"]
    first = run_droplet(args)
    assert first.returncode == 0, first.stderr[-4000:]
    return {"out": out, "videos": videos, "root": root, "args": args, "first": first,
            "clips_arrow": pq.read_table(out / "clips.parquet"), "clips": read_table(out, "clips"),
            "sources": read_table(out, "sources"),
            "shots": {s["label"]: s for s in truth["synthetic"]["synthetic/moves_a.mp4"]["shots"]}}


def _clip(imported: dict, row: int):
    """The clip row of CSV data row `row` (1-based), found by what it carried."""
    clips = imported["clips"]
    carried = clips.import_row.map(json.loads)
    match = clips[carried.map(lambda r: r["category"] == ROWS[row - 1][4])]
    assert len(match) == 1, (row, list(carried))
    return match.iloc[0]


def _file_facts(path: Path) -> tuple[int, float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for p in container.demux(stream) if p.size), float(stream.average_rate)


@pytest.mark.parametrize("row", [1, 2, 4])
def test_exactly_the_listed_time_ranges(imported, row):
    """Frames at the CSV's fps become times, and the times the file's frames: a CSV at 60 fps over files at 25
    and 30 fps, and one whose fps is the file's."""
    clip = _clip(imported, row)
    a, b = expected_frames(ROWS[row - 1])
    assert (clip.start_frame, clip.end_frame, clip.num_frames) == (a, b, b - a)
    fps = FILE_FPS[youtube_id(ROWS[row - 1][0])]
    assert clip.fps == fps and abs(clip.start_s - a / fps) < 1e-6 and abs(clip.end_s - b / fps) < 1e-6
    assert clip.keep, clip.reject_reason
    assert _file_facts(imported["out"] / "clips" / f"{clip.clip_id}.mp4") == (b - a, fps)
    if row == 1:  # 240 / 60 = 4.00 s and 400 / 60 = 6.67 s are frames 100 and 167 at 25 fps, not 240 and 400
        assert (a, b) == (100, 167)
    if row == 4:  # 20 / 60 = 0.33 s and 170 / 60 = 2.83 s: frames 10 and 85 of the 30 fps file (it has 96)
        assert (a, b) == (10, 85)


def test_clips_are_measured_as_curate_measures_them(imported):
    pan, tilt = _clip(imported, 1), _clip(imported, 2)
    shots = imported["shots"]
    for clip, label in ((pan, "pan_right"), (tilt, "tilt_up")):
        shot = shots[label]
        assert shot["start_frame"] <= clip.start_frame and clip.end_frame <= shot["end_frame"]
        assert clip.camera_motion == label and len(clip.camera_timeline) >= 1
        assert clip.camera_motion_score > 0 and len(clip.colors) >= 1
    assert _clip(imported, 4).camera_motion == "pan_right"
    assert read_table(imported["out"], "scenes").empty  # nothing is split: the CSV's ranges are the clips


def test_the_clip_is_the_source_frames(imported):
    """The first and last frame of the 60-fps-listed clip are source frames 100 and 166 of the 25 fps file."""
    clip = _clip(imported, 1)
    with av.open(str(imported["videos"] / f"Moves A [{MOVES}].mp4")) as c:
        source = {i: f.to_ndarray(format="gray").astype(np.float32) for i, f in enumerate(c.decode(video=0))
                  if clip.start_frame - 1 <= i <= clip.end_frame}
    with av.open(str(imported["out"] / "clips" / f"{clip.clip_id}.mp4")) as c:
        frames = [f.to_ndarray(format="gray").astype(np.float32) for f in c.decode(video=0)]
    for k, i in ((0, clip.start_frame), (len(frames) - 1, clip.end_frame - 1)):
        errors = {j: np.abs(frames[k] - s).mean() for j, s in source.items()}
        assert min(errors, key=errors.get) == i


def test_csv_columns_are_carried(imported):
    for row in (1, 2, 4):
        carried = json.loads(_clip(imported, row).import_row)
        assert carried == dict(zip(COLUMNS[:-1], ROWS[row - 1][:-1], strict=True))  # all but the caption


def test_missing_broken_and_outside_rows_have_reasons(imported):
    sources = imported["sources"].set_index("source")
    gone = sources.loc[f"https://www.youtube.com/watch?v={GONE}"]
    assert gone.status == "rejected" and gone.reason == "missing_video" and GONE in gone.message
    assert sources.loc[f"https://www.youtube.com/shorts/{LATE}"].reason == "missing_video"
    broken = sources.loc[str(imported["videos"] / f"{BROKEN}.mp4")]
    assert broken.status == "rejected" and broken.reason == "not_a_video"
    moves = sources.loc[str(imported["videos"] / f"Moves A [{MOVES}].mp4")]
    assert moves.status == "ok" and "row 3 (24.00-28.00 s) holds no frame of the video" in moves.warning
    assert len(imported["clips"]) == 3 and imported["clips"].keep.all()
    stdout = imported["first"].stdout
    assert "rejected: missing_video  2" in stdout and "skipped (unreadable)   1" in stdout
    assert "CSV row 8 skipped: framestamp '(10,)'" in (imported["out"] / "curate.log").read_text()


def test_captions_are_kept_checked_and_sharded(imported):
    out = imported["out"]
    captions = read_table(out, "captions").set_index("clip_id").astype(object)
    captions = captions.where(captions.notna(), None)
    pan, tilt = _clip(imported, 1), _clip(imported, 2)
    assert set(captions.index) == {pan.clip_id, tilt.clip_id}  # the 30 fps clip's caption is empty: none
    good, short = captions.loc[pan.clip_id], captions.loc[tilt.clip_id]
    assert good.caption == CAPTION.strip() and good.qa_passed and good.backend == "imported"
    assert good.model == "csv:caption" and good.prompt_version is None and good.error is None
    assert not short.qa_passed and short.qa_reason.startswith("too_short")

    shard = run_droplet(["shard", str(out)])
    assert shard.returncode == 0, shard.stderr[-3000:]
    import shards

    samples = list(shards.iter_samples(shards.shard_urls(out)))
    assert [s["__key__"] for s in samples] == [pan.clip_id]  # QA-passed captions only, by default
    sample = samples[0]
    assert sample["txt"] == CAPTION.strip() and sample["json"]["backend"] == "imported"
    assert json.loads(sample["json"]["import_row"])["quality_score"] == "0.91"
    assert sample["mp4"] == (out / "clips" / f"{pan.clip_id}.mp4").read_bytes()


def test_a_rerun_resumes_and_takes_a_video_downloaded_since(imported):
    out = imported["out"]
    again = run_droplet(imported["args"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already done (skipped)   3" in again.stdout and "captions committed       0" in again.stdout
    assert pq.read_table(out / "clips.parquet").equals(imported["clips_arrow"])
    assert len(list((out / "_work" / "captions").glob("*.parquet"))) == 1

    shutil.move(imported["root"] / "later" / f"{LATE}.mp4", imported["videos"] / f"{LATE}.mp4")
    late = run_droplet(imported["args"])
    assert late.returncode == 0, late.stderr[-3000:]
    sources = read_table(out, "sources")
    assert list(sources.reason[sources.status == "rejected"].sort_values()) == ["missing_video", "not_a_video"]
    clips = read_table(out, "clips")
    new = clips[~clips.clip_id.isin(imported["clips"].clip_id)]
    assert len(new) == 1 and (new.start_frame.iloc[0], new.end_frame.iloc[0]) == expected_frames(ROWS[4])


def test_unusable_arguments_exit_2(tmp_path):
    table = tmp_path / "m.csv"
    table.write_text("url,framestamp\nhttps://youtu.be/abcdefghijk,\"(0, 9)\"\n")
    result = run_droplet(["import-droplet", str(table), str(tmp_path), str(tmp_path / "out")])
    assert result.returncode == 2 and "has no column fps" in result.stderr
    table.write_text("url,fps,framestamp\n")
    result = run_droplet(["import-droplet", str(table), str(tmp_path), str(tmp_path / "out"), "--caption-column",
                          "text"])
    assert result.returncode == 2 and "--caption-column text: " in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("url", "vid"), [
    ("https://www.youtube.com/watch?v=abcdefghijk", "abcdefghijk"),
    ("https://www.youtube.com/watch?feature=share&v=a-b_c-d_e-f", "a-b_c-d_e-f"),
    ("youtube.com/watch?v=abcdefghijk&t=30s", "abcdefghijk"),
    ("https://youtu.be/abcdefghijk?si=x", "abcdefghijk"),
    ("https://m.youtube.com/shorts/abcdefghijk", "abcdefghijk"),
    ("https://www.youtube.com/embed/abcdefghijk", "abcdefghijk"),
    ("abcdefghijk", "abcdefghijk"),
    ("https://vimeo.com/abcdefghijk", None),
    ("https://www.youtube.com/watch?v=short", None),
])
def test_youtube_ids(url, vid):
    assert youtube_id(url) == vid


def test_file_names_times_and_frames():
    assert video_id_of_file("abcdefghijk.mp4") == "abcdefghijk"
    assert video_id_of_file("A title [abcdefghijk].webm") == "abcdefghijk"
    assert video_id_of_file("abcdefghijk.f137.mp4") is None and video_id_of_file("clip.mp4") is None
    assert parse_framestamp("(120, 300)") == parse_framestamp("[120,300]") == (120, 300)
    with pytest.raises(ValueError):
        parse_framestamp("(300, 120)")
    assert frame_time(101, 60) == 1.68 and frame_time(200, 60) == 3.33  # 10 ms, as the released script
    bounds = np.arange(11) / 30  # ten frames at 30 fps and the end of the last
    assert [nearest_frame(bounds, t) for t in (0.0, 0.016, 0.017, 0.33, 0.35, 9.0)] == [0, 0, 1, 10, 10, 10]
    assert output_rate(30.0) == 30 and output_rate(29.97) == Fraction(30000, 1001) and output_rate(24.0) == 24
