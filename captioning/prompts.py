"""Versioned VLM prompts: the paper's caption structure, with the measured camera timeline as facts."""

from __future__ import annotations

from typing import Any

from captioning.timeline import describe_facts

PROMPT_VERSION = "dv-caption-v2"
REWRITE_VERSION = "dv-rewrite-v2"
REWRITE_IMAGE_VERSION = "dv-rewrite-image-v1"

SYSTEM = (
    "You write captions for a video-generation training set. Captions narrate what the camera does and how "
    "each camera movement changes what is in the frame: what enters, what leaves, what is revealed."
)

CAPTION_TEMPLATE = """Describe this {duration:.1f}-second video clip in one paragraph of {low}-{high} words \
(about {target}), in English, in this structure:
1. One overview sentence: the setting, the main subjects and what the camera does overall.
2. A time-ordered account. For every camera movement, say when it happens, name it exactly (pans left/right, \
tilts up/down, zooms in/out, rolls clockwise/counter-clockwise, trucks left/right, pedestals up/down, dollies \
in/out, orbits left/right, tracks left/right, holds still, shakes) and tie it to what enters or leaves the frame \
because of it. Describe the subjects' own actions too.
3. One closing sentence on the mood and atmosphere.

The camera motion was measured; treat these facts as true and never contradict them (directions are from \
the camera's point of view: when the camera pans right, the scene moves left across the frame):
{facts}

Write only the paragraph: no title, no lists, no mention of these instructions or of measurements."""

RETRY_TEMPLATE = """Your caption below failed a check: {reason}.
Write it again, fixing that, keeping everything else that is right.

Caption:
{caption}"""

REWRITE_TEMPLATE = """Rewrite this short video prompt into a detailed caption of {low}-{high} words (about \
{target}) in one paragraph: an overview sentence; then, in time order, what the camera does (name each \
movement: pans left/right, tilts up/down, zooms in/out, trucks, pedestals, dollies, orbits, tracks, \
holds still) and what enters or leaves the frame because of it, and what the subjects do; then one sentence \
on the mood. Keep every detail of the prompt and invent nothing that contradicts it. Write only the paragraph.

Prompt: {prompt}"""


REWRITE_IMAGE_TEMPLATE = """The image is the first frame of a video to be generated. Write the caption of that \
video in one paragraph of {low}-{high} words (about {target}): an overview sentence that describes what this \
first frame shows (the setting, the subjects, how they look and where they are, the light and the colours); then, \
in time order and starting from this first frame, the requested camera movement, named exactly, and what enters \
or leaves the frame because of it, and what the subjects do; then one sentence on the mood. Keep every detail of \
the prompt and of the image, and invent nothing that contradicts them. Write only the paragraph.

Requested camera movement: {moves}.
Prompt: {prompt}"""


def caption_prompt(clip: dict[str, Any], min_words: int, max_words: int, min_confidence: float) -> str:
    """The user prompt for one clip (its clips.parquet row)."""
    duration = float(clip.get("end_s", 0.0)) - float(clip.get("start_s", 0.0))
    return CAPTION_TEMPLATE.format(duration=duration, low=min_words, high=max_words,
                                   target=(min_words + max_words) // 2 - 5,
                                   facts=describe_facts(clip, min_confidence))


def retry_prompt(first_prompt: str, caption: str, reason: str) -> str:
    return first_prompt + "\n\n" + RETRY_TEMPLATE.format(reason=reason, caption=caption)


def rewrite_prompt(prompt: str, min_words: int, max_words: int) -> str:
    return REWRITE_TEMPLATE.format(prompt=prompt, low=min_words, high=max_words,
                                   target=(min_words + max_words) // 2 - 5)


def rewrite_image_prompt(prompt: str, moves: list[str], min_words: int, max_words: int) -> str:
    """The rewrite instruction that goes with a first frame: describe it, then the requested camera `moves`
    (phrases such as "the camera pans left", in order)."""
    said = ", then ".join(moves) if moves else "none is named, so the camera holds still"
    return REWRITE_IMAGE_TEMPLATE.format(prompt=prompt, moves=said, low=min_words, high=max_words,
                                         target=(min_words + max_words) // 2 - 5)
