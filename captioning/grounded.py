"""The embedded captioner: a ~200-word caption in the paper's structure from what curation measured.

Overview sentence, then a time-ordered account in which each camera move is tied to what enters or leaves
the frame, then a mood sentence. It says nothing it cannot know: no objects, people or places, only the
camera timeline with speeds, how much moves on its own, brightness, colours and duration.
"""

from __future__ import annotations

import hashlib
from typing import Any

from captioning.qa import count_words
from captioning.timeline import Segment, pace, segments_of

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
                  "parts of the surroundings enter from the right edge while what was on the left slips out of view"),
    "pan_left": ("the camera pans {pace} to the left", "so the scene slides rightward across the frame: new "
                 "parts of the surroundings enter from the left edge while what was on the right slips out of view"),
    "tilt_up": ("the camera tilts {pace} upward", "so the scene drifts down the frame, revealing what lies "
                "above the first view while its lower part leaves through the bottom edge"),
    "tilt_down": ("the camera tilts {pace} downward", "so the scene drifts up the frame, revealing what lies "
                  "below the first view while its upper part leaves through the top edge"),
    "zoom_in": ("the camera zooms in {pace}", "so the centre of the scene grows larger while the edges and the "
                "details near them move out of the frame"),
    "zoom_out": ("the camera zooms out {pace}", "so the view widens, bringing surroundings in from every edge "
                 "while the centre of the scene grows smaller"),
    "roll_cw": ("the camera rolls {pace} clockwise", "so the whole scene turns counter-clockwise on screen and "
                "its horizontal lines tilt away from level"),
    "roll_ccw": ("the camera rolls {pace} counter-clockwise", "so the whole scene turns clockwise on screen and "
                 "its horizontal lines tilt away from level"),
    "truck_right": ("the camera trucks {pace} to the right", "so the scene slides leftward, nearby things faster "
                    "than the distance, and new parts of the surroundings enter from the right edge"),
    "truck_left": ("the camera trucks {pace} to the left", "so the scene slides rightward, nearby things faster "
                   "than the distance, and new parts of the surroundings enter from the left edge"),
    "pedestal_up": ("the camera pedestals {pace} up", "rising so the scene drifts down the frame, nearby things "
                    "faster than the distance, revealing what lies above"),
    "pedestal_down": ("the camera pedestals {pace} down", "sinking so the scene drifts up the frame, nearby "
                      "things faster than the distance, revealing what lies below"),
    "dolly_in": ("the camera dollies in {pace}", "moving forward so nearby things grow faster than the "
                 "background and the edges of the view slip out of the frame"),
    "dolly_out": ("the camera dollies out {pace}", "moving back so nearby things shrink faster than the "
                  "background and more of the surroundings come in from every edge"),
    "orbit_right": ("the camera orbits {pace} to the right", "circling the subject, which stays in place while "
                    "the background slides right and the foreground left, revealing its other side"),
    "orbit_left": ("the camera orbits {pace} to the left", "circling the subject, which stays in place while "
                   "the background slides left and the foreground right, revealing its other side"),
    "tracking_right": ("the camera tracks {pace} right", "following the subject as it travels right, so the "
                       "subject stays in frame while the surroundings slide past to the left"),
    "tracking_left": ("the camera tracks {pace} left", "following the subject as it travels left, so the "
                      "subject stays in frame while the surroundings slide past to the right"),
    "static": ("the camera holds still", "keeping the framing fixed, so nothing enters or leaves the frame "
               "through the camera's doing"),
    "shaky": ("the camera shakes with a hand-held jitter", "so the framing trembles back and forth without "
              "settling into any one direction"),
    "edited": ("the picture is blended by a fade or dissolve", "so one view gives way to another without a "
               "clean cut"),
}


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
    return names or ["muted"]


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _light(brightness: float) -> str:
    if brightness < 0.25:
        return "dimly lit"
    if brightness < 0.45:
        return "softly lit"
    if brightness < 0.65:
        return "evenly lit"
    return "brightly lit"


class GroundedCaptioner:
    """Writes captions from clip rows (dicts with clips.parquet columns)."""

    backend = "grounded"
    model = "templates-v1"

    def __init__(self, min_words: int = 150, max_words: int = 260, target_words: int = 200,
                 min_confidence: float = 0.5):
        self.min_words, self.max_words, self.target = min_words, max_words, target_words
        self.min_confidence = min_confidence

    def caption(self, clip: dict[str, Any]) -> str:
        segments = segments_of(clip)
        duration = max(0.1, float(clip.get("end_s", 0.0)) - float(clip.get("start_s", 0.0)))
        variant = int(hashlib.sha1(str(clip.get("clip_id", "")).encode()).hexdigest()[:8], 16)
        core = [self._overview(clip, segments, duration)]
        core += [self._segment(seg, i, len(segments)) for i, seg in enumerate(segments)]
        core.append(self._objects(clip))
        extra = self._extras(clip, segments, duration, variant)
        mood = self._mood(clip, segments)
        sentences = core[:]
        for sentence in extra:
            if count_words(" ".join([*sentences, mood])) >= self.target:
                break
            sentences.append(sentence)
        text = " ".join([*sentences, mood])
        while count_words(text) > self.max_words and len(sentences) > 2:
            sentences.pop(-2)
            text = " ".join([*sentences, mood])
        return text

    def _overview(self, clip: dict, segments: list[Segment], duration: float) -> str:
        moves = [s.label for s in segments if s.label != "static" and s.confidence >= self.min_confidence]
        if not any(s.confidence >= self.min_confidence for s in segments):
            motion = "the camera's movement is too subtle to read with confidence"
        elif not moves:
            motion = "the camera stays in place for the whole shot"
        elif len(set(moves)) == 1:
            motion = f"the camera {MOVE_TEXT[moves[0]][0].removeprefix('the camera ').format(pace='').strip()}"
            motion = " ".join(motion.split())
        else:
            motion = "the camera changes its movement as the shot unfolds"
        colours = _join(_palette(clip))
        return (f"A {duration:.1f}-second continuous shot of a {_light(float(clip.get('brightness') or 0.5))} "
                f"scene in {colours} tones, in which {motion}.")

    def _segment(self, seg: Segment, index: int, count: int) -> str:
        action, effect = MOVE_TEXT.get(seg.label, MOVE_TEXT["static"])
        action = " ".join(action.format(pace=pace(seg.speed) if seg.speed else "").split())
        if seg.confidence < self.min_confidence:  # not sure enough to name a move: say only that
            action, effect = "the camera moves in a way too uncertain to name", "so the view shifts only subtly"
        if count == 1:
            opener = "Throughout the clip"
        elif index == 0:
            opener = f"From the start to about {seg.end_s:.1f} seconds"
        elif index == count - 1:
            opener = f"From about {seg.start_s:.1f} seconds to the end"
        else:
            opener = f"Between {seg.start_s:.1f} and {seg.end_s:.1f} seconds"
        return f"{opener}, {action}, {effect}."

    def _objects(self, clip: dict) -> str:
        score = float(clip.get("object_motion_score") or 0.0)
        if score > 0.02:
            return ("Within the frame, much of the scene also moves on its own, independently of the camera, "
                    "so the picture keeps changing even where the camera is steady.")
        if score > 0.004:
            return ("Some elements inside the frame move on their own as well, a smaller motion layered on top "
                    "of the camera's.")
        return "Apart from the camera's movement, the scene itself stays still from the first frame to the last."

    def _extras(self, clip: dict, segments: list[Segment], duration: float, variant: int) -> list[str]:
        colours = _palette(clip)
        travel = sum(s.speed * (s.end_s - s.start_s) for s in segments if s.label not in ("static", "shaky"))
        extras = [
            f"The palette is led by {colours[0]}"
            + (f", with {_join(colours[1:])} filling the rest of the frame." if len(colours) > 1 else "."),
            "The shot is continuous, with no cut anywhere, so every change in view comes from the camera itself "
            "or from motion inside the scene.",
            f"Over the {duration:.1f} seconds the view shifts by about {travel:.1f} frame widths in total, "
            f"which gives the clip a {'gentle' if travel < 0.5 else 'lively'} sense of travel.",
            f"The light stays {_light(float(clip.get('brightness') or 0.5)).split()[0].removesuffix('ly')} and "
            "consistent, without "
            "flashes or sudden changes in exposure.",
            "Because the movement is smooth and sustained, the spatial layout of the scene remains easy to "
            "follow as new areas come into view.",
        ]
        shift = variant % len(extras)
        return extras[shift:] + extras[:shift]

    def _mood(self, clip: dict, segments: list[Segment]) -> str:
        brightness = float(clip.get("brightness") or 0.5)
        energy = max((s.speed for s in segments), default=0.0)
        if any(s.label == "shaky" for s in segments):
            feel = "restless and immediate, like footage filmed on the move"
        elif energy >= 0.2:
            feel = "energetic and dynamic"
        elif energy >= 0.06:
            feel = "purposeful and steady"
        else:
            feel = "calm and contemplative"
        tone = "dark and moody" if brightness < 0.3 else "airy and open" if brightness > 0.6 else "balanced"
        return f"Overall the mood is {feel}, with a {tone} atmosphere."
