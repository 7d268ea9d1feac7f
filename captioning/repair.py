"""Repair of a VLM caption whose camera sentences still contradict the measured timeline after its retry.

Why repair rather than only exclude: a VLM's caption is mostly about what it sees (setting, subjects, their
actions, mood), which the grounded writer cannot say, and its usual failure is a camera sentence (the wrong pan
direction, a move where the camera stood still, a missing move), which the grounded writer can say from the
measured timeline. So the caption keeps every sentence that names no camera move and gets the grounded writer's
camera sentences, time-ordered, where its own camera account was; the result is checked by QA again. Only what
passes reaches a shard (with `repaired` true in captions.parquet and in the sample JSON, so it can be weighed or
filtered); anything else stays excluded (`qa_passed` false), as before:

- a failure that is not about the camera (too short, too long) is not repaired: padding with template sentences
  would make a mostly-template caption, and cutting would lose content;
- a caption with no sentence left once its camera sentences are dropped is not repaired (it would be all template);
- a repaired caption that fails QA (too long with the grounded sentences, say) is not used.

Every sentence that names a camera move is dropped, right or wrong (qa.py's parser decides, per sentence), so the
camera account comes from one source and never says a move twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from captioning.camera_sentences import camera_sentences
from captioning.qa import QAResult, mentioned_moves

CAMERA_CODES = ("wrong_direction", "moved_a_still_camera", "missing_move")
_SENTENCE_END = re.compile(r"([.!?][\"”’')\]]*)\s+(?=[\"“‘(\[]?[A-Z0-9])")


@dataclass(frozen=True)
class Repair:
    """The outcome: `caption` and `qa` when the repaired caption passed QA; else `why` it was not used."""

    caption: str | None
    qa: QAResult | None
    why: str | None


def split_sentences(text: str) -> list[str]:
    """Sentences of a caption paragraph: split after . ! or ? (and a closing quote or bracket) followed by
    white space and a capital or a digit, so "3.5 seconds" and "e.g. a dog" stay whole."""
    marked = _SENTENCE_END.sub("\\1\n", " ".join(text.split()))  # no newline is left in the joined text
    return [s.strip() for s in marked.split("\n") if s.strip()]


def is_camera_failure(reason: str | None) -> bool:
    return bool(reason) and reason.split(":", 1)[0] in CAMERA_CODES


def regrounded_caption(text: str, clip: dict[str, Any], min_confidence: float) -> str | None:
    """`text` with its camera sentences replaced by the grounded writer's for the clip's timeline, placed where the
    first camera sentence was (after the first sentence when none was); None when no other sentence is left."""
    sentences = split_sentences(text)
    camera = [i for i, s in enumerate(sentences) if mentioned_moves(s)]
    content = [s for i, s in enumerate(sentences) if i not in camera]
    if not content:
        return None
    at = camera[0] if camera else 1  # the sentences before the first camera sentence are all content
    return " ".join([*content[:at], *camera_sentences(clip, min_confidence), *content[at:]])


def repair_caption(text: str, reason: str | None, clip: dict[str, Any], min_confidence: float,
                   check: Callable[[dict[str, Any], str], QAResult]) -> Repair:
    """Repair `text`, a caption that failed QA with `reason`, for `clip`; `check(clip, text)` is the QA."""
    if not is_camera_failure(reason):
        return Repair(None, None, "not a camera failure")
    repaired = regrounded_caption(text, clip, min_confidence)
    if repaired is None:
        return Repair(None, None, "no sentence left besides the camera sentences")
    qa = check(clip, repaired)
    if not qa.passed:
        return Repair(None, qa, f"the repaired caption failed QA: {qa.reason}")
    return Repair(repaired, qa, None)
