"""Caption QA: length, and the camera sentences against the measured timeline (data contract: Captions).

Camera moves are found with patterns over the camera's own verbs ("pans slowly to the left", "tilts upward",
"zooms out", "rolls counter-clockwise", "trucks right", "pedestals up", "dollies in", "orbits to the left",
"tracks right", ...) and over the synonyms people write: "travels sideways to the right" (truck), "cranes up",
"booms down", "rises" (pedestal), "pushes in", "a push-in", "pulls back", "moves forward" (dolly), "arcs around
to the left", "circles left" (orbit), "follows the cyclist to the right" (tracking). Directions are the
camera's: "follows the cyclist to the right" is tracking_right, "pans from left to right" is pan_right. The
synonyms that other things in a scene also do (following, rising, travelling sideways, pulling back) count only
when the camera (or the view, the shot, the lens, "we", "it") is named earlier in the same sentence.

Segments under the confidence threshold, and moves that add up to less than `MIN_TRAVEL` frame widths, are
asserted neither way. A caption fails when it names a move whose opposite the timeline measured with
confidence and never the move itself, when it moves a camera that was measured still, or when it leaves out
the main measured move.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from captioning.timeline import DIRECTIONAL, OPPOSITE, Segment, confident

_GAP = r"(?:\s+[\w-]+){0,3}?"
# "follows the young cyclist as she rides to the right" (a gap never runs over "and", "then", ...)
_WIDE_GAP = r"(?:\s+(?!(?:and|then|but|while|before|after|until)\b)[\w'-]+){0,5}?"
_TO = r"(?:to(?:ward|wards)?\s+(?:the\s+|its\s+|their\s+)?|toward(?:s)?\s+(?:the\s+)?)?"
_SIDE = rf"\s+{_TO}(left|right)(?:ward|wards)?\b"
PATTERNS = {
    "pan": re.compile(rf"\bpan(?:s|ning|ned)?\b{_GAP}{_SIDE}"),
    "pan_adj": re.compile(r"\b(left|right)ward\s+pan\b"),
    "tilt": re.compile(rf"\btilt(?:s|ing|ed)?\b{_GAP}\s+(up|down)(?:ward|wards)?\b"),
    "zoom": re.compile(rf"\bzoom(?:s|ing|ed)?\b{_GAP}\s+(in|out)\b"),
    "roll": re.compile(rf"\b(?:roll|rotat)\w*\b{_GAP}\s+(counter-?clockwise|anti-?clockwise|clockwise)\b"),
    "truck": re.compile(rf"\btruck(?:s|ing|ed)?\b{_GAP}{_SIDE}"),
    "pedestal": re.compile(rf"\bpedestal(?:s|ing|ed|led|ling)?\b{_GAP}\s+(up|down)(?:ward|wards)?\b"),
    "dolly": re.compile(rf"\bdoll(?:y|ies|ying|ied)\b{_GAP}\s+(in|out)\b"),
    "orbit": re.compile(rf"\borbit(?:s|ing|ed)?\b{_GAP}{_SIDE}"),
    "tracking": re.compile(rf"\btrack(?:s|ing|ed)?\b{_GAP}{_SIDE}"),
}


@dataclass(frozen=True)
class Synonym:
    """A phrase people write for a move: `pattern`'s first group (if any) picks the label from `labels`
    (word -> label); without a group the phrase means `labels[""]`. `needs_camera`: only when the camera is
    named earlier in the sentence."""

    pattern: re.Pattern
    labels: dict[str, str]
    needs_camera: bool

    @property
    def hints(self) -> tuple[str, ...]:
        """Words one of which a text must hold for the pattern to match (a cheap test before the regex)."""
        return _HINTS[self.pattern.pattern]


def _sideways(move: str) -> dict[str, str]:
    return {"left": f"{move}_left", "right": f"{move}_right"}


SYNONYMS = (
    # truck: sideways travel
    Synonym(re.compile(rf"\b(?:travel|mov|slid|glid|drift|shift|step|edg|strid)\w*\s+"
                       rf"(?:\w+\s+)?(?:sideways|laterally)\b{_GAP}{_SIDE}"), _sideways("truck"), True),
    Synonym(re.compile(rf"\bcrab(?:s|bing|bed)?\b{_GAP}{_SIDE}"), _sideways("truck"), False),
    # pedestal: vertical travel
    Synonym(re.compile(rf"\b(?:crane|cranes|craning|craned|boom|booms|booming|boomed)\b{_GAP}\s+(up|down)"
                       r"(?:ward|wards)?\b"), {"up": "pedestal_up", "down": "pedestal_down"}, False),
    Synonym(re.compile(r"\b(?:mov|travel|glid|lift|float)\w*\s+(?:\w+\s+)?(?:vertically|straight)\s+"
                       r"(up|down)(?:ward|wards)?\b"), {"up": "pedestal_up", "down": "pedestal_down"}, True),
    Synonym(re.compile(r"\bcamera\s+(?:\w+\s+)?(?:rises|rising|rose|ascends|ascending|ascended)\b"),
            {"": "pedestal_up"}, False),
    Synonym(re.compile(r"\bcamera\s+(?:\w+\s+)?(?:descends|descending|descended|sinks|sinking|sank)\b"),
            {"": "pedestal_down"}, False),
    # dolly: travel forward or back
    Synonym(re.compile(r"\bpush(?:es|ing|ed)?\s+(?:\w+\s+)?(?:in|forward)\b"), {"": "dolly_in"}, True),
    Synonym(re.compile(r"\bpush-in\b"), {"": "dolly_in"}, False),
    Synonym(re.compile(r"\b(?:mov|travel|glid|advanc|creep|edg|drift)\w*\s+(?:\w+\s+)?(?:forward|forwards|closer)\b"),
            {"": "dolly_in"}, True),
    Synonym(re.compile(r"\bpull(?:s|ing|ed)?\s+(?:\w+\s+)?(?:back|out|away)\b"), {"": "dolly_out"}, True),
    Synonym(re.compile(r"\bpull-(?:back|out)\b"), {"": "dolly_out"}, False),
    Synonym(re.compile(r"\b(?:mov|travel|glid|creep|edg|drift)\w*\s+(?:\w+\s+)?(?:backward|backwards|away)\b"),
            {"": "dolly_out"}, True),
    Synonym(re.compile(r"\b(?:retreat|retreats|retreating|retreated)\b"), {"": "dolly_out"}, True),
    # orbit: arcing around the subject
    Synonym(re.compile(rf"\b(?:arc|arcs|arcing|arced|circl\w*|revolv\w*)\b(?:\s+(?:a)?round)?{_WIDE_GAP}{_SIDE}"),
            _sideways("orbit"), True),
    # tracking: following a subject
    Synonym(re.compile(rf"\bfollow(?:s|ing|ed)?\b{_WIDE_GAP}{_SIDE}"), _sideways("tracking"), True),
)
_HINTS = {synonym.pattern.pattern: hints for synonym, hints in zip(SYNONYMS, (
    ("sideways", "laterally"), ("crab",), ("crane", "craning", "boom"), ("vertically", "straight"),
    ("rise", "rising", "rose", "ascend"), ("descend", "sink", "sank"), ("push",), ("push-in",),
    ("forward", "closer"), ("pull",), ("pull-",), ("backward", "away"), ("retreat",), ("arc", "circl", "revolv"),
    ("follow",)), strict=True)}
CAMERA_NAMED = re.compile(r"\b(?:camera|cameras|view|viewpoint|shot|lens|we|it|footage)\b")
STILL = re.compile(
    r"\bcamera\s+(?:\w+\s+){0,2}?(?:holds|stays|remains|is)\s+(?:\w+\s+)?(?:still|static|fixed|steady|stationary"
    r"|motionless|locked(?:[\s-]off)?)\b"
)
_FROM_TO = re.compile(r"\bfrom\s+(?:the\s+)?(left|right|top|bottom)(?:\s+side)?\s+to\s+(?:the\s+)?"
                      r"(left|right|top|bottom)\b")
_X_TO_Y = re.compile(r"\b(left|right|top|bottom)-to-(left|right|top|bottom)\b")
_WAY = {"left": "leftward", "right": "rightward", "top": "upward", "bottom": "downward"}


MIN_TRAVEL = 0.008
"""A directional segment whose move adds up to less than this many frame widths (speed x duration) is too
small to see: QA asserts nothing about it and the grounded captioner does not name it."""


def checked_segments(segments: list[Segment], min_confidence: float) -> list[Segment]:
    """The segments a caption must agree with: confident, and for a move, one that travels far enough to see."""
    return [s for s in confident(segments, min_confidence)
            if s.label not in DIRECTIONAL or s.speed * (s.end_s - s.start_s) >= MIN_TRAVEL]


def main_move(segments: list[Segment]) -> str | None:
    """The move a caption must name: the longest checked directional segment's label (None when none)."""
    moving = [s for s in segments if s.label in DIRECTIONAL]
    return max(moving, key=lambda s: s.end_s - s.start_s).label if moving else None


@dataclass(frozen=True)
class QAResult:
    passed: bool
    reason: str | None
    words: int


def count_words(text: str) -> int:
    return len(re.findall(r"[\w'’-]+", text))


def _normalise(text: str) -> str:
    """Lower case, with "from left to right" / "left-to-right" read as "rightward" (and top/bottom as
    downward/upward), so a pattern sees the direction the move ends in."""
    lowered = text.lower().replace("’", "'")
    lowered = _FROM_TO.sub(lambda m: _WAY[m.group(2)], lowered)
    return _X_TO_Y.sub(lambda m: _WAY[m.group(2)], lowered)


def _camera_named_before(text: str, at: int) -> bool:
    start = max(text.rfind(".", 0, at), text.rfind("!", 0, at), text.rfind("?", 0, at), text.rfind(";", 0, at))
    return CAMERA_NAMED.search(text, start + 1, at) is not None


def mentioned_moves(text: str) -> set[str]:
    """Camera labels the text names (directions from the camera's point of view)."""
    lowered = _normalise(text)
    found: set[str] = set()
    for m in PATTERNS["pan"].finditer(lowered):
        found.add(f"pan_{m.group(1)}")
    for m in PATTERNS["pan_adj"].finditer(lowered):
        found.add(f"pan_{m.group(1)}")
    for m in PATTERNS["tilt"].finditer(lowered):
        found.add(f"tilt_{m.group(1)}")
    for m in PATTERNS["zoom"].finditer(lowered):
        found.add(f"zoom_{m.group(1)}")
    for m in PATTERNS["roll"].finditer(lowered):
        found.add("roll_cw" if m.group(1) == "clockwise" else "roll_ccw")
    for move in ("truck", "pedestal", "dolly", "orbit", "tracking"):  # "trucks left", "orbits to the right", ...
        for m in PATTERNS[move].finditer(lowered):
            found.add(f"{move}_{m.group(1)}")
    for synonym in SYNONYMS:
        if not any(hint in lowered for hint in synonym.hints):
            continue
        for m in synonym.pattern.finditer(lowered):
            if synonym.needs_camera and not _camera_named_before(lowered, m.start()):
                continue
            found.add(synonym.labels[m.group(1) if m.groups() else ""])
    if STILL.search(lowered):
        found.add("static")
    return found


def check_caption(
    text: str, segments: list[Segment], min_words: int, max_words: int, min_confidence: float
) -> QAResult:
    """QA verdict for one caption of a clip with the given timeline segments."""
    words = count_words(text)
    if words < min_words:
        return QAResult(False, f"too_short: {words} words (at least {min_words})", words)
    if words > max_words:
        return QAResult(False, f"too_long: {words} words (at most {max_words})", words)
    sure = checked_segments(segments, min_confidence)
    measured = {s.label for s in sure}
    said = mentioned_moves(text)
    for move in sorted(said & DIRECTIONAL):
        if move not in measured and OPPOSITE[move] in measured:
            return QAResult(False, f"wrong_direction: says {move}, measured {OPPOSITE[move]}", words)
    moving = measured & DIRECTIONAL
    if sure and not moving and said & DIRECTIONAL and measured <= {"static"}:
        return QAResult(False, f"moved_a_still_camera: says {', '.join(sorted(said & DIRECTIONAL))}, "
                               "measured static", words)
    if moving:
        main = main_move(sure)
        if main not in said:
            return QAResult(False, f"missing_move: the caption does not say the camera {main}", words)
    return QAResult(True, None, words)
