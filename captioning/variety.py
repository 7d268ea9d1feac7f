"""How repetitive a set of captions is: the share of captions in which the most common sentence appears (a
caption set where one sentence recurs everywhere teaches a model that sentence, not the clips)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

_SPLIT = re.compile(r'(?<=[.!?])"?\s+(?=[A-Z"])')


def sentences(text: str) -> list[str]:
    """The sentences of a caption, whitespace collapsed."""
    return [s.strip() for s in _SPLIT.split(" ".join(text.split())) if s.strip()]


def most_common_sentence(captions: Iterable[str]) -> tuple[str | None, float]:
    """(the sentence found in the most captions, the share of captions it is in); (None, 0.0) for none."""
    texts = list(captions)
    if not texts:
        return None, 0.0
    counts = Counter(s for text in texts for s in set(sentences(text)))
    if not counts:
        return None, 0.0
    sentence, n = counts.most_common(1)[0]
    return sentence, n / len(texts)
