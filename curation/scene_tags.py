"""Zero-shot scene tags from a clip's CLIP embedding: `scene_tags`, a list of `{tag, score}`.

The vocabulary is a set of groups whose tags compete (indoor or outdoor; city, nature, water, sky or a room;
people, animals, vehicles or empty scenery; day or night). Each tag's text embedding is the normalised mean of
its prompts (every template filled with the tag's phrase: CLIP's prompt ensembling); within a group the tags'
cosine similarities to the clip embedding, times the model's logit scale, go through a softmax, so a group's
scores lie in [0, 1] and sum to 1. A tag is kept when its score reaches its group's minimum. Runs whenever the
CLIP weights are configured (nothing more to download).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from curation.embeddings import ClipEmbedder

DEFAULT_VOCABULARY: dict[str, dict[str, str]] = {
    "setting": {"indoor": "an indoor scene", "outdoor": "an outdoor scene"},
    "place": {"city": "a city street with buildings", "nature": "nature with trees and plants",
              "water": "a sea, a lake or a river", "sky": "the open sky", "room": "a room"},
    "subject": {"people": "people", "animals": "animals", "vehicles": "cars or other vehicles",
                "scenery": "empty scenery"},
    "time": {"day": "a scene in daylight", "night": "a scene at night"},
}
DEFAULT_TEMPLATES = ("a photo of {}.", "a video frame of {}.")


class SceneTagConfig(BaseModel):
    """Zero-shot scene tags over a vocabulary of competing groups (needs embeddings.weights)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Tag clips whenever embeddings.weights is set.")
    vocabulary: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {g: dict(t) for g, t in DEFAULT_VOCABULARY.items()},
        description="group -> {tag: the phrase the prompts use}. Tags of a group compete (softmax); every tag "
        "name is unique; a group has at least two tags.")
    templates: tuple[str, ...] = Field(DEFAULT_TEMPLATES, description="Prompt templates; {} takes the phrase.")
    min_score: float = Field(0.5, gt=0, le=1, description="A tag is kept when its score reaches this (groups not "
                             "in min_scores).")
    min_scores: dict[str, float] = Field(
        default_factory=lambda: {"place": 0.3, "subject": 0.3},
        description="Per-group minimum: lower for groups where several tags can hold at once (entries for groups "
        "the vocabulary lacks are an error, unless left at the default).")

    @model_validator(mode="after")
    def _check(self) -> SceneTagConfig:
        seen: set[str] = set()
        for group, tags in self.vocabulary.items():
            if len(tags) < 2:
                raise ValueError(f"scene_tags.vocabulary.{group}: a group needs at least two tags")
            if seen & set(tags):
                raise ValueError(f"scene_tags.vocabulary.{group}: tag {sorted(seen & set(tags))[0]} is in two groups")
            seen |= set(tags)
        unknown = sorted(set(self.min_scores) - set(self.vocabulary))
        if unknown and "min_scores" in self.model_fields_set:  # the defaults' groups may be gone with their vocabulary
            raise ValueError(f"scene_tags.min_scores: {unknown[0]} is no vocabulary group")
        if not all(0 < v <= 1 for v in self.min_scores.values()):
            raise ValueError("scene_tags.min_scores: each value must be in (0, 1]")
        if not self.templates or any(t.count("{}") != 1 for t in self.templates):
            raise ValueError("scene_tags.templates: each template holds {} exactly once")
        return self

    def group_min(self, group: str) -> float:
        return self.min_scores.get(group, self.min_score)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


class SceneTagger:
    """The vocabulary's text embeddings, computed once from a loaded CLIP model; tags clip embeddings."""

    def __init__(self, config: SceneTagConfig, embedder: ClipEmbedder) -> None:
        self.config = config
        self.logit_scale = embedder.logit_scale
        self.groups: dict[str, tuple[list[str], np.ndarray]] = {}
        for group, tags in config.vocabulary.items():
            names = list(tags)
            prompts = [t.format(tags[name]) for name in names for t in config.templates]
            per_tag = embedder.embed_texts(prompts).reshape(len(names), len(config.templates), -1).mean(axis=1)
            self.groups[group] = (names, per_tag / np.maximum(np.linalg.norm(per_tag, axis=1, keepdims=True), 1e-12))

    def scores(self, embedding: np.ndarray) -> dict[str, dict[str, float]]:
        """Every tag's score, by group (each group's scores in [0, 1], summing to 1)."""
        vector = np.asarray(embedding, dtype=np.float32)
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        out = {}
        for group, (names, texts) in self.groups.items():
            probs = _softmax(self.logit_scale * (texts @ vector).astype(np.float64))
            out[group] = dict(zip(names, probs.tolist(), strict=True))
        return out

    def tags(self, embedding: np.ndarray) -> list[dict]:
        """The kept tags as `{tag, score}`, group by group in vocabulary order, best first within a group."""
        kept = []
        for group, scores in self.scores(embedding).items():
            floor = self.config.group_min(group)
            kept += [{"tag": t, "score": s} for t, s in sorted(scores.items(), key=lambda kv: -kv[1]) if s >= floor]
        return kept
