"""The transformers backend: a VLM run with Hugging Face transformers (AutoProcessor +
AutoModelForImageTextToText) from a local folder, on CPU or one GPU, no vLLM needed.

`TransformersCaptioner` holds the processor and the model, loaded once; called on a batch of rows
(`clip_id`, `prompt`, `duration_s`) it samples each clip's frames (`captioning.frames`), builds the chat with
the model's own chat template, generates greedily with a fixed seed, and answers `caption`, `error`,
`input_tokens`, `output_tokens`, `seconds` per row. It is a Ray Data callable class (`map_batches` builds one
per actor, so the weights load once per actor) and is called directly when the backend runs in this process.
A clip whose frames cannot be read, or a row whose generation fails, is that row's error, never the batch's.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from captioning.config import CaptionConfig, TransformersConfig
from captioning.prompts import SYSTEM

log = logging.getLogger("droplet.caption")

# Model types whose processor takes a clip as one video (frames + fps) in its chat template.
VIDEO_MODEL_TYPES = frozenset({"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "internvl", "smolvlm",
                               "llava_onevision"})
OUTPUT_KEYS = ("clip_id", "caption", "error", "input_tokens", "output_tokens", "seconds")


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str):  # noqa: ANN201 - a torch.dtype
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return getattr(torch, dtype)


def uses_video(model_type: str, media: str) -> bool:
    """Whether the frames go in as one video (else as images) for this model type and `media` setting."""
    return media == "video" or (media == "auto" and model_type in VIDEO_MODEL_TYPES)


def chat_messages(prompt: str, frames: int, video: bool) -> list[dict[str, Any]]:
    """The chat for one clip: system text, then the frames (one video, or one image part per frame) and the
    prompt; the model's chat template turns it into its own placeholders."""
    media = [{"type": "video"}] if video else [{"type": "image"} for _ in range(frames)]
    return [{"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
            {"role": "user", "content": [*media, {"type": "text", "text": prompt}]}]


class TransformersCaptioner:
    """Processor + model loaded once; `__call__(batch)` captions a Ray Data batch (dict of columns)."""

    def __init__(self, cfg: CaptionConfig, clips_dir: str):
        import torch
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

        t = cfg.transformers
        self.cfg, self.t, self.clips_dir = cfg, t, Path(clips_dir)
        self.device = resolve_device(t.device)
        started = time.perf_counter()
        self.model_type = AutoConfig.from_pretrained(t.model_path, local_files_only=True).model_type
        self.processor = AutoProcessor.from_pretrained(t.model_path, local_files_only=True)
        self.processor.tokenizer.padding_side = "left"  # batched generation continues every row at its end
        self.model = AutoModelForImageTextToText.from_pretrained(
            t.model_path, local_files_only=True, use_safetensors=True, dtype=resolve_dtype(t.dtype, self.device),
            attn_implementation=t.attn_implementation).to(self.device).eval()
        self.video = uses_video(self.model_type, t.media)
        self.torch = torch
        log.info("transformers: %s (%s) on %s, frames as %s, loaded in %.1f s", Path(t.model_path).name,
                 self.model_type, self.device, "one video" if self.video else "images",
                 time.perf_counter() - started)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from runtime.faults import maybe_fail

        rows = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
        out = self.caption_rows(rows)
        maybe_fail("caption_worker")  # a Ray actor's batch, captioned and not returned
        return {key: np.array([r[key] for r in out], dtype=object) for key in OUTPUT_KEYS}

    def caption_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One answer per row, in order, generated `batch_size` rows at a time."""
        out: list[dict[str, Any]] = []
        size = self.t.batch_size
        for start in range(0, len(rows), size):
            out.extend(self._caption_chunk(rows[start:start + size]))
        return out

    def complete_text(self, prompt: str, image: np.ndarray | None = None) -> str:
        """A single answer (`droplet rewrite-prompt`): the same chat template, greedy; with `image` (RGB, the
        first frame to describe) the model sees it as one image, else no media."""
        chat = chat_messages(prompt, 0 if image is None else 1, False)
        text = self.processor.apply_chat_template([chat], tokenize=False, add_generation_prompt=True)
        media = {} if image is None else {"images": [[image]]}
        inputs = self.processor(text=text, padding=True, return_tensors="pt", **media).to(self.device)
        inputs.pop("token_type_ids", None)
        self.torch.manual_seed(self.t.seed)
        with self.torch.inference_mode():
            generated = self.model.generate(**inputs, max_new_tokens=self.t.max_new_tokens, do_sample=False)
        new = generated[:, inputs["input_ids"].shape[1]:].cpu()
        return " ".join(self.processor.batch_decode(new, skip_special_tokens=True)[0].split())

    def _frames(self, clip_id: str) -> list[np.ndarray]:
        from captioning.frames import sample_rgb

        f = self.cfg.frames
        frames = sample_rgb(str(self.clips_dir / f"{clip_id}.mp4"), f.num_frames, f.max_side)
        if not frames:
            raise ValueError("no frames decoded")
        return frames

    def _caption_chunk(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        answers: dict[int, dict[str, Any]] = {}
        ready: list[tuple[int, dict[str, Any], list[np.ndarray]]] = []
        for i, row in enumerate(rows):
            try:
                ready.append((i, row, self._frames(str(row["clip_id"]))))
            except Exception as exc:  # noqa: BLE001 - an unreadable clip is that clip's error
                answers[i] = _answer(row, error=f"frames: {type(exc).__name__}: {exc}")
        if ready:
            try:
                for (i, _, _), answer in zip(ready, self._generate([(r, f) for _, r, f in ready]), strict=True):
                    answers[i] = answer
            except Exception as exc:  # noqa: BLE001 - one row at a time, so one bad row costs only itself
                if len(ready) == 1:
                    answers[ready[0][0]] = _answer(ready[0][1], error=f"generate: {type(exc).__name__}: {exc}")
                else:
                    log.warning("transformers: a batch of %d failed (%s); generating one row at a time",
                                len(ready), exc)
                    for i, row, _ in ready:
                        answers[i] = self._caption_chunk([row])[0]
        return [answers[i] for i in range(len(rows))]

    def _generate(self, items: list[tuple[dict[str, Any], list[np.ndarray]]]) -> list[dict[str, Any]]:
        """Greedy generation for rows whose frames are ready; the batch's time is shared evenly."""
        started = time.perf_counter()
        chats = [chat_messages(str(row["prompt"]), len(frames), self.video) for row, frames in items]
        texts = self.processor.apply_chat_template(chats, tokenize=False, add_generation_prompt=True)
        kwargs: dict[str, Any] = {}
        if self.video:
            from transformers.video_utils import VideoMetadata

            kwargs["videos"] = [np.stack(frames) for _, frames in items]
            kwargs["video_metadata"] = [_metadata(VideoMetadata, len(frames), row) for row, frames in items]
            kwargs["do_sample_frames"] = False  # the frames were sampled uniformly already
        else:
            kwargs["images"] = [frames for _, frames in items]
        inputs = self.processor(text=texts, padding=True, return_tensors="pt", **kwargs).to(self.device)
        inputs.pop("token_type_ids", None)
        self.torch.manual_seed(self.t.seed)
        with self.torch.inference_mode():
            generated = self.model.generate(**inputs, max_new_tokens=self.t.max_new_tokens, do_sample=False)
        prompt_len = inputs["input_ids"].shape[1]
        new = generated[:, prompt_len:].cpu()
        captions = self.processor.batch_decode(new, skip_special_tokens=True)
        input_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        seconds = (time.perf_counter() - started) / len(items)
        stops = _stop_ids(self.model.generation_config)
        answers = []
        for (row, _), text, ids, n_in in zip(items, captions, new.tolist(), input_tokens, strict=True):
            text = " ".join(text.split())
            answers.append(_answer(row, caption=text or None, error=None if text else "empty generation",
                                   input_tokens=int(n_in), output_tokens=_generated_count(ids, stops),
                                   seconds=seconds))
        return answers


def _metadata(cls, frames: int, row: dict[str, Any]):  # noqa: ANN001, ANN202 - transformers' VideoMetadata
    """The sampled frames as a video of their own: `frames` frames spread over the clip's duration."""
    duration = float(row.get("duration_s") or 0.0)
    fps = frames / duration if duration > 0 else 2.0
    return cls(total_num_frames=frames, fps=fps, duration=frames / fps, frames_indices=list(range(frames)))


def _stop_ids(generation_config) -> set[int]:  # noqa: ANN001
    ids = set()
    for value in (generation_config.eos_token_id, generation_config.pad_token_id):
        if value is not None:
            ids.update(value if isinstance(value, list) else [value])
    return ids


def _generated_count(ids: list[int], stops: set[int]) -> int:
    """Tokens generated up to and including the first stop token (what follows it is padding)."""
    for n, token in enumerate(ids):
        if token in stops:
            return n + 1
    return len(ids)


def _answer(row: dict[str, Any], caption: str | None = None, error: str | None = None, input_tokens: int = 0,
            output_tokens: int = 0, seconds: float = 0.0) -> dict[str, Any]:
    return {"clip_id": str(row["clip_id"]), "caption": caption, "error": error, "input_tokens": input_tokens,
            "output_tokens": output_tokens, "seconds": seconds}


def caption_with_ray(rows: list[dict[str, Any]], cfg: CaptionConfig, clips_dir: str) -> list[dict[str, Any]]:
    """The rows captioned by `concurrency` Ray Data actors (one GPU each on cuda); Ray must be connected."""
    import ray

    t: TransformersConfig = cfg.transformers
    gpus = 1 if t.device == "cuda" or (t.device == "auto" and ray.cluster_resources().get("GPU", 0) > 0) else 0
    if t.device == "auto" and gpus:
        cfg = cfg.model_copy(update={"transformers": t.model_copy(update={"device": "cuda"})})
    dataset = ray.data.from_items(rows).map_batches(
        TransformersCaptioner, fn_constructor_kwargs={"cfg": cfg, "clips_dir": clips_dir},
        batch_size=t.batch_size, concurrency=t.concurrency, num_gpus=gpus, batch_format="numpy")
    return [{key: row[key] for key in OUTPUT_KEYS} for row in dataset.take_all()]
