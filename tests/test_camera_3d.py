"""Camera labels in layered 3D scenes with exact truth (`droplet/sample_data/layered.py`): a far backdrop, a
mid-depth subject and near posts, one shot per move. Travel is told from a turn by parallax, an orbit by layers
sliding both ways around a held subject, tracking by a held subject with the background sliding; every shot's
paper class follows. The 2D set's labels are checked in test_curate_outputs.py."""

from __future__ import annotations

import pandas as pd


def _shot_clips(clips: pd.DataFrame, source: str, shot: dict) -> pd.DataFrame:
    """The clips cut from one shot (clips start and end a few frames inside their scene)."""
    mine = clips[clips.source == source]
    return mine[(mine.start_frame >= shot["start_frame"] - 3) & (mine.end_frame <= shot["end_frame"] + 3)]


def _outcomes(curated: dict, truth: dict) -> list[tuple[str, str, str | None, list[str], list[str]]]:
    rows = []
    for relpath, video in truth["synthetic3d"].items():
        source = str(curated["sample"] / relpath)
        for shot in video["shots"]:
            found = _shot_clips(curated["clips"], source, shot)
            longest = found.assign(n=found.end_frame - found.start_frame).sort_values("n").tail(1)
            rows.append((relpath, shot["label"], shot["speed"], longest.camera_motion.tolist(),
                         sorted(set(found.paper_class)), shot["paper_class"]))
    return rows


def test_layered_scenes_get_their_labels_and_paper_classes(curated, truth):
    rows = _outcomes(curated, truth)
    assert len(rows) == sum(len(v["shots"]) for v in truth["synthetic3d"].values()) == 26
    labels_right = [r for r in rows if r[3] == [r[1]]]
    classes_right = [r for r in rows if r[4] == [r[5]]]
    report = "\n".join(f"{r[0]} {r[1]} ({r[2]}): got {r[3]}, classes {r[4]}" for r in rows if r[3] != [r[1]])
    assert len(labels_right) / len(rows) >= 0.95, report
    assert len(classes_right) == len(rows), report


def test_every_new_label_at_two_speeds(truth):
    shots = [s for v in truth["synthetic3d"].values() for s in v["shots"]]
    for label in ("truck_left", "truck_right", "pedestal_up", "pedestal_down", "dolly_in", "dolly_out",
                  "orbit_left", "orbit_right", "tracking_left", "tracking_right"):
        assert {s["speed"] for s in shots if s["label"] == label} == {"slow", "fast"}, label


def test_a_subject_swap_is_a_cut(curated, truth):
    video = truth["synthetic3d"]["synthetic3d/subject.mp4"]
    swap = next(s["subject_swap"] for s in video["shots"] if "subject_swap" in s)
    source = str(curated["sample"] / "synthetic3d/subject.mp4")
    scenes = curated["scenes"]
    sources = curated["sources"].set_index("source")
    starts = scenes[scenes.source_id == sources.loc[source, "source_id"]].start_frame
    assert any(abs(int(s) - swap) <= 2 for s in starts)


def test_every_label_has_words_and_the_qa_parser_finds_the_new_moves():
    from captioning.grounded import MOVE_TEXT
    from captioning.qa import mentioned_moves
    from captioning.timeline import MOVES
    from shards.labels import CAMERA_LABELS, PAPER_CLASS

    assert set(MOVE_TEXT) == set(MOVES) == set(CAMERA_LABELS) == set(PAPER_CLASS)
    said = {
        "the camera trucks slowly to the right": "truck_right", "the camera trucks left": "truck_left",
        "the camera pedestals up": "pedestal_up", "then it pedestals steadily down": "pedestal_down",
        "the camera dollies in": "dolly_in", "the camera dollies out slowly": "dolly_out",
        "the camera orbits to the left around her": "orbit_left", "it orbits right": "orbit_right",
        "the camera tracks left with the cyclist": "tracking_left", "tracks right": "tracking_right",
    }
    for text, label in said.items():
        assert mentioned_moves(text) == {label}, text
    for label in PAPER_CLASS:  # the grounded captioner's own sentence for each move names that move
        if label not in ("static", "shaky", "edited"):
            assert mentioned_moves(MOVE_TEXT[label][0].format(pace="slowly")) == {label}, label
