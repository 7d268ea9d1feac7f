"""Embeddings, aesthetic score and scene tags of written clip files, from one CLIP model loaded once (the model
holder a pipeline stage keeps per worker), and which of the three stages a config skips and why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from curation.aesthetic import LOW_AESTHETIC, AestheticConfig, AestheticHead
from curation.embeddings import ClipEmbedder, EmbeddingConfig
from curation.reasons import DECODE_ERROR
from curation.scene_tags import SceneTagConfig, SceneTagger

SCENE_TAGS_TYPE = pa.list_(pa.struct([("tag", pa.string()), ("score", pa.float32())]))
"""Arrow type of the `scene_tags` column; `aesthetic_score` is a float64 column."""


def skipped_stages(embeddings: EmbeddingConfig, aesthetic: AestheticConfig, tags: SceneTagConfig) -> dict[str, str]:
    """Stage name -> why it does not run, for the log and the report (empty: all three run)."""
    skipped = {}
    if embeddings.weights is None:
        skipped["embeddings"] = "embeddings.weights is not set"
    if aesthetic.head is None:
        skipped["aesthetic"] = "aesthetic.head is not set"
    elif embeddings.weights is None:
        skipped["aesthetic"] = "it scores CLIP embeddings and embeddings.weights is not set"
    if not tags.enabled:
        skipped["scene_tags"] = "scene_tags.enabled is false"
    elif embeddings.weights is None:
        skipped["scene_tags"] = "it needs CLIP weights and embeddings.weights is not set"
    return skipped


@dataclass
class ClipScores:
    """What the stages found for one clip file; `error` (a reason code and message) when it did not decode."""

    embedding: np.ndarray | None = None  # float32 [D], unit length
    frames: tuple[int, ...] = ()
    aesthetic_score: float | None = None
    low_aesthetic: bool | None = None
    scene_tags: list[dict] | None = None
    error: str | None = None

    @property
    def reject_reason(self) -> str | None:
        """`low_aesthetic` when the score is under the threshold, else None."""
        return LOW_AESTHETIC if self.low_aesthetic else None


class ClipScorer:
    """Loads the CLIP model, the aesthetic head and the tag vocabulary once; scores clip files. Build it only when
    `skipped_stages` leaves "embeddings" running; a head that does not fit the CLIP model is a ValueError here."""

    def __init__(self, embeddings: EmbeddingConfig, aesthetic: AestheticConfig, tags: SceneTagConfig) -> None:
        self.embedder = ClipEmbedder(embeddings)
        self.head = None
        self.threshold = aesthetic.threshold
        if aesthetic.head is not None:
            self.head = AestheticHead.load(aesthetic.head, aesthetic.kind)
            self.head.check_dim(self.embedder.dim, f"embeddings of {self.embedder.name}")
        self.tagger = SceneTagger(tags, self.embedder) if tags.enabled else None

    def score_embedding(self, embedding: np.ndarray, frames: tuple[int, ...] = ()) -> ClipScores:
        score = self.head.score(embedding) if self.head is not None else None
        return ClipScores(embedding=embedding, frames=frames, aesthetic_score=score,
                          low_aesthetic=None if score is None else score < self.threshold,
                          scene_tags=self.tagger.tags(embedding) if self.tagger is not None else None)

    def score_files(self, paths: Sequence[str | Path]) -> list[ClipScores]:
        """One result per clip file, in order; the frames of all of them go through the model together."""
        out = []
        for result in self.embedder.embed_clips(paths):
            if isinstance(result, str):
                out.append(ClipScores(error=f"{DECODE_ERROR}: {result}"))
            else:
                out.append(self.score_embedding(result.embedding, result.frames))
        return out

    def __call__(self, path: str | Path) -> ClipScores:
        return self.score_files([path])[0]
