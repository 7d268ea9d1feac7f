"""The caption backends behind one `generate` call: grounded (embedded), transformers (a VLM in this process or
in Ray Data actors), openai (HTTP), vllm (Ray)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from captioning.config import CaptionConfig
from captioning.grounded import GroundedCaptioner

log = logging.getLogger("droplet.caption")


class GroundedBackend:
    """Templates over measured facts: no weights, deterministic, never retried."""

    name = "grounded"
    retries_with_feedback = False

    def __init__(self, cfg: CaptionConfig):
        self.captioner = GroundedCaptioner(cfg.qa.min_words, cfg.qa.max_words, min_confidence=cfg.qa.min_confidence,
                                           config=cfg.grounded)
        self.model = self.captioner.model

    def generate(self, requests: list[tuple[dict[str, Any], str]]) -> list[tuple[str | None, str | None]]:
        return [(self.captioner.caption(clip), None) for clip, _ in requests]


class OpenAIBackend:
    """Frames sampled here, sent with the prompt to an OpenAI-compatible endpoint."""

    name = "openai"
    retries_with_feedback = True

    def __init__(self, cfg: CaptionConfig, clips_dir: str | Path):
        from captioning.openai_backend import OpenAIClient

        self.cfg = cfg
        self.clips_dir = Path(clips_dir)
        self.client = OpenAIClient(cfg.openai)
        self.model = cfg.openai.model
        self._frames: dict[str, list[bytes]] = {}

    def _jpegs(self, clip_id: str) -> list[bytes]:
        from captioning.frames import sample_jpegs

        if clip_id not in self._frames:  # the QA retry sends the same frames again
            f = self.cfg.frames
            self._frames[clip_id] = sample_jpegs(str(self.clips_dir / f"{clip_id}.mp4"), f.num_frames, f.max_side,
                                                 f.jpeg_quality)
        return self._frames[clip_id]

    def generate(self, requests: list[tuple[dict[str, Any], str]]) -> list[tuple[str | None, str | None]]:
        from captioning.openai_backend import build_request

        payloads, failed = [], {}
        for i, (clip, prompt) in enumerate(requests):
            try:
                payloads.append(build_request(self.cfg.openai, prompt, self._jpegs(clip["clip_id"])))
            except Exception as exc:  # noqa: BLE001 - an unreadable clip is that clip's error
                failed[i] = f"frames: {type(exc).__name__}: {exc}"
                payloads.append(None)
        answers = iter(self.client.complete_many([p for p in payloads if p is not None]))
        return [(None, failed[i]) if i in failed else next(answers) for i in range(len(requests))]


class TransformersBackend:
    """A VLM run with transformers (`captioning.transformers_backend`): loaded once in this process, or in Ray
    Data actors when `transformers.ray` is set or a Ray address is given. `stats` keeps every answer's token
    counts and seconds (clips/s and tokens/s)."""

    name = "transformers"
    retries_with_feedback = True

    def __init__(self, cfg: CaptionConfig, clips_dir: str | Path, use_ray: bool = False):
        self.cfg = cfg
        self.clips_dir = str(clips_dir)
        self.model = Path(cfg.transformers.model_path).name
        self.use_ray = use_ray
        self.stats: list[dict[str, Any]] = []
        self._captioner = None

    def generate(self, requests: list[tuple[dict[str, Any], str]]) -> list[tuple[str | None, str | None]]:
        from captioning.transformers_backend import TransformersCaptioner, caption_with_ray

        rows = [{"clip_id": clip["clip_id"], "prompt": prompt,
                 "duration_s": float(clip.get("end_s") or 0.0) - float(clip.get("start_s") or 0.0)}
                for clip, prompt in requests]
        if self.use_ray:
            answers = caption_with_ray(rows, self.cfg, self.clips_dir)
        else:
            if self._captioner is None:  # the weights load once, on first use
                self._captioner = TransformersCaptioner(self.cfg, self.clips_dir)
            answers = self._captioner.caption_rows(rows)
        by_id = {a["clip_id"]: a for a in answers}
        self.stats.extend(answers)
        seconds = sum(float(a["seconds"]) for a in answers)
        if seconds > 0:
            log.info("transformers: %d clips in %.1f s of generation: %.3f clips/s, %.1f output tokens/s",
                     len(answers), seconds, len(answers) / seconds,
                     sum(int(a["output_tokens"]) for a in answers) / seconds)
        out = []
        for clip, _ in requests:
            answer = by_id.get(clip["clip_id"])
            out.append((None, "no answer from the transformers captioner") if answer is None
                       else (answer["caption"], answer["error"]))
        return out


class VLLMBackend:
    """A Ray Data LLM processor (vLLM engine in its own runtime_env); see `captioning.vllm_backend`."""

    name = "vllm"
    retries_with_feedback = True

    def __init__(self, cfg: CaptionConfig, clips_dir: str | Path, runtime_env: dict[str, Any]):
        from captioning.vllm_backend import build_caption_processor

        self.cfg = cfg
        self.clips_dir = str(clips_dir)
        self.model = Path(cfg.vllm.model_path).name
        self.processor = build_caption_processor(cfg, self.clips_dir, runtime_env)

    def generate(self, requests: list[tuple[dict[str, Any], str]]) -> list[tuple[str | None, str | None]]:
        import ray

        rows = [{"clip_id": clip["clip_id"], "prompt": prompt, "fps": float(clip.get("fps") or 0.0)}
                for clip, prompt in requests]
        answers = {r["clip_id"]: r for r in self.processor(ray.data.from_items(rows)).iter_rows()}
        out = []
        for clip, _ in requests:
            answer = answers.get(clip["clip_id"])
            if answer is None:
                out.append((None, "no answer from the vLLM processor"))
            else:
                out.append((answer.get("caption"), answer.get("error")))
        return out
