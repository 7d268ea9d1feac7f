"""The embedded captioner: a ~200-word caption in the paper's structure from what curation measured.

Overview sentence, then a time-ordered account in which each camera move is tied to what enters or leaves
the frame, then a mood sentence. It says only what was measured: the camera timeline with speeds, how much
moves on its own, brightness, exposure, colours, duration and frame shape, and, when the quality stages ran,
the CLIP zero-shot scene tags, the on-screen text and the aesthetic score, each only above its threshold
(`GroundedConfig`). A sentence that would be false or empty for the clip is left out (no travel for a still
camera, no "apart from the camera's movement" where it held still). Wording varies between clips: each
sentence picks one of several phrasings by a hash of the clip_id and its slot, so a clip's caption is the same
bytes on every run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from captioning.qa import checked_segments, count_words, main_move, mentioned_moves
from captioning.timeline import DIRECTIONAL, OPPOSITE, Segment, pace, segments_of

NAMED_COLOURS = {
    "black": (20, 20, 20), "charcoal": (60, 60, 60), "grey": (128, 128, 128), "silver": (192, 192, 192),
    "white": (240, 240, 240), "red": (200, 40, 40), "dark red": (120, 20, 20), "orange": (230, 130, 40),
    "brown": (120, 80, 40), "beige": (220, 200, 160), "yellow": (230, 210, 60), "olive": (120, 120, 40),
    "green": (60, 160, 60), "dark green": (30, 80, 40), "teal": (40, 130, 130), "cyan": (80, 200, 220),
    "sky blue": (130, 180, 230), "blue": (40, 80, 200), "navy": (20, 30, 90), "purple": (120, 60, 160),
    "magenta": (200, 60, 160), "pink": (240, 160, 190),
}

MOVE_TEXT = {
    "pan_right": ("the camera pans {pace} to the right", "so the scene slides leftward across the frame: new "
                  "parts of {surround} enter from the right edge while what was on the left slips out of view"),
    "pan_left": ("the camera pans {pace} to the left", "so the scene slides rightward across the frame: new "
                 "parts of {surround} enter from the left edge while what was on the right slips out of view"),
    "tilt_up": ("the camera tilts {pace} upward", "so the scene drifts down the frame, revealing what lies "
                "above the first view while its lower part leaves through the bottom edge"),
    "tilt_down": ("the camera tilts {pace} downward", "so the scene drifts up the frame, revealing what lies "
                  "below the first view while its upper part leaves through the top edge"),
    "zoom_in": ("the camera zooms in {pace}", "so the centre of the scene grows larger while the edges and the "
                "details near them leave the frame"),
    "zoom_out": ("the camera zooms out {pace}", "so the view widens, bringing more of {surround} in from every "
                 "edge while the centre of the scene grows smaller"),
    "roll_cw": ("the camera rolls {pace} clockwise", "so the whole scene turns counter-clockwise on screen and "
                "its horizontal lines tilt away from level"),
    "roll_ccw": ("the camera rolls {pace} counter-clockwise", "so the whole scene turns clockwise on screen and "
                 "its horizontal lines tilt away from level"),
    "truck_right": ("the camera trucks {pace} to the right", "so the scene slides leftward, nearby things faster "
                    "than the distance, and new parts of {surround} enter from the right edge"),
    "truck_left": ("the camera trucks {pace} to the left", "so the scene slides rightward, nearby things faster "
                   "than the distance, and new parts of {surround} enter from the left edge"),
    "pedestal_up": ("the camera pedestals {pace} up", "rising so the scene drifts down the frame, nearby things "
                    "faster than the distance, revealing what lies above"),
    "pedestal_down": ("the camera pedestals {pace} down", "sinking so the scene drifts up the frame, nearby "
                      "things faster than the distance, revealing what lies below"),
    "dolly_in": ("the camera dollies in {pace}", "moving forward so nearby things grow faster than the "
                 "background and the edges of the view slip out of the frame"),
    "dolly_out": ("the camera dollies out {pace}", "moving back so nearby things shrink faster than the "
                  "background and more of {surround} comes in from every edge"),
    "orbit_right": ("the camera orbits {pace} to the right", "circling the subject, which stays in place while "
                    "the background slides right and the foreground left, revealing its other side"),
    "orbit_left": ("the camera orbits {pace} to the left", "circling the subject, which stays in place while "
                   "the background slides left and the foreground right, revealing its other side"),
    "tracking_right": ("the camera tracks {pace} right", "following the subject as it travels right, so the "
                       "subject stays in frame while {surround} slides past to the left"),
    "tracking_left": ("the camera tracks {pace} left", "following the subject as it travels left, so the "
                      "subject stays in frame while {surround} slides past to the right"),
    "static": ("the camera holds still", "keeping the framing fixed, so nothing enters or leaves the frame "
               "through the camera's doing"),
    "shaky": ("the camera shakes with a hand-held jitter", "so the framing trembles back and forth without "
              "settling into any one direction"),
    "edited": ("the picture is blended by a fade or dissolve", "so one view gives way to another without a "
               "clean cut"),
}
"""Each label's canonical (action, effect); `{pace}` takes a speed word and `{surround}` what surrounds the
subject (the scene's place when a tag says it, else "the surrounding scene"; always singular)."""

MOVE_VARIANTS: dict[str, tuple[tuple[str, str], ...]] = {
    "pan_right": (("the camera pans {pace} rightward", "sweeping {surround} leftward across the picture, so "
                   "fresh areas appear at the right edge and the left side drops out of view"),
                  ("the view pans {pace} to the right", "and {surround} glides leftward through the frame, "
                   "new detail arriving on the right as the left edge gives up what it held")),
    "pan_left": (("the camera pans {pace} leftward", "sweeping {surround} rightward across the picture, so "
                  "fresh areas appear at the left edge and the right side drops out of view"),
                 ("the view pans {pace} to the left", "and {surround} glides rightward through the frame, "
                  "new detail arriving on the left as the right edge gives up what it held")),
    "tilt_up": (("the camera tilts {pace} up", "lifting the view so that what sat above the first framing comes "
                 "in at the top and the ground-level part of the picture exits at the bottom"),),
    "tilt_down": (("the camera tilts {pace} down", "lowering the view so that what sat below the first framing "
                   "comes in at the bottom and the upper part of the picture exits at the top"),),
    "zoom_in": (("the lens zooms in {pace}", "magnifying the middle of the picture until the outer parts of "
                 "{surround} are cropped away at the edges"),),
    "zoom_out": (("the lens zooms out {pace}", "shrinking the middle of the picture as more of {surround} "
                  "appears around it on every side"),),
    "roll_cw": (("the camera rolls {pace} clockwise", "turning the horizon counter-clockwise on screen, so "
                 "lines that were level now lean"),),
    "roll_ccw": (("the camera rolls {pace} counter-clockwise", "turning the horizon clockwise on screen, so "
                  "lines that were level now lean"),),
    "truck_right": (("the camera trucks {pace} to the right", "gliding across the scene so that near objects "
                     "sweep leftward faster than the far ones and {surround} opens up on the right"),),
    "truck_left": (("the camera trucks {pace} to the left", "gliding across the scene so that near objects "
                    "sweep rightward faster than the far ones and {surround} opens up on the left"),),
    "pedestal_up": (("the camera pedestals {pace} up", "so the whole view slides down the frame, near things "
                     "faster than far ones, and what was above comes into sight"),),
    "pedestal_down": (("the camera pedestals {pace} down", "so the whole view slides up the frame, near things "
                       "faster than far ones, and what was below comes into sight"),),
    "dolly_in": (("the camera dollies in {pace}", "so near things swell faster than the distance and the outer "
                  "parts of {surround} pass out of the frame"),),
    "dolly_out": (("the camera dollies out {pace}", "so near things shrink faster than the distance and more of "
                   "{surround} enters at every edge"),),
    "orbit_right": (("the camera orbits {pace} to the right", "with the subject held near the centre while the "
                     "backdrop behind it sweeps right and nearer things sweep left"),),
    "orbit_left": (("the camera orbits {pace} to the left", "with the subject held near the centre while the "
                    "backdrop behind it sweeps left and nearer things sweep right"),),
    "tracking_right": (("the camera tracks {pace} to the right", "keeping pace with the subject moving right, "
                        "which stays framed while {surround} streams past to the left"),),
    "tracking_left": (("the camera tracks {pace} to the left", "keeping pace with the subject moving left, "
                       "which stays framed while {surround} streams past to the right"),),
    "static": (("the camera stays fixed", "so the composition does not change and nothing is brought into or "
                "taken out of view by the camera"),
               ("the camera remains still", "so the edges of the frame stay where they are")),
    "shaky": (("the camera trembles in a hand-held way", "so the framing wobbles slightly without heading "
               "anywhere"),),
    "edited": (("a fade or dissolve blends the picture", "so one view melts into the next without a hard cut"),),
}
"""More phrasings of each label (the QA parser reads every one as that label; a test keeps it so)."""

ENTER_LEAVE = {
    "pan": ("What first sat at the {start} edge is the first thing to leave the view, while {surround} keeps "
            "arriving from the {end}.",
            "The {end} edge keeps revealing more of {surround}, and the {start} edge keeps letting it go."),
    "truck": ("Near things at the {start} edge slip out of the picture first; the {end} edge keeps bringing in more "
              "of {surround}.",
              "More of {surround} appears at the {end} edge as nearer things leave at the {start}."),
    "tracking": ("The subject stays framed while {surround} streams in at the {end} edge and away at the {start}.",
                 "Beside the held subject, {surround} enters on the {end} and exits on the {start}."),
    "orbit": ("As the viewpoint swings {way}, sides of the subject that faced away at the start turn towards the "
              "lens.",
              "Little by little the subject shows faces that were hidden in the first frame."),
    "tilt": ("New parts of {surround} keep arriving at the {end_v} edge while the {start_v} edge gives them up.",
             "Whatever sat at the {start_v} of the first frame is gone by the end, replaced from the {end_v}."),
    "pedestal": ("The {end_v} edge is where new parts of {surround} arrive, and the {start_v} edge is where they "
                 "leave.",
                 "From the {end_v} edge more of {surround} comes in, while the {start_v} edge lets it go."),
    "zoom": ("The middle of the picture {grows} as the edges {edges}.",
             "As the lens works, the centre {grows} and the borders {edges}."),
    "dolly": ("Near things {grows_fast} than the distance, which is how the travel shows itself.",
              "The travel shows in the depth: near things {grows_fast} than far ones."),
    "roll": ("Level lines in {surround} lean further as the roll goes on.",
             "The horizon leans more and more as the roll goes on."),
}
"""For the main move's family: one sentence on what enters and leaves (directions filled per move)."""

UNCERTAIN = (("the camera moves in a way too uncertain to name", "so the view shifts only subtly"),
             ("the camera's motion is too faint to name with confidence", "and the framing changes only a little"))

PLACES = {"city": ("on a city street", "the street"), "nature": ("in a natural setting of trees and plants",
                                                                  "the greenery"),
          "water": ("by open water", "the water"), "sky": ("under open sky", "the sky"),
          "room": ("inside a room", "the room")}
"""The default `place` tags: (the overview's phrase, what surrounds the subject)."""
SETTINGS = {"indoor", "outdoor"}
TIMES = {"day": "by day", "night": "at night"}
SUBJECTS = {"people": "people", "animals": "animals", "vehicles": "vehicles"}
SCENERY = "scenery"


FAMILY_NOUN = {"pan": "pan", "tilt": "tilt", "zoom": "zoom", "roll": "roll", "truck": "truck move",
               "pedestal": "pedestal move", "dolly": "dolly move", "orbit": "orbit", "tracking": "tracking move"}
SPEED_WORD = {"slowly": "slow", "steadily": "steady", "quickly": "quick"}


class GroundedConfig(BaseModel):
    """What the grounded captioner says from the quality stages' columns, and from what score on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tag_min_score: float = Field(0.6, gt=0, le=1, description="A scene tag is said when its score reaches this.")
    tag_phrases: dict[str, str] = Field(
        default_factory=dict, description="Words for tags outside the default vocabulary (tag -> a noun phrase: "
        "'a snowy landscape'); a tag without one is said by its name.")
    ocr_min_chars: int = Field(4, ge=1, description="On-screen text is quoted when it has this many letters/digits.")
    ocr_max_words: int = Field(10, ge=1, description="Quoted on-screen text is cut after this many words.")
    aesthetic_high: float = Field(6.0, description="An aesthetic score from here up is called well composed.")
    aesthetic_low: float = Field(4.0, description="An aesthetic score under this is called plain.")


def article(word: str) -> str:
    """'a' or 'an' for the word (or number) that follows: 'an evenly', 'a 6.0-second', 'an 8.2-second',
    'an 11-second', 'a unique', 'an hour'."""
    w = word.strip().lower()
    digits = re.match(r"\d+", w)
    if digits:
        n = digits.group(0)
        return "an" if n.startswith("8") or (len(n) in (2, 5) and n[:2] in ("11", "18")) else "a"
    if re.match(r"(?:uni|use|usu|uti|eu|one|once|ure)", w):
        return "a"
    if re.match(r"(?:hour|honest|honou?r|heir)", w):
        return "an"
    return "an" if w[:1] in ("a", "e", "i", "o", "u") else "a"


def with_article(phrase: str) -> str:
    return f"{article(phrase)} {phrase}"


def colour_name(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return min(NAMED_COLOURS, key=lambda n: sum((a - c) ** 2 for a, c in zip((r, g, b), NAMED_COLOURS[n],
                                                                              strict=True)))


def _palette(clip: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for hex_colour in list(clip.get("colors") or [])[:4]:
        name = colour_name(str(hex_colour))
        if name not in names:
            names.append(name)
    return names


def _join(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _light(brightness: float) -> str:
    if brightness < 0.25:
        return "dimly lit"
    if brightness < 0.45:
        return "softly lit"
    if brightness < 0.65:
        return "evenly lit"
    return "brightly lit"


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN is "not measured"


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text[:1].upper() + text[1:]


class Scene:
    """What the quality stages measured that clears its threshold: tags by kind, on-screen text, looks."""

    def __init__(self, clip: dict[str, Any], cfg: GroundedConfig):
        tags = [(str(t.get("tag")), _float(t.get("score")) or 0.0) for t in clip.get("scene_tags") or []
                if isinstance(t, dict) and t.get("tag")]
        sure = [tag for tag, score in sorted(tags, key=lambda ts: -ts[1]) if score >= cfg.tag_min_score]
        self.setting = next((t for t in sure if t in SETTINGS), None)
        self.place = next((t for t in sure if t in PLACES), None)
        self.time = next((t for t in sure if t in TIMES), None)
        self.subjects = [t for t in sure if t in SUBJECTS]
        self.scenery = SCENERY in sure and not self.subjects
        known = SETTINGS | set(PLACES) | set(TIMES) | set(SUBJECTS) | {SCENERY}
        self.other = [cfg.tag_phrases.get(t, t.replace("_", " ")) for t in sure if t not in known]
        self.text = self._quote(clip.get("ocr_text"), cfg)
        score = _float(clip.get("aesthetic_score"))
        self.looks = None if score is None else "high" if score >= cfg.aesthetic_high else (
            "low" if score < cfg.aesthetic_low else None)

    @staticmethod
    def _quote(raw: Any, cfg: GroundedConfig) -> str | None:
        if not isinstance(raw, str):
            return None
        text = " ".join(raw.replace('"', "'").replace(" | ", " / ").split())
        if sum(ch.isalnum() for ch in text) < cfg.ocr_min_chars or sum(ch.isalpha() for ch in text) < 2:
            return None
        words = text.split()
        text = " ".join(words[:cfg.ocr_max_words]) + (" ..." if len(words) > cfg.ocr_max_words else "")
        return None if mentioned_moves(text) else text  # text that names a camera move would confuse QA

    @property
    def surround(self) -> str:
        return PLACES[self.place][1] if self.place else "the surrounding scene"


class GroundedCaptioner:
    """Writes captions from clip rows (dicts with clips.parquet columns)."""

    backend = "grounded"
    model = "templates-v2"

    def __init__(self, min_words: int = 150, max_words: int = 260, target_words: int = 200,
                 min_confidence: float = 0.5, config: GroundedConfig | None = None):
        self.min_words, self.max_words, self.target = min_words, max_words, target_words
        self.min_confidence = min_confidence
        self.config = config or GroundedConfig()

    # ------------------------------------------------------------------------------------------- choices

    @staticmethod
    def _pick(clip_id: str, slot: str, options: Sequence[Any]) -> Any:
        """One of `options`, the same for a clip_id and slot on every run."""
        digest = hashlib.sha1(f"{clip_id}\x00{slot}".encode()).hexdigest()
        return options[int(digest[:8], 16) % len(options)]

    def caption(self, clip: dict[str, Any]) -> str:
        cid = str(clip.get("clip_id", ""))
        segments = self._trusted(clip, segments_of(clip))
        scene = Scene(clip, self.config)
        duration = max(0.1, float(clip.get("end_s", 0.0)) - float(clip.get("start_s", 0.0)))
        sure = [s for s in segments if s.confidence >= self.min_confidence]
        still = bool(segments) and all(s.label == "static" and s.confidence >= self.min_confidence
                                       for s in segments)
        core = [self._overview(cid, clip, scene, sure, len(sure) < len(segments), duration)]
        core += [self._segment(cid, seg, i, len(segments), scene) for i, seg in enumerate(segments)]
        core += [s for s in (self._subjects(cid, scene), self._text(cid, scene),
                             self._objects(cid, clip, still, bool(sure),
                                           any(s.label not in ("static", "edited") for s in sure))) if s]
        extras = self._extras(cid, clip, scene, segments, sure, still, duration)
        mood = self._mood(cid, clip, scene, segments, still)
        sentences = core[:]
        for sentence in extras:
            if count_words(" ".join([*sentences, mood])) >= self.target:
                break
            sentences.append(sentence)
        text = " ".join([*sentences, mood])
        while count_words(text) > self.max_words and len(sentences) > 2:
            sentences.pop(-2)
            text = " ".join([*sentences, mood])
        return text

    def camera_sentences(self, clip: dict[str, Any]) -> list[str]:
        """The camera account of `clip` on its own: one sentence per timeline segment, in time order, worded as
        in the full caption (a segment not to name is said to move in a way too uncertain to name)."""
        cid = str(clip.get("clip_id", ""))
        segments = self._trusted(clip, segments_of(clip))
        scene = Scene(clip, self.config)
        return [self._segment(cid, seg, i, len(segments), scene) for i, seg in enumerate(segments)]

    def _trusted(self, clip: dict[str, Any], segments: list[Segment]) -> list[Segment]:
        """The timeline with the segments not to name marked unsure: those QA does not check (under the
        confidence threshold, or a move too small to see), and one that runs against the clip's own overall
        label (`camera_motion`) for less time than the segments that carry it, where the measurement disagrees
        with itself (never the move QA requires)."""
        checked = checked_segments(segments, self.min_confidence)
        required = main_move(checked)
        overall = clip.get("camera_motion")
        backing = sum(s.end_s - s.start_s for s in segments if s.label == overall)

        def doubtful(seg: Segment) -> bool:
            if seg not in checked:
                return True
            return (overall in DIRECTIONAL and seg.label == OPPOSITE[overall] and seg.label != required
                    and seg.end_s - seg.start_s < backing)

        return [Segment(s.start_s, s.end_s, s.label, s.speed, 0.0) if doubtful(s) else s for s in segments]

    # ------------------------------------------------------------------------------------------- sentences

    def _motion(self, sure: list[Segment], unsure: bool) -> str:
        moves: list[str] = []
        for seg in sure:
            if seg.label not in ("static", "edited") and (not moves or moves[-1] != seg.label):
                moves.append(seg.label)
        fade = ", with a fade or dissolve along the way" if any(s.label == "edited" for s in sure) else ""
        if not sure:
            return "the camera's movement is too subtle to read with confidence"
        if not moves:
            if fade:
                return "a fade or dissolve blends one view into another"
            return ("the camera holds still for part of the shot and otherwise moves too subtly to name" if unsure
                    else "the camera stays in place for the whole shot")

        def short(label: str) -> str:
            return " ".join(MOVE_TEXT[label][0].removeprefix("the camera ").format(pace="").split())

        if len(moves) == 1:
            return f"the camera {short(moves[0])}{fade}"
        if len(moves) == 2:
            return f"the camera first {short(moves[0])} and then {short(moves[1])}{fade}"
        return f"the camera moves in {len(moves)} stages, beginning as it {short(moves[0])}{fade}"

    def _overview(self, cid: str, clip: dict, scene: Scene, sure: list[Segment], unsure: bool,
                  duration: float) -> str:
        light = _light(_float(clip.get("brightness")) or 0.5)
        kind = "scene" if not scene.setting else f"{scene.setting} scene"
        where = " ".join(p for p in (PLACES[scene.place][0] if scene.place else "",
                                     TIMES[scene.time] if scene.time else "") if p)
        subject = f"{with_article(light)} {kind}" + (f" {where}" if where else "")
        colours = _palette(clip)
        tones = f" in {_join(colours)} tones" if colours else ""
        edited = any(s.label == "edited" for s in sure)
        shot = "clip" if edited else self._pick(cid, "shot", ("continuous shot", "single shot", "unbroken shot"))
        span = f"{duration:.1f}-second"
        motion = self._motion(sure, unsure)
        template = self._pick(cid, "overview", (
            "{A} {span} {shot} of {subject}{tones}, in which {motion}.",
            "This {span} {shot} shows {subject}{tones}, and {motion}.",
            "{A} {span} {shot} presents {subject}{tones}; {motion}.",
        ))
        return _sentence(template.format(A=article(span), span=span, shot=shot, subject=subject, tones=tones,
                                         motion=motion))

    def _segment(self, cid: str, seg: Segment, index: int, count: int, scene: Scene) -> str:
        slot = f"segment{index}"
        if seg.confidence < self.min_confidence:  # not sure enough to name a move: say only that
            action, effect = self._pick(cid, slot, UNCERTAIN)
        else:
            action, effect = self._pick(cid, slot, (MOVE_TEXT.get(seg.label, MOVE_TEXT["static"]),
                                                    *MOVE_VARIANTS.get(seg.label, ())))
            speed = pace(seg.speed) if seg.speed and seg.label in DIRECTIONAL else ""
            action = action.format(pace=speed)
        effect = effect.format(surround=scene.surround)
        s, e = f"{seg.start_s:.1f}", f"{seg.end_s:.1f}"
        if count == 1:
            openers = ("Throughout the clip", "For the whole shot", "From the first frame to the last",
                       "Over its full length")
        elif index == 0:
            openers = (f"From the start to about {e} seconds", f"During the first {e} seconds",
                       f"Until about {e} seconds in")
        elif index == count - 1:
            openers = (f"From about {s} seconds to the end", f"After about {s} seconds, until the end",
                       f"For the rest of the clip, from about {s} seconds")
        else:
            openers = (f"Between {s} and {e} seconds", f"From about {s} to {e} seconds")
        opener = self._pick(cid, slot + "opener", openers)
        return _sentence(f"{opener}, {' '.join(action.split())}, {effect}.")

    def _subjects(self, cid: str, scene: Scene) -> str | None:
        if scene.subjects:
            who = _join([SUBJECTS[t] for t in scene.subjects])
            return _sentence(self._pick(cid, "subjects", (
                f"{who} are part of the scene.", f"The scene includes {who}.",
                f"{who} can be seen in the frame.")))
        if scene.scenery:
            return self._pick(cid, "scenery", (
                "No people, animals or vehicles stand out: the frame holds scenery alone.",
                "It is a view of scenery, with no people, animals or vehicles drawing the eye."))
        if scene.other:
            return _sentence(f"The scene also shows {_join(scene.other)}.")
        return None

    def _text(self, cid: str, scene: Scene) -> str | None:
        if not scene.text:
            return None
        return self._pick(cid, "text", (f'On-screen text reads "{scene.text}".',
                                        f'Text in the frame reads "{scene.text}".',
                                        f'Lettering in the picture says "{scene.text}".'))

    def _objects(self, cid: str, clip: dict, still: bool, known: bool, camera_moves: bool) -> str | None:
        score = _float(clip.get("object_motion_score"))
        if score is None:
            return None
        if score > 0.02:
            options = (("All of the motion comes from the scene itself: much of it moves on its own while the "
                        "framing stays put.",
                        "With the framing fixed, the changes come from inside the picture, where much of the "
                        "scene moves by itself.",
                        "The picture is busy even though the camera is not: a large part of the scene is in motion.",
                        "Much of what the fixed frame holds is moving, so the picture never settles.") if still else
                       ("Within the frame, much of the scene also moves on its own, independently of the camera, "
                        "so the picture keeps changing even where the camera is steady.",
                        "On top of the camera's motion, a good part of the scene moves by itself, so the picture "
                        "changes from more than one source.",
                        "A large part of the scene is in motion of its own, adding to what the camera does.",
                        "Much of the picture moves by itself as well, so not every change comes from the camera.",
                        "Plenty happens inside the frame too: a good share of the scene moves independently."))
        elif score > 0.004:
            options = (("Small movements inside the frame are the only change, since the framing never shifts.",
                        "Only a few elements stir inside the frame; the framing itself never shifts.",
                        "A little motion inside the picture is all that changes from frame to frame.",
                        "Here and there something in the scene moves, while the frame stays put.") if still else
                       ("Some elements inside the frame move on their own as well, a smaller motion layered on "
                        "top of the camera's.",
                        "A few things in the picture move by themselves, a quieter layer under the camera's "
                        "motion.",
                        "Here and there part of the scene moves on its own, though less than the view does.",
                        "Some motion of the scene's own adds a little life beneath the camera's move."))
        elif still and known:
            options = ("Nothing in the frame moves either, so the picture stays almost unchanged from the first "
                       "frame to the last.",
                       "The scene is as still as the camera, and the picture barely changes from start to end.",
                       "Nothing inside the picture stirs, so it looks nearly the same throughout.",
                       "The contents of the frame keep as still as the camera does.")
        elif known and not camera_moves:
            options = ("Nothing inside the picture moves by itself.", "The scene itself shows no motion of its own.")
        elif known:
            options = ("Apart from the camera's movement, the scene itself stays still from the first frame to "
                       "the last.",
                       "Nothing in the scene moves by itself; every change in view comes from the camera.",
                       "The scene holds still on its own, so all the change in the picture is the camera's doing.",
                       "Only the camera moves here; whatever it shows stays in place.",
                       "Left to itself the scene would not change: the motion belongs to the camera alone.")
        else:
            return None
        return self._pick(cid, "objects", options)

    def _extras(self, cid: str, clip: dict, scene: Scene, segments: list[Segment], sure: list[Segment],
                still: bool, duration: float) -> list[str]:
        """True, non-empty supporting sentences, in an order that depends on the clip."""
        out: dict[str, str] = {}
        colours = _palette(clip)
        if len(colours) > 1:
            out["palette"] = self._pick(cid, "palette", (
                f"The palette is led by {colours[0]}, with {_join(colours[1:])} filling the rest of the frame.",
                f"{colours[0].capitalize()} dominates the colours, set against {_join(colours[1:])}.",
                f"Most of the frame is {colours[0]}, and {_join(colours[1:])} complete the palette.",
            ))
        if not any(s.label == "edited" for s in segments):
            out["continuity"] = self._pick(cid, "continuity", (
                f"The {duration:.1f} seconds run without a cut, so every change in view comes from the camera "
                "itself or from motion inside the scene.",
                f"There is no cut anywhere in these {duration:.1f} seconds; what changes, changes within one "
                "shot.",
                f"All {duration:.1f} seconds belong to one take, with no edit breaking the view.",
            ))
        lateral = [s for s in sure if s.label.split("_")[0] in ("pan", "truck", "tracking", "orbit", "tilt",
                                                                "pedestal")]
        travel = sum(s.speed * (s.end_s - s.start_s) for s in lateral)
        if travel >= 0.1:
            feel = "gentle" if travel < 0.5 else "lively"
            out["travel"] = self._pick(cid, "travel", (
                f"Over the {duration:.1f} seconds the view travels about {travel:.1f} frame widths in all, which "
                f"gives the clip {with_article(feel)} sense of travel.",
                f"In all, the framing covers roughly {travel:.1f} frame widths of ground, {with_article(feel)} "
                "amount of travel for its length.",
            ))
            if travel >= 0.5:
                out["ends"] = self._pick(cid, "ends", (
                    f"By the last frame the camera shows a different part of {scene.surround} from the one it "
                    "started on.",
                    f"The final framing looks onto another stretch of {scene.surround} than the first."))
        lens = [s for s in sure if s.label.split("_")[0] in ("zoom", "dolly")]
        if lens and not lateral:
            closer = lens[-1].label.endswith("_in")
            out["ends"] = (f"By the last frame the view is {'tighter' if closer else 'wider'} than at the "
                           f"start, {'closer to' if closer else 'further from'} the centre of the scene.")
        directional = [s for s in sure if s.label in DIRECTIONAL]
        if (len(directional) == 1 and len(sure) == len(segments) == 1 and not any(s.label == "shaky"
                                                                                 for s in segments)):
            out["smooth"] = self._pick(cid, "smooth", (
                "Because the movement is smooth and sustained, the spatial layout of the scene remains easy to "
                "follow as new areas come into view.",
                "The move is even from start to finish, so the layout of the scene stays easy to read.",
                "One unbroken movement carries the whole clip, which keeps the geography of the scene clear.",
                "With a single sustained move and no change of direction, the space is easy to follow.",
            ))
        if len(segments) > 2:
            out["phases"] = f"The shot falls into {len(segments)} distinct phases of camera behaviour."
        if still:
            out["composition"] = self._pick(cid, "composition", (
                "Because the framing never changes, the composition stays the same from beginning to end.",
                f"The frame works like a fixed window onto {scene.surround} for all {duration:.1f} seconds.",
            ))
        exposure = _float(clip.get("exposure"))
        if exposure is not None:
            if exposure > 0.02:
                out["exposure"] = "Some highlights are blown out to pure white."
            elif exposure < -0.05:
                out["exposure"] = "Parts of the frame sink into deep, detail-less shadow."
            else:
                out["exposure"] = self._pick(cid, "exposure", (
                    "The exposure is balanced, with neither blown highlights nor crushed shadows.",
                    "Highlights and shadows both keep their detail.",
                    "Nothing is blown out to white or lost in black.",
                    "Bright and dark areas alike hold their detail, the exposure well judged.",
                    "The exposure sits comfortably, clipping neither the highlights nor the shadows."))
        light = _light(_float(clip.get("brightness")) or 0.5).split()[0]
        leaning = {"dimly": ", favouring darker tones", "softly": ", leaning towards darker tones",
                   "brightly": ", with plenty of light in every part"}.get(light, "")
        level = _float(clip.get("brightness"))
        if level is not None:
            percent = f"{level * 100:.0f} percent"
            out["light"] = self._pick(cid, "light", (
                f"On average the picture is {light} lit{leaning}, at about {percent} of full white.",
                f"The overall light level reads as {light.removesuffix('ly')}, a mean brightness near {percent}.",
                f"Its mean brightness is about {percent} of full white, so the picture is {light} lit overall.",
            ))
        fps, frames = _float(clip.get("fps")), _float(clip.get("num_frames"))
        width, height = _float(clip.get("width")), _float(clip.get("height"))
        shape = ""
        if width and height:
            ratio = width / height
            kind = ("a wide frame" if ratio > 1.5 else "a standard landscape frame" if ratio > 1.1 else
                    "a square frame" if ratio > 0.9 else "a tall, portrait frame")
            shape = f"{kind} of {int(width)} by {int(height)} pixels"
        if fps and frames:
            out["frames"] = self._pick(cid, "frames", (
                f"It runs at {fps:g} frames per second, {int(frames)} frames in all" + (f", in {shape}." if shape
                                                                                         else "."),
                f"The clip holds {int(frames)} frames at {fps:g} frames per second" + (f", each {shape}."
                                                                                        if shape else ".")))
        elif shape:
            out["frames"] = f"The picture is {shape}."
        size = "brief" if duration < 3 else "moderately long" if duration < 8 else "long"
        out["duration"] = self._pick(cid, "duration", (
            f"At {duration:.1f} seconds it is {with_article(size)} clip.",
            f"Its length, {duration:.1f} seconds, makes it {with_article(size)} clip."))
        main = max(directional, key=lambda seg: seg.end_s - seg.start_s) if directional else None
        if main is not None:
            family, way = main.label.split("_")
            out["speed"] = self._pick(cid, "speed", (
                f"The {FAMILY_NOUN[family]} is {SPEED_WORD[pace(main.speed)]}, at about {main.speed:.2f} frame "
                "widths per second.",
                f"Its speed stays near {main.speed:.2f} frame widths per second, {SPEED_WORD[pace(main.speed)]} "
                "for a clip of this length."))
            other = {"left": "right", "right": "left", "up": "down", "down": "up"}
            sides = {"start": other.get(way, way), "end": way, "way": way,
                     "start_v": "bottom" if way == "up" else "top", "end_v": "top" if way == "up" else "bottom",
                     "grows": "swells" if way == "in" else "shrinks",
                     "edges": "are cropped away" if way == "in" else "open onto more of the scene",
                     "grows_fast": "grow faster" if way == "in" else "shrink faster", "surround": scene.surround}
            if family in ("pan", "truck", "tracking"):  # the scene slides against the move
                sides["start"], sides["end"] = other[way], way
            out["enter_leave"] = self._pick(cid, "enter_leave", ENTER_LEAVE[family]).format(**sides)
        if sure and all(seg.confidence >= 0.8 for seg in segments):
            out["clarity"] = self._pick(cid, "clarity", (
                "The camera's behaviour reads clearly from start to end.",
                "There is no doubt about what the camera does at any point.",
                "What the camera does is plain to see throughout.",
                "The camera's path is easy to read at every moment.",
                *(("Each stage of the camera's behaviour is clear to read.",) if len(segments) > 1 else ())))
        elif sure and len(sure) == len(segments):
            out["clarity"] = self._pick(cid, "clarity", (
                "The camera's behaviour is readable throughout, if not always crisp.",
                "What the camera does can be read at every point, though not always sharply."))
        elif any(seg.confidence < self.min_confidence for seg in segments):
            out["clarity"] = "Part of the camera's motion is too faint to name with certainty."
            if not directional:
                out["unclear"] = self._pick(cid, "unclear", (
                    "At no point does the camera settle into a move clear enough to name.",
                    "Whatever the camera does never adds up to one clear, nameable move.",
                    "The camera's motion stays ambiguous, with no single direction standing out for long."))
                out["unclear_view"] = self._pick(cid, "unclear_view", (
                    f"Across the {duration:.1f} seconds the eye is held by the scene more than by the camera.",
                    f"For all {duration:.1f} seconds, the content of the frame matters more than its movement."))
        shaky = [seg for seg in segments if seg.label == "shaky"]
        if shaky:
            jitter = max(seg.speed for seg in shaky)
            out["jitter"] = self._pick(cid, "jitter", (
                f"The jitter is {'small' if jitter < 0.02 else 'noticeable'}, around {jitter:.2f} frame widths per "
                "second, and it never settles into one direction.",
                "The hand-held wobble never adds up to a move in any one direction; the framing only trembles "
                "around one place."))
            out["by_hand"] = self._pick(cid, "by_hand", (
                "It has the feel of footage shot by hand rather than from a tripod or a rig.",
                "Nothing about the framing suggests a tripod; it looks held by hand.",
                "The unsteady frame gives away a camera held by hand."))
        fades = [seg for seg in segments if seg.label == "edited"]
        if fades:
            out["blend"] = (f"The blend takes up about {sum(f.end_s - f.start_s for f in fades):.1f} of the "
                            f"{duration:.1f} seconds.")
            out["fade"] = self._pick(cid, "fade", (
                "Because of the fade, the clip is not one continuous take: two views overlap for a moment.",
                "For a moment two pictures overlap as the dissolve passes, so this is not a single take."))
        if still:
            out["centre"] = self._pick(cid, "centre", (
                "Whatever sits at the centre of the first frame is still at the centre in the last.",
                "The edges of the picture mark the same places in the first frame and in the last."))
        if scene.looks == "high":
            out["looks"] = self._pick(cid, "looks", ("The composition is well balanced and pleasing to the eye.",
                                                     "It is an attractive, carefully composed picture."))
        elif scene.looks == "low":
            out["looks"] = self._pick(cid, "looks", ("The picture is plain and utilitarian rather than carefully "
                                                     "composed.",
                                                     "Visually the shot is plain, with little attention to "
                                                     "composition."))
        order = sorted(out, key=lambda key: hashlib.sha1(f"{cid}\x00extra\x00{key}".encode()).hexdigest())
        return [out[key] for key in order]

    def _mood(self, cid: str, clip: dict, scene: Scene, segments: list[Segment], still: bool) -> str:
        brightness = _float(clip.get("brightness")) or 0.5
        energy = max((s.speed for s in segments if s.label in DIRECTIONAL and s.confidence >= self.min_confidence),
                     default=0.0)
        if any(s.label == "shaky" for s in segments):
            feel = "restless and immediate, like footage filmed on the move"
        elif energy >= 0.2:
            feel = "energetic and dynamic"
        elif energy >= 0.06:
            feel = "purposeful and steady"
        elif still:
            feel = "calm and contemplative"
        else:
            feel = "unhurried and gentle"
        if scene.time == "night":
            tone = "nocturnal"
        else:
            tone = "dark and moody" if brightness < 0.3 else "airy and open" if brightness > 0.6 else "balanced"
        template = self._pick(cid, "mood", (
            "Overall the mood is {feel}, with {a} {tone} atmosphere.",
            "The clip feels {feel}, and its atmosphere is {tone}.",
            "In mood it is {feel}; the atmosphere stays {tone}.",
            "The impression it leaves is {feel}, in {a} {tone} atmosphere.",
        ))
        return template.format(feel=feel, tone=tone, a=article(tone))
