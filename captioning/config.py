"""The captioning config (`configs/caption.yaml`): backend, frames, QA, shards; validated (pydantic)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from captioning.grounded import GroundedConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FramesConfig(_Section):
    """Frames a VLM sees: sampled uniformly over the clip."""

    num_frames: int = Field(16, ge=1, le=128, description="Frames sampled uniformly from each clip.")
    max_side: int = Field(448, ge=64, description="Long side of frames sent as images (downscaled, never up).")
    jpeg_quality: int = Field(90, ge=30, le=100, description="JPEG quality of frames sent as images.")


class QAConfig(_Section):
    """Caption QA: length, and camera sentences against the measured timeline."""

    min_words: int = Field(150, ge=1, description="Shorter captions fail QA (too_short).")
    max_words: int = Field(260, ge=1, description="Longer captions fail QA (too_long).")
    min_confidence: float = Field(0.5, ge=0, le=1, description="Timeline segments at least this sure are checked.")
    retry: bool = Field(True, description="Ask a VLM backend once more, with the QA feedback, when QA fails.")

    @model_validator(mode="after")
    def _bounds(self) -> QAConfig:
        if self.max_words < self.min_words:
            raise ValueError("qa.max_words must be at least qa.min_words")
        return self


class OpenAIConfig(_Section):
    """Any OpenAI-compatible chat-completions endpoint (`vllm serve`, say)."""

    base_url: str = Field("http://127.0.0.1:8000/v1", description="Endpoint base URL (ends in /v1).")
    model: str = Field("Qwen2.5-VL-7B-Instruct", description="Model name the server expects.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key (may be unset).")
    concurrency: int = Field(8, ge=1, description="Requests in flight at once.")
    timeout_s: float = Field(120.0, gt=0, description="Per-request time limit.")
    retries: int = Field(3, ge=0, description="Retries after a timeout, a connection error, a 429 or a 5xx.")
    backoff_s: float = Field(1.0, ge=0, description="First retry delay; doubles each retry ...")
    backoff_max_s: float = Field(30.0, ge=0, description="... up to this.")
    max_tokens: int = Field(512, ge=16, description="Caption length budget in tokens.")
    temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature.")
    video: bool = Field(False, description="Send the frames as one video (servers that take video_url), not images.")


class VLLMConfig(_Section):
    """Ray Data LLM processor around a vLLM engine, reading a VLM from a local path."""

    model_path: str = Field("/models/Qwen2.5-VL-7B-Instruct", description="Local folder of the VLM's weights.")
    family: Literal["qwen2_5_vl", "internvl2"] = Field(
        "qwen2_5_vl", description="qwen2_5_vl takes the clip as one video with its fps; internvl2 takes images."
    )
    runtime_env: str = Field(
        "configs/vllm-runtime-env.yaml", description="Ray runtime_env file that brings vLLM (and its torch)."
    )
    batch_size: int = Field(16, ge=1, description="Rows per batch sent to an engine.")
    concurrency: int = Field(1, ge=1, description="vLLM engine replicas.")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per engine.")
    max_model_len: int = Field(32768, ge=1024, description="Context length of the engine.")
    max_tokens: int = Field(512, ge=16, description="Caption length budget in tokens.")
    temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature.")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="Share of GPU memory vLLM may take.")
    should_continue_on_error: bool = Field(True, description="A failing row becomes an error row, not a failed job.")


class TransformersConfig(_Section):
    """A VLM run in this process (or in Ray Data actors) with Hugging Face transformers: no vLLM needed."""

    model_path: str = Field("/models/Qwen2.5-VL-3B-Instruct", description="Local folder of the VLM's weights "
                            "(AutoProcessor + AutoModelForImageTextToText format, its chat template included).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when a GPU is visible, else cpu.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: bfloat16 on cuda, float32 on cpu.")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = Field(
        "sdpa", description="Attention kernel (flash_attention_2 needs the flash-attn package).")
    media: Literal["auto", "video", "images"] = Field(
        "auto", description="How the frames go in: auto sends one video to models that take video (Qwen2-VL, "
        "Qwen2.5-VL, Qwen3-VL, InternVL, SmolVLM, LLaVA-OneVision) and images to the others.")
    batch_size: int = Field(4, ge=1, description="Clips per generate call.")
    max_new_tokens: int = Field(512, ge=16, description="Caption length budget in tokens.")
    seed: int = Field(0, description="Seed set before every generate call; decoding is greedy (reproducible).")
    ray: bool = Field(False, description="Run as Ray Data actors (`concurrency`, one GPU each on cuda) rather than "
                      "in this process; always so when a Ray address is given.")
    concurrency: int = Field(1, ge=1, description="Ray Data actors, each holding one copy of the model.")


class ShardConfig(_Section):
    """WebDataset shards written after captioning."""

    target_bytes: int = Field(1_000_000_000, ge=1, description="A shard closes before it would pass this size.")
    qa_passed_only: bool = Field(True, description="Shard only captions that passed QA.")


class CaptionConfig(_Section):
    """Everything `droplet caption`, `droplet shard` and `droplet rewrite-prompt` read."""

    backend: Literal["grounded", "transformers", "vllm", "openai"] = Field("grounded", description="Which captioner.")
    commit_every: int | None = Field(None, ge=1, description="Clips captioned and committed at a time (what a killed "
                                     "run can lose); null: the backend's own (grounded 2048, openai 64, vllm 1024, "
                                     "transformers 64).")
    frames: FramesConfig = FramesConfig()
    qa: QAConfig = QAConfig()
    openai: OpenAIConfig = OpenAIConfig()
    transformers: TransformersConfig = TransformersConfig()
    vllm: VLLMConfig = VLLMConfig()
    shards: ShardConfig = ShardConfig()
    grounded: GroundedConfig = GroundedConfig()

    def local_paths(self, on_cluster: bool = False) -> dict[str, dict[str, str]]:
        """The local folders and files this backend reads (`runtime.paths.require_local_paths` keywords):
        for vllm its runtime_env file (read here) and its model folder (read by the workers: on a cluster it may
        live on storage only they see, so it is not checked here); for transformers its model folder (not
        checked on a cluster either); grounded and openai read none."""
        if self.backend == "transformers":
            return {"folders": {} if on_cluster else {"transformers.model_path": self.transformers.model_path}}
        if self.backend != "vllm":
            return {}
        folders = {} if on_cluster else {"vllm.model_path": self.vllm.model_path}
        return {"folders": folders, "files": {"vllm.runtime_env": self.vllm.runtime_env}}


CAPTION_YAML_HEADER = """\
# droplet caption / shard / rewrite-prompt config. Every key is optional: a missing one takes the default shown.
# Validated on load: unknown keys and bad values stop the command (exit 2) with one line saying which.
# Generated from captioning/config.py (a test keeps the two equal): `droplet config-defaults caption`.
"""
