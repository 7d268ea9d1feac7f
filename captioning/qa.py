"""Caption QA: length, and the camera sentences against the measured timeline (data contract: Captions).

Camera moves are found with patterns ("pans slowly to the left", "tilts upward", "zooms out", "rolls
counter-clockwise", "trucks right", "pedestals up", "dollies in", "orbits to the left", "tracks right",
...). A caption fails when it names a move whose opposite the timeline measured with
confidence and never the move itself, when it moves a camera that was measured still, or when it leaves out
the main measured move.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from captioning.timeline import DIRECTIONAL, OPPOSITE, Segment, confident

_GAP = r"(?:\s+[\w-]+){0,3}?"
PATTERNS = {
    "pan": re.compile(
        rf"\bpan(?:s|ning|ned)?\b{_GAP}\s+(?:to(?:ward|wards)?\s+(?:the\s+)?)?(left|right)(?:ward)?\b"
    ),
    "pan_adj": re.compile(r"\b(left|right)ward\s+pan\b"),
    "tilt": re.compile(rf"\btilt(?:s|ing|ed)?\b{_GAP}\s+(up|down)(?:ward|wards)?\b"),
    "zoom": re.compile(rf"\bzoom(?:s|ing|ed)?\b{_GAP}\s+(in|out)\b"),
    "roll": re.compile(rf"\b(?:roll|rotat)\w*\b{_GAP}\s+(counter-?clockwise|anti-?clockwise|clockwise)\b"),
    "truck": re.compile(rf"\btruck(?:s|ing|ed)?\b{_GAP}\s+(?:to(?:ward|wards)?\s+(?:the\s+)?)?(left|right)\b"),
    "pedestal": re.compile(rf"\bpedestal(?:s|ing|ed|led|ling)?\b{_GAP}\s+(up|down)(?:ward|wards)?\b"),
    "dolly": re.compile(rf"\bdoll(?:y|ies|ying|ied)\b{_GAP}\s+(in|out)\b"),
    "orbit": re.compile(rf"\borbit(?:s|ing|ed)?\b{_GAP}\s+(?:to(?:ward|wards)?\s+(?:the\s+)?)?(left|right)\b"),
    "tracking": re.compile(rf"\btrack(?:s|ing|ed)?\b{_GAP}\s+(?:to(?:ward|wards)?\s+(?:the\s+)?)?(left|right)\b"),
}
STILL = re.compile(
    r"\bcamera\s+(?:\w+\s+){0,2}?(?:holds|stays|remains|is)\s+(?:\w+\s+)?(?:still|static|fixed|steady)\b"
)


@dataclass(frozen=True)
class QAResult:
    passed: bool
    reason: str | None
    words: int


def count_words(text: str) -> int:
    return len(re.findall(r"[\w'’-]+", text))


def mentioned_moves(text: str) -> set[str]:
    """Camera labels the text names."""
    lowered = text.lower()
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
    sure = confident(segments, min_confidence)
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
        main = max(sure, key=lambda s: (s.label in DIRECTIONAL, s.end_s - s.start_s)).label
        if main not in said:
            return QAResult(False, f"missing_move: the caption does not say the camera {main}", words)
    return QAResult(True, None, words)
