"""`droplet rewrite-prompt TEXT [--image IMG]`: a short user prompt -> a caption-style prompt, as the paper does at
inference. A VLM backend rewrites it with a language model; given `--image` (the first frame of an image-to-video
sample) it sees the image and is asked to describe that frame and the requested camera move. Grounded mode
expands the prompt with templates and says so ("grounded rewrite: template"), keeping every camera move the
prompt names; it never looks at an image."""

from __future__ import annotations

import re
from typing import Any

from captioning.config import CaptionConfig
from captioning.grounded import MOVE_TEXT
from captioning.prompts import REWRITE_IMAGE_VERSION, REWRITE_VERSION, SYSTEM, rewrite_image_prompt, rewrite_prompt
from captioning.qa import count_words, mentioned_moves

GROUNDED_NOTE = ("grounded rewrite: template (grounded mode: expanded with templates, no language model{image}); "
                 "use --backend openai or vllm for a model rewrite")
_CLAUSE = re.compile(r"[,;.!?]|\bthen\b|\band\b|\bbefore\b|\bafter\b")


def requested_moves(prompt: str) -> list[str]:
    """The camera labels the prompt names, in the order it names them ("pans left and then zooms out")."""
    said = mentioned_moves(prompt)
    clauses = [mentioned_moves(c) for c in _CLAUSE.split(prompt)]
    first = {m: next((i for i, c in enumerate(clauses) if m in c), len(clauses)) for m in said}
    return sorted(said, key=lambda m: (first[m], m))


def grounded_rewrite(prompt: str, min_words: int = 150) -> str:
    """Template expansion: the prompt as the overview, each named camera move with its effect, a mood."""
    text = " ".join(prompt.split()).rstrip(".")
    moves = [m for m in requested_moves(prompt) if m in MOVE_TEXT] or ["static"]
    parts = [f"{text[0].upper()}{text[1:]}."]
    for i, move in enumerate(moves):
        action, effect = MOVE_TEXT[move]
        action = " ".join(action.format(pace="steadily" if move != "static" else "").split())
        opener = "At first" if i == 0 and len(moves) > 1 else "Then" if i else "Throughout the shot"
        parts.append(f"{opener}, {action}, {effect.format(surround='the surrounding scene')}.")
    fillers = [
        "The shot is continuous, without cuts, so every change in what is visible comes from the camera's "
        "movement or from the subjects' own motion.",
        "The subjects keep their appearance and position consistent from frame to frame, and whatever leaves "
        "the frame stays part of the same coherent space.",
        "The lighting stays consistent across the whole clip, with no sudden changes in exposure or colour.",
        "Details near the edges of the frame are revealed gradually rather than all at once, which keeps the "
        "spatial layout easy to follow.",
        "The pacing is smooth and unhurried, letting each newly revealed part of the scene register before "
        "the view moves on.",
    ]
    mood = "Overall the mood is coherent and immersive, with the camera guiding the eye through the scene."
    for filler in fillers:
        if count_words(" ".join([*parts, mood])) >= min_words:
            break
        parts.append(filler)
    return " ".join([*parts, mood])


def rewrite_messages(instruction: str, image_jpeg: bytes | None = None) -> list[dict[str, Any]]:
    """Chat messages of a rewrite: the system text, then the first frame (when given) and the instruction."""
    from captioning.frames import data_url

    if image_jpeg is None:
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": instruction}]
    user = [{"type": "image_url", "image_url": {"url": data_url(image_jpeg)}}, {"type": "text", "text": instruction}]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def rewrite(prompt: str, cfg: CaptionConfig, image: str | None = None) -> tuple[str, str]:
    """(rewritten prompt, a note on how it was made). `image`: the first frame to describe (a VLM backend).
    ValueError for an empty prompt, a missing or unreadable image, or a backend whose local paths are missing
    (checked before Ray or a processor starts)."""
    from captioning.frames import image_jpeg
    from runtime.paths import require_local_paths
    from runtime.ray_connect import ray_target

    if not prompt.strip():
        raise ValueError("the prompt is empty")
    require_local_paths(**cfg.local_paths(on_cluster=ray_target(None) is not None))
    if image is not None:
        require_local_paths(files={"--image": image})
    if cfg.backend == "grounded":
        return grounded_rewrite(prompt, cfg.qa.min_words), GROUNDED_NOTE.format(
            image="; the --image is not looked at" if image else "")
    if image is None:
        instruction, jpeg, version = rewrite_prompt(prompt, cfg.qa.min_words, cfg.qa.max_words), None, REWRITE_VERSION
    else:
        jpeg = image_jpeg(image, cfg.frames.max_side, cfg.frames.jpeg_quality)
        moves = [f"the camera {MOVE_TEXT[m][0].removeprefix('the camera ').format(pace='').strip()}"
                 for m in requested_moves(prompt) if m in MOVE_TEXT]
        instruction = rewrite_image_prompt(prompt, [" ".join(m.split()) for m in moves], cfg.qa.min_words,
                                           cfg.qa.max_words)
        version = REWRITE_IMAGE_VERSION
    seen = f" from the first frame {image}" if image else ""
    messages = rewrite_messages(instruction, jpeg)
    if cfg.backend == "openai":
        from captioning.openai_backend import OpenAIClient

        o = cfg.openai
        payload = {"model": o.model, "max_tokens": o.max_tokens, "temperature": o.temperature, "messages": messages}
        text, error = OpenAIClient(cfg.openai).complete_many([payload])[0]
        if error:
            raise RuntimeError(f"rewrite failed: {error}")
        return text, f"rewritten by {cfg.openai.model}{seen} ({version})"
    if cfg.backend == "transformers":
        import cv2
        import numpy as np

        from captioning.transformers_backend import TransformersCaptioner

        frame = None
        if jpeg is not None:
            frame = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        text = TransformersCaptioner(cfg, clips_dir=".").complete_text(instruction, frame)
        if not text:
            raise RuntimeError("rewrite failed: empty generation")
        return text, f"rewritten by {cfg.transformers.model_path}{seen} ({version})"
    return _vllm_rewrite(messages, cfg, with_image=jpeg is not None), (
        f"rewritten by {cfg.vllm.model_path}{seen} ({version})")


def _vllm_rewrite(messages: list[dict[str, Any]], cfg: CaptionConfig, with_image: bool = False,
                  address: str | None = None) -> str:
    import ray
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    from captioning.vllm_backend import load_runtime_env
    from runtime.ray_connect import connect_ray

    connect_ray(address)  # the project's one connection: an embedded Ray stays on loopback

    v = cfg.vllm
    engine = {"tensor_parallel_size": v.tensor_parallel_size, "max_model_len": v.max_model_len,
              "load_format": "safetensors"}
    media: dict[str, Any] = {}
    if with_image:
        engine["limit_mm_per_prompt"] = {"image": 1}
        media["prepare_multimodal_stage"] = {"enabled": True}
    config = vLLMEngineProcessorConfig(
        model_source=v.model_path, runtime_env=load_runtime_env(v.runtime_env), batch_size=1, concurrency=1,
        engine_kwargs=engine, **media,
    )
    processor = build_processor(
        config,
        preprocess=lambda row: {"messages": messages,
                                "sampling_params": {"max_tokens": v.max_tokens, "temperature": v.temperature}},
        postprocess=lambda row: {"text": row.get("generated_text", "")},
    )
    rows = processor(ray.data.from_items([{"prompt": "rewrite"}])).take_all()
    return " ".join(rows[0]["text"].split())
