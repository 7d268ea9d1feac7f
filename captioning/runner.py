"""Caption a batch of clips with any backend, check each caption, retry once with the QA feedback, and repair the
camera sentences of a VLM caption that still fails (`captioning.repair`)."""

from __future__ import annotations

import time
from typing import Any, Protocol

from captioning.config import CaptionConfig
from captioning.prompts import PROMPT_VERSION, caption_prompt, retry_prompt
from captioning.qa import QAResult, check_caption, count_words
from captioning.repair import is_camera_failure, repair_caption
from captioning.timeline import segments_of

CAPTION_FAILED = "caption_failed"


class Backend(Protocol):
    """Anything that turns (clip row, prompt) pairs into (caption, error) pairs, in order."""

    name: str
    model: str
    retries_with_feedback: bool

    def generate(self, requests: list[tuple[dict[str, Any], str]]) -> list[tuple[str | None, str | None]]: ...


def _row(clip: dict, backend: Backend, caption: str | None, qa: QAResult | None, error: str | None,
         repaired: bool = False) -> dict:
    return {
        "clip_id": clip["clip_id"],
        "caption": caption,
        "backend": backend.name,
        "model": backend.model,
        "prompt_version": getattr(backend, "prompt_version", PROMPT_VERSION),
        "words": count_words(caption) if caption else 0,
        "qa_passed": bool(qa.passed) if qa else False,
        "qa_reason": qa.reason if qa else None,
        "repaired": repaired,
        "error": error,
        "created_at": time.time(),
    }


def caption_batch(clips: list[dict[str, Any]], backend: Backend, cfg: CaptionConfig) -> list[dict[str, Any]]:
    """captions.parquet rows for `clips`, in the same order."""
    qa_cfg = cfg.qa

    def check(clip: dict, text: str) -> QAResult:
        return check_caption(text, segments_of(clip), qa_cfg.min_words, qa_cfg.max_words, qa_cfg.min_confidence)

    def final(clip: dict, text: str, qa: QAResult) -> dict:
        """The row of a caption with its last QA verdict: a VLM caption that failed on its camera sentences is
        repaired (QA again) or stays failed, saying why it was not repaired."""
        if qa.passed or not backend.retries_with_feedback or not is_camera_failure(qa.reason):
            return _row(clip, backend, text, qa, None)
        fixed = repair_caption(text, qa.reason, clip, qa_cfg.min_confidence, check)
        if fixed.caption is not None:
            return _row(clip, backend, fixed.caption, fixed.qa, None, repaired=True)
        return _row(clip, backend, text, QAResult(False, f"{qa.reason}; not repaired: {fixed.why}", qa.words), None)

    prompts = [caption_prompt(c, qa_cfg.min_words, qa_cfg.max_words, qa_cfg.min_confidence) for c in clips]
    rows: list[dict | None] = [None] * len(clips)
    again: list[tuple[int, str, str, QAResult]] = []
    for i, (clip, (text, error)) in enumerate(zip(clips, backend.generate(list(zip(clips, prompts, strict=True))),
                                                  strict=True)):
        if error is not None or not text:
            rows[i] = _row(clip, backend, None, None, f"{CAPTION_FAILED}: {error or 'empty caption'}")
            continue
        qa = check(clip, text)
        if qa.passed or not (qa_cfg.retry and backend.retries_with_feedback):
            rows[i] = final(clip, text, qa)
        else:
            again.append((i, retry_prompt(prompts[i], text, qa.reason or ""), text, qa))
    if again:
        second = backend.generate([(clips[i], prompt) for i, prompt, _, _ in again])
        for (i, _, first_text, first_qa), (text, error) in zip(again, second, strict=True):
            if error is not None or not text:
                reason = f"{first_qa.reason}; the retry failed: {error or 'empty caption'}"
                rows[i] = final(clips[i], first_text, QAResult(False, reason, first_qa.words))
            else:
                qa = check(clips[i], text)
                if not qa.passed:
                    qa = QAResult(False, f"{qa.reason} (after a retry with feedback)", qa.words)
                rows[i] = final(clips[i], text, qa)
    return [r for r in rows if r is not None]
