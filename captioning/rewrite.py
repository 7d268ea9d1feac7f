"""`droplet rewrite-prompt TEXT`: a short user prompt -> a caption-style prompt, as the paper does at
inference. A VLM backend rewrites it with a language model; grounded mode expands it with templates (and
says so), keeping every camera move the prompt names."""

from __future__ import annotations

from captioning.config import CaptionConfig
from captioning.grounded import MOVE_TEXT
from captioning.prompts import REWRITE_VERSION, SYSTEM, rewrite_prompt
from captioning.qa import count_words, mentioned_moves


def grounded_rewrite(prompt: str, min_words: int = 150) -> str:
    """Template expansion: the prompt as the overview, each named camera move with its effect, a mood."""
    text = " ".join(prompt.split()).rstrip(".")
    moves = [m for m in ("pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out", "roll_cw",
                         "roll_ccw", "static") if m in mentioned_moves(prompt)] or ["static"]
    parts = [f"{text[0].upper()}{text[1:]}."]
    for i, move in enumerate(moves):
        action, effect = MOVE_TEXT[move]
        action = " ".join(action.format(pace="steadily" if move != "static" else "").split())
        opener = "At first" if i == 0 and len(moves) > 1 else "Then" if i else "Throughout the shot"
        parts.append(f"{opener}, {action}, {effect}.")
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


def rewrite(prompt: str, cfg: CaptionConfig) -> tuple[str, str]:
    """(rewritten prompt, a note on how it was made). ValueError for an empty prompt, or a backend whose local
    paths are missing (checked before Ray or a processor starts)."""
    from runtime.paths import require_local_paths
    from runtime.ray_connect import ray_target

    if not prompt.strip():
        raise ValueError("the prompt is empty")
    require_local_paths(**cfg.local_paths(on_cluster=ray_target(None) is not None))
    if cfg.backend == "grounded":
        return grounded_rewrite(prompt, cfg.qa.min_words), (
            "grounded mode: expanded with templates (no language model); use --backend openai or vllm for a "
            "model rewrite")
    instruction = rewrite_prompt(prompt, cfg.qa.min_words, cfg.qa.max_words)
    if cfg.backend == "openai":
        from captioning.openai_backend import OpenAIClient

        o = cfg.openai
        payload = {"model": o.model, "max_tokens": o.max_tokens, "temperature": o.temperature,
                   "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": instruction}]}
        text, error = OpenAIClient(cfg.openai).complete_many([payload])[0]
        if error:
            raise RuntimeError(f"rewrite failed: {error}")
        return text, f"rewritten by {cfg.openai.model} ({REWRITE_VERSION})"
    if cfg.backend == "transformers":
        from captioning.transformers_backend import TransformersCaptioner

        text = TransformersCaptioner(cfg, clips_dir=".").complete_text(instruction)
        if not text:
            raise RuntimeError("rewrite failed: empty generation")
        return text, f"rewritten by {cfg.transformers.model_path} ({REWRITE_VERSION})"
    return _vllm_rewrite(instruction, cfg), f"rewritten by {cfg.vllm.model_path} ({REWRITE_VERSION})"


def _vllm_rewrite(instruction: str, cfg: CaptionConfig, address: str | None = None) -> str:
    import ray
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    from captioning.vllm_backend import load_runtime_env
    from runtime.ray_connect import connect_ray

    connect_ray(address)  # the project's one connection: an embedded Ray stays on loopback

    v = cfg.vllm
    config = vLLMEngineProcessorConfig(
        model_source=v.model_path, runtime_env=load_runtime_env(v.runtime_env), batch_size=1, concurrency=1,
        engine_kwargs={"tensor_parallel_size": v.tensor_parallel_size, "max_model_len": v.max_model_len},
    )
    processor = build_processor(
        config,
        preprocess=lambda row: {"messages": [{"role": "system", "content": SYSTEM},
                                             {"role": "user", "content": row["instruction"]}],
                                "sampling_params": {"max_tokens": v.max_tokens, "temperature": v.temperature}},
        postprocess=lambda row: {"text": row.get("generated_text", "")},
    )
    rows = processor(ray.data.from_items([{"instruction": instruction}])).take_all()
    return " ".join(rows[0]["text"].split())
