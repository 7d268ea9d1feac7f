"""The vLLM backend: a Ray Data LLM processor (`ray.data.llm.build_processor` + `vLLMEngineProcessorConfig`).

vLLM pins its own torch, torchvision and transformers, so it never enters this project's environment: the
processor's stages run in the Ray `runtime_env` of `configs/vllm-runtime-env.yaml` (vLLM and Ray pinned), and
vLLM is imported only inside their actors. Qwen2.5-VL gets the clip file as one video (vLLM samples
`frames.num_frames` frames uniformly and passes the fps on: about half the visual tokens of as many images);
InternVL2 gets that many frames as images, sampled here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from captioning.config import CaptionConfig
from captioning.prompts import SYSTEM


def load_runtime_env(path: str | Path) -> dict[str, Any]:
    """The runtime_env dict of a YAML file (pip packages, env vars, ...)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not ({"pip", "uv", "conda", "image_uri", "container"} & set(data)):
        raise ValueError(f"{path}: a runtime_env needs pip, uv, conda or an image")
    return data


def clip_path(clips_dir: str, clip_id: str) -> str:
    return str(Path(clips_dir) / f"{clip_id}.mp4")


def preprocess_row(row: dict[str, Any], cfg: CaptionConfig, clips_dir: str) -> dict[str, Any]:
    """A clip row (clip_id, prompt) -> the chat messages and sampling parameters vLLM expects."""
    if cfg.vllm.family == "qwen2_5_vl":
        media = [{"type": "video_url", "video_url": {"url": "file://" + clip_path(clips_dir, row["clip_id"])}}]
    else:
        from captioning.frames import data_url, sample_jpegs

        f = cfg.frames
        jpegs = sample_jpegs(clip_path(clips_dir, row["clip_id"]), f.num_frames, f.max_side, f.jpeg_quality)
        media = [{"type": "image_url", "image_url": {"url": data_url(j)}} for j in jpegs]
    return {
        "clip_id": row["clip_id"],
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": [*media, {"type": "text", "text": row["prompt"]}]},
        ],
        "sampling_params": {"max_tokens": cfg.vllm.max_tokens, "temperature": cfg.vllm.temperature},
    }


def postprocess_row(row: dict[str, Any]) -> dict[str, Any]:
    """An engine output row -> (clip_id, caption, error, token counts)."""
    error = row.get("__inference_error__") or None
    text = " ".join(str(row.get("generated_text") or "").split()) or None
    if error is None and text is None:
        error = "empty generation"
    return {"clip_id": row["clip_id"], "caption": None if error else text, "error": error,
            "input_tokens": int(row.get("num_input_tokens") or 0),
            "output_tokens": int(row.get("num_generated_tokens") or 0)}


def engine_kwargs(cfg: CaptionConfig, clips_dir: str) -> dict[str, Any]:
    v = cfg.vllm
    limits = {"video": 1} if v.family == "qwen2_5_vl" else {"image": cfg.frames.num_frames}
    return {
        "tensor_parallel_size": v.tensor_parallel_size,
        "max_model_len": v.max_model_len,
        "gpu_memory_utilization": v.gpu_memory_utilization,
        "limit_mm_per_prompt": limits,
        "allowed_local_media_path": str(Path(clips_dir).resolve()),
        "trust_remote_code": v.family == "internvl2",
        "load_format": "safetensors",  # never a pickled .bin/.pt from the model folder
    }


def processor_config(cfg: CaptionConfig, clips_dir: str, runtime_env: dict[str, Any]):  # noqa: ANN201
    from ray.data.llm import vLLMEngineProcessorConfig

    v = cfg.vllm
    media_io = {"video": {"num_frames": cfg.frames.num_frames}}
    return vLLMEngineProcessorConfig(
        model_source=v.model_path,
        engine_kwargs=engine_kwargs(cfg, clips_dir),
        runtime_env=runtime_env,
        batch_size=v.batch_size,
        concurrency=v.concurrency,
        should_continue_on_error=v.should_continue_on_error,
        prepare_multimodal_stage={
            "enabled": True,
            "model_config_kwargs": {"media_io_kwargs": media_io,
                                    "allowed_local_media_path": str(Path(clips_dir).resolve()),
                                    "trust_remote_code": v.family == "internvl2"},
        },
        chat_template_stage=True,
        tokenize_stage=True,
        detokenize_stage=True,
    )


def build_caption_processor(cfg: CaptionConfig, clips_dir: str, runtime_env: dict[str, Any]):  # noqa: ANN201
    """The processor: preprocess -> multimodal prep -> chat template -> tokenize -> vLLM -> detokenize ->
    postprocess. Building it imports no vLLM (that happens in the stages' actors)."""
    from ray.data.llm import build_processor

    return build_processor(
        processor_config(cfg, clips_dir, runtime_env),
        preprocess=preprocess_row,
        preprocess_map_kwargs={"fn_kwargs": {"cfg": cfg, "clips_dir": clips_dir}},
        postprocess=postprocess_row,
    )
