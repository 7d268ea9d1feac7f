"""The grounded captioner's prose and the QA parser's vocabulary, without a curate run: every label and every
synonym people write, both directions; a/an; still cameras; scene tags, on-screen text and aesthetic score only
above their thresholds; the same bytes for a clip on every run. The synthetic set's captions are measured in
test_captioning.py."""

from __future__ import annotations

import re

import pytest

from captioning.grounded import ENTER_LEAVE, MOVE_TEXT, MOVE_VARIANTS, GroundedCaptioner, GroundedConfig, article
from captioning.qa import check_caption, mentioned_moves
from captioning.timeline import DIRECTIONAL, OPPOSITE, Segment, segments_of
from captioning.variety import most_common_sentence, sentences
from shards.labels import CAMERA_LABELS

FILLER = ("The light stays even and the colours hold steady from the first frame to the last, while the layout "
          "of the scene remains easy to follow. ")

SAID = {  # what people write -> the move, from the camera's point of view
    "pan_left": ["The camera pans slowly to the left.", "A leftward pan crosses the room.",
                 "The camera pans from right to left across the bay.", "It is a right-to-left pan."],
    "pan_right": ["The camera pans to the right.", "The camera pans from left to right over the roofs."],
    "tilt_up": ["The camera tilts upward.", "The camera tilts from bottom to top along the tower."],
    "tilt_down": ["The camera tilts down to the floor.", "The camera tilts from top to bottom."],
    "zoom_in": ["The camera zooms in on the door."], "zoom_out": ["The lens zooms out slowly."],
    "roll_cw": ["The camera rolls clockwise."], "roll_ccw": ["The camera rolls counter-clockwise.",
                                                             "The camera rotates anticlockwise."],
    "truck_left": ["The camera trucks to the left.", "The camera travels sideways to the left past the shops.",
                   "The camera slides sideways left.", "The camera crabs to the left.",
                   "The camera moves laterally to the left."],
    "truck_right": ["The camera trucks right.", "The camera travels sideways to the right past the shops.",
                    "The camera glides sideways toward the right.", "The camera crabs right."],
    "pedestal_up": ["The camera pedestals up.", "The camera cranes up over the wall.", "The shot booms up.",
                    "The camera slowly rises above the crowd.", "The camera moves straight up the facade."],
    "pedestal_down": ["The camera pedestals down.", "The camera cranes down to the street.",
                      "The shot booms down.", "The camera descends to the water.",
                      "The camera moves vertically down."],
    "dolly_in": ["The camera dollies in.", "The camera pushes in on her face.", "A slow push-in reaches the door.",
                 "The camera moves forward through the hall.", "We glide closer to the statue."],
    "dolly_out": ["The camera dollies out.", "The camera pulls back to reveal the hall.",
                  "A pull-back shows the square.", "The camera pulls out slowly.", "The camera moves backward.",
                  "The camera retreats from the table."],
    "orbit_left": ["The camera orbits to the left.", "The camera arcs around to the left of the statue.",
                   "The camera circles the fountain to the left.", "The camera revolves around her to the left."],
    "orbit_right": ["The camera orbits right.", "The camera arcs around to the right.",
                    "The camera circles around the dancer to the right."],
    "tracking_left": ["The camera tracks left.", "The camera follows the cyclist to the left.",
                      "The camera follows the runner as she heads to the left."],
    "tracking_right": ["The camera tracks to the right.", "The camera follows the cyclist to the right.",
                       "It follows the car to the right."],
}
NOT_THE_CAMERA = ["A dog follows its owner to the right.", "A car pulls out of the lot.",
                  "The crowd travels sideways to the left.", "A bird rises into the sky.",
                  "The waves push in toward the shore."]


def _caption(sentence: str) -> str:
    return sentence + " " + FILLER * 8


def _segments(label: str, confidence: float = 0.9) -> list[Segment]:
    return [Segment(0.0, 4.0, label, 0.0 if label == "static" else 0.1, confidence)]


def _clip(labels: list[str], clip_id: str = "src-0-100", **columns) -> dict:
    timeline = [{"start_s": 20.0 + 2 * i, "end_s": 22.0 + 2 * i, "label": label, "confidence": 0.9,
                 "speed": 0.0 if label == "static" else 0.12} for i, label in enumerate(labels)]
    return {"clip_id": clip_id, "start_s": 20.0, "end_s": 20.0 + 2 * len(labels), "brightness": 0.5,
            "colors": ["#204060", "#c0c0c0", "#e6d23c"], "object_motion_score": 0.0, "fps": 25.0,
            "num_frames": 50 * len(labels), "width": 1280, "height": 720, "camera_timeline": timeline, **columns}


# ------------------------------------------------------------------------------------------------ QA parser


def test_every_directional_label_has_phrases_here():
    assert set(SAID) == set(DIRECTIONAL)


@pytest.mark.parametrize("label, text", [(label, text) for label, texts in SAID.items() for text in texts])
def test_qa_reads_each_phrase_as_its_move_and_catches_the_opposite(label, text):
    assert mentioned_moves(text) == {label}, text
    assert check_caption(_caption(text), _segments(label), 150, 260, 0.5).passed
    wrong = check_caption(_caption(text), _segments(OPPOSITE[label]), 150, 260, 0.5)
    assert not wrong.passed and wrong.reason.startswith("wrong_direction"), wrong.reason
    still = check_caption(_caption(text), _segments("static"), 150, 260, 0.5)
    assert not still.passed and still.reason.startswith("moved_a_still_camera"), still.reason


@pytest.mark.parametrize("text", NOT_THE_CAMERA)
def test_synonyms_other_things_do_count_only_for_the_camera(text):
    assert mentioned_moves(text) == set()


def test_a_gap_never_runs_over_a_second_move():
    assert mentioned_moves("The camera follows the runner and then pans left.") == {"pan_left"}


# ------------------------------------------------------------------------------------------------ grounded words


def test_every_grounded_phrasing_names_exactly_its_move():
    assert set(MOVE_TEXT) == set(CAMERA_LABELS) and set(MOVE_VARIANTS) <= set(MOVE_TEXT)
    for label, canonical in MOVE_TEXT.items():
        for action, effect in (canonical, *MOVE_VARIANTS.get(label, ())):
            text = f"{action.format(pace='slowly')}, {effect.format(surround='the street')}."
            assert mentioned_moves(text) & DIRECTIONAL == {label} & DIRECTIONAL, text
    for family, options in ENTER_LEAVE.items():
        for option in options:
            for way in ("left", "right", "up", "down", "in", "out"):
                text = option.format(start=way, end=way, way=way, start_v="top", end_v="bottom", grows="swells",
                                     edges="are cropped away", grows_fast="grow faster", surround="the street")
                assert mentioned_moves(text) & DIRECTIONAL == set(), (family, text)


@pytest.mark.parametrize("label", sorted(CAMERA_LABELS))
def test_grounded_captions_of_every_label_pass_qa_under_many_clip_ids(label):
    captioner = GroundedCaptioner()
    for i in range(25):
        clip = _clip([label], clip_id=f"src{i}-0-{label}")
        text = captioner.caption(clip)
        assert check_caption(text, segments_of(clip), 150, 260, 0.5).passed, text
        assert mentioned_moves(text) & DIRECTIONAL == {label} & DIRECTIONAL, text


@pytest.mark.parametrize("word, expected", [
    ("evenly lit", "an"), ("dimly lit", "a"), ("outdoor", "an"), ("indoor", "an"), ("unique", "a"),
    ("hour", "an"), ("6.0-second", "a"), ("8.2-second", "an"), ("11.0-second", "an"), ("18.5-second", "an"),
    ("80-second", "an"), ("1.5-second", "a"), ("nocturnal", "a"), ("airy and open", "an"), ("one-off", "a"),
])
def test_article(word, expected):
    assert article(word) == expected


WRONG_ARTICLE = re.compile(r"\b[Aa] (?!uni|use|usu|one|eu)[aeiouAEIOU]|\b[Aa] (?:8|1[18][.\s-])"
                           r"|\b[Aa]n [b-df-hj-np-tv-z]|\b[Aa]n (?:[02-79]|1(?![18][.\s-]))")


def test_grammar_and_still_cameras_over_many_clips():
    captioner = GroundedCaptioner()
    for i in range(60):
        for labels in (["static"], ["static", "static"], ["pan_left"], ["zoom_in", "static", "tilt_up"],
                       ["shaky"], ["edited"]):
            for brightness in (0.1, 0.3, 0.5, 0.8):
                clip = _clip(labels, clip_id=f"g{i}-{'-'.join(labels)}", brightness=brightness,
                             end_s=20.0 + 2 * len(labels) + (i % 12) * 0.7)
                text = captioner.caption(clip)
                assert not WRONG_ARTICLE.search(text), text
                assert "  " not in text and " ," not in text and ".." not in text, text
                if set(labels) == {"static"}:
                    assert mentioned_moves(text) & DIRECTIONAL == set(), text
                    assert "frame widths" not in text and "sense of travel" not in text, text
                    assert "camera's movement" not in text and "Apart from the camera" not in text, text
                    assert "holds still" in text or "stays fixed" in text or "remains still" in text, text


def test_a_slow_mover_never_claims_zero_travel():
    clip = _clip(["pan_right"])
    clip["camera_timeline"][0]["speed"] = 0.01
    text = GroundedCaptioner().caption(clip)
    assert "0.0 frame widths" not in text and "sense of travel" not in text


# ------------------------------------------------------------------------------------------------ scene, text, looks

SCENE = [{"tag": "outdoor", "score": 0.93}, {"tag": "city", "score": 0.71}, {"tag": "water", "score": 0.52},
         {"tag": "people", "score": 0.66}, {"tag": "vehicles", "score": 0.41}, {"tag": "night", "score": 0.88}]


def test_scene_tags_text_and_looks_are_said_only_above_their_thresholds():
    clip = _clip(["pan_right"], scene_tags=SCENE, ocr_text="OPEN 24 HOURS | Main St", aesthetic_score=6.4)
    text = GroundedCaptioner().caption(clip)
    assert "an evenly lit outdoor scene on a city street at night" in text
    assert "people" in text.lower() and "vehicles" not in text and "water" not in text
    assert '"OPEN 24 HOURS / Main St"' in text
    assert "the street" in text  # what enters the frame is the tagged place
    assert re.search(r"well balanced|attractive", text)
    assert check_caption(text, segments_of(clip), 150, 260, 0.5).passed

    lenient = GroundedCaptioner(config=GroundedConfig(tag_min_score=0.5)).caption(clip)
    assert "vehicles" not in lenient and "people" in lenient.lower()
    middling = GroundedCaptioner().caption({**clip, "aesthetic_score": 5.0})
    assert not re.search(r"well balanced|attractive|plain", middling)
    plain = GroundedCaptioner().caption({**clip, "aesthetic_score": 3.1})
    assert re.search(r"plain", plain)


def test_nothing_is_said_of_stages_that_did_not_run_or_of_unreadable_text():
    bare = _clip(["tilt_up"], scene_tags=None, ocr_text=None, aesthetic_score=None, exposure=None)
    text = GroundedCaptioner().caption(bare)
    assert "outdoor" not in text and '"' not in text and "composed" not in text and "exposure" not in text
    for junk in ("|", "a |", "~ ~ ~ ~", "the camera pans left"):
        assert '"' not in GroundedCaptioner().caption({**bare, "ocr_text": junk}), junk
    weak = [{"tag": "indoor", "score": 0.55}, {"tag": "room", "score": 0.4}]
    assert "indoor" not in GroundedCaptioner().caption({**bare, "scene_tags": weak})


def test_tags_outside_the_default_vocabulary_use_their_configured_words():
    clip = _clip(["static"], scene_tags=[{"tag": "snow", "score": 0.8}])
    assert "snow" in GroundedCaptioner().caption(clip)
    worded = GroundedCaptioner(config=GroundedConfig(tag_phrases={"snow": "a snowy landscape"})).caption(clip)
    assert "a snowy landscape" in worded


# ------------------------------------------------------------------------------------------------ determinism, variety


def test_a_clip_gets_the_same_bytes_every_time_and_clips_get_different_words():
    clip = _clip(["pan_left", "tilt_down"], scene_tags=SCENE, ocr_text="EXIT")
    assert GroundedCaptioner().caption(clip) == GroundedCaptioner().caption(dict(clip))
    texts = [GroundedCaptioner().caption({**clip, "clip_id": f"src-{i}-100"}) for i in range(40)]
    sentence, share = most_common_sentence(texts)
    assert len(set(texts)) == len(texts)
    assert share <= 0.6, (sentence, share)  # the same clip 40 times over: only the wording may differ


def test_most_common_sentence_share():
    assert sentences('One. Two says "x". Three!') == ["One.", 'Two says "x".', "Three!"]
    assert most_common_sentence(["A. B.", "A. C.", "D. D."]) == ("A.", pytest.approx(2 / 3))
    assert most_common_sentence([]) == (None, 0.0)
