"""CLIP image embeddings of clip files (open_clip), one vector per clip.

A clip's embedding is made from `frames` frames: the middle frame of each of `frames` equal parts of the clip
(3 frames: at 1/6, 3/6 and 5/6 of it), so never the first or last frame of a clip longer than twice that,
where a trimmed scene may still carry a trace of the transition. Each frame embedding is L2-normalised, the
normalised frames are averaged, and the mean is L2-normalised again:

- every frame weighs the same: the length of a raw CLIP embedding varies with the picture, not its meaning;
- the clip vector is a unit vector like the frame vectors, which is what the LAION aesthetic heads were trained
  on (their published inference normalises) and what cosine near-duplicate search expects; for a still clip
  it is exactly the frame embedding;
- one vector is stored and scored, so the stored embedding reproduces the aesthetic score and the scene tags.

torch and open_clip are imported when a model is built, so importing the config costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

OPEN_CLIP_CONFIG = "open_clip_config.json"


class EmbeddingConfig(BaseModel):
    """CLIP image embeddings of every kept clip (open_clip). Skipped, with the aesthetic score and the scene
    tags that need it, while `weights` is null."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        "ViT-B-32-quickgelu", description="open_clip architecture of a weights file (OpenAI's CLIP weights need "
        "the -quickgelu names). A weights folder brings its own (open_clip_config.json) and this is not read."
    )
    weights: str | None = Field(
        None, description="Local CLIP weights: a file as published (.safetensors, or an open_clip .bin/.pt state "
        "dict, read with weights_only=True: OpenAI's TorchScript .pt is refused), or a folder holding "
        "open_clip_config.json and its weights (`droplet models fetch clip-vit-b-32 DIR`). null: the stage is skipped."
    )
    frames: int = Field(3, ge=1, le=32, description="Frames per clip: the middle frame of each of this many equal "
                        "parts of the clip (so not its first or last frame).")
    device: str = Field("cpu", description="torch device of the model (cpu, cuda, cuda:1).")
    batch_size: int = Field(32, ge=1, description="Frames per forward pass.")

    def local_paths(self) -> dict[str, dict[str, str | None]]:
        """`runtime.paths.require_local_paths` arguments: the weights, checked before a run starts."""
        if self.weights is not None and Path(self.weights).is_dir():
            return {"folders": {"embeddings.weights": self.weights}, "files": {}}
        return {"folders": {}, "files": {"embeddings.weights": self.weights}}


def middle_indices(num_frames: int, count: int) -> list[int]:
    """The middle frame of each of `count` equal parts of [0, num_frames): `((2k + 1) * num_frames) // (2 * count)`
    (distinct and sorted; fewer when the clip has fewer frames than `count`)."""
    if num_frames <= 0 or count <= 0:
        return []
    count = min(count, num_frames)
    return [((2 * k + 1) * num_frames) // (2 * count) for k in range(count)]


def _read_middle_frames(path: str | Path, count: int) -> tuple[list[int], list[np.ndarray]]:
    """The frames at `middle_indices` of the clip file at `path` as RGB uint8 arrays, read in one PyAV pass that
    stops after the last one (at most `count` frames are held)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        total = stream.frames
        if not total:  # no frame count in the header: count the packets, then decode from the start
            total = sum(1 for packet in container.demux(stream) if packet.size)
            container.seek(0)
        wanted = middle_indices(total, count)
        if not wanted:
            return [], []
        want, last = set(wanted), wanted[-1]
        indices, frames = [], []
        for index, frame in enumerate(container.decode(stream)):
            if index in want:
                indices.append(index)
                frames.append(frame.to_ndarray(format="rgb24"))
            if index >= last:
                break
    return indices, frames


@dataclass(frozen=True)
class ClipEmbedding:
    """A clip's unit-length embedding and the frame indices it was made from."""

    embedding: np.ndarray  # float32 [D]
    frames: tuple[int, ...]


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


def mean_embedding(frame_embeddings: np.ndarray) -> np.ndarray:
    """The L2-normalised mean of the L2-normalised rows of `frame_embeddings` [n, D] (float32 [D])."""
    if len(frame_embeddings) == 0:
        raise ValueError("no frame embeddings to average")
    return _normalise(_normalise(np.asarray(frame_embeddings, dtype=np.float32)).mean(axis=0))


class ClipEmbedder:
    """An open_clip model loaded once from local weights (never from a hub): image embeddings of frames and
    clips, text embeddings for zero-shot tags."""

    def __init__(self, config: EmbeddingConfig) -> None:
        if config.weights is None:
            raise ValueError("embeddings.weights is not set: no CLIP model to load")
        import open_clip
        import torch

        path = Path(config.weights)
        if path.is_dir():
            if not (path / OPEN_CLIP_CONFIG).is_file():
                raise ValueError(f"embeddings.weights {path}: a folder needs {OPEN_CLIP_CONFIG} beside its weights")
            name, pretrained = f"local-dir:{path}", None
        elif path.is_file():
            name, pretrained = config.model, str(path)
        else:
            raise FileNotFoundError(f"embeddings.weights {path}: no such file or folder")
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, device=config.device, require_pretrained=True, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - open_clip raises (and asserts) in many ways: one line for all
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"embeddings.weights {path} does not load as open_clip {name}: {first}") from None
        model.eval()
        self.config = config
        self.name = name
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(name)
        self.device = torch.device(config.device)
        self.dim = int(model.visual.output_dim)
        self.logit_scale = float(model.logit_scale.exp().item())

    def _forward(self, batches: Sequence[Any], encode) -> np.ndarray:  # noqa: ANN001
        import torch

        out = []
        with torch.inference_mode():
            for batch in batches:
                out.append(encode(batch.to(self.device)).float().cpu().numpy())
        return _normalise(np.concatenate(out)) if out else np.zeros((0, self.dim), np.float32)

    def embed_images(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised image embeddings (float32 [n, D]) of RGB uint8 frames [H, W, 3] of any size (open_clip's
        own preprocessing: shortest side resized, centre crop, CLIP's mean and std)."""
        import torch
        from PIL import Image

        size = self.config.batch_size
        batches = (torch.stack([self.preprocess(Image.fromarray(np.ascontiguousarray(f))) for f in frames[i:i + size]])
                   for i in range(0, len(frames), size))
        return self._forward(batches, self.model.encode_image)

    def embed(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """One clip vector from its frames: the normalised mean of the normalised frame embeddings (float32 [D])."""
        if not len(frames):
            raise ValueError("no frames to embed")
        return mean_embedding(self.embed_images(frames))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings (float32 [n, D])."""
        tokens = self.tokenizer(list(texts))
        size = self.config.batch_size
        return self._forward([tokens[i:i + size] for i in range(0, len(tokens), size)], self.model.encode_text)

    def read_frames(self, path: str | Path) -> tuple[list[int], list[np.ndarray]]:
        """The configured frames of a clip file (indices, RGB arrays); raises ValueError when none decode."""
        import av

        try:
            indices, frames = _read_middle_frames(path, self.config.frames)
        except (av.FFmpegError, OSError, ValueError, IndexError) as exc:  # IndexError: no video stream
            raise ValueError(f"{path}: {exc}") from None
        if not frames:
            raise ValueError(f"{path}: no frame decoded")
        return indices, frames

    def embed_clips(self, paths: Sequence[str | Path]) -> list[ClipEmbedding | str]:
        """Each clip file's embedding, every clip's frames in shared forward passes; a clip that does not decode
        gets its error message (a string) instead."""
        results: list[ClipEmbedding | str] = []
        read: list[tuple[int, list[int], list[np.ndarray]]] = []
        for i, path in enumerate(paths):
            try:
                indices, frames = self.read_frames(path)
            except ValueError as exc:
                results.append(str(exc))
                continue
            results.append("")
            read.append((i, indices, frames))
        vectors = self.embed_images([f for _, _, frames in read for f in frames])
        at = 0
        for i, indices, frames in read:
            results[i] = ClipEmbedding(mean_embedding(vectors[at:at + len(frames)]), tuple(indices))
            at += len(frames)
        return results
