"""The LAION aesthetic predictors on CLIP clip embeddings: `aesthetic_score`, and `low_aesthetic` under a threshold.

Two published heads, read from their torch state dicts as published (`torch.load(..., weights_only=True)`):

- `linear` (LAION-AI/aesthetic-predictor, "LAION-Aesthetics V1"): `nn.Linear(D, 1)`, keys `weight` [1, D] and
  `bias` [1], for OpenAI's CLIP ViT-B/32 (`sa_0_4_vit_b_32_linear.pth`, D 512), ViT-B/16 (`..._b_16_...`, 512)
  and ViT-L/14 (`..._l_14_...`, 768). Trained on SAC ratings (0-10).
- `improved_mlp` (christophschuhmann/improved-aesthetic-predictor, "LAION-Aesthetics V2",
  `sac+logos+ava1-l14-linearMSE.pth`): five linear layers D -> 1024 -> 128 -> 64 -> 16 -> 1 with dropout between
  the first four and no activation, as `layers.{0,2,4,6,7}.{weight,bias}`, for OpenAI's CLIP ViT-L/14 only.
  Trained on SAC, LAION-Logos and AVA ratings (1-10).

Both were trained on L2-normalised image embeddings of OpenAI's CLIP weights (their published inference
normalises first), so `score` normalises its input and the embedding must come from the matching backbone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

LOW_AESTHETIC = "low_aesthetic"
HeadKind = Literal["linear", "improved_mlp"]
MLP_WIDTHS = (1024, 128, 64, 16, 1)
MLP_DROPOUT = (0.2, 0.2, 0.1)


class AestheticThresholds(BaseModel):
    """A clip scoring below its head's threshold is rejected as low_aesthetic (the head's 1-10 scale). Defaults:
    4.5 for both, a reject line for clearly poor clips rather than a selection. improved_mlp: half a point under
    the LAION-Aesthetics V2 5+ subset Stable Diffusion trained on and the 5.0 of Open-Sora's filtering example
    (Open-Sora calls 5.5 fair, 6.5 high). linear: LAION's V1 subsets were cut at 7 and 8 to select images for
    generation, far above a reject line, so 4.5 is taken just under the middle of its 0-10 rating scale."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    linear: float = Field(4.5, description="Threshold of the linear heads (LAION-Aesthetics V1).")
    improved_mlp: float = Field(4.5, description="Threshold of the improved MLP head (LAION-Aesthetics V2).")


class AestheticConfig(BaseModel):
    """LAION aesthetic score of every clip embedding. Skipped while `head` or embeddings.weights is null."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    head: str | None = Field(
        None, description="Local file of the head's state dict as published (`droplet models fetch "
        "aesthetic-b32-linear DIR`); it must match the CLIP backbone of embeddings. null: the stage is skipped."
    )
    kind: HeadKind = Field("linear", description="linear (ViT-B/32, B/16, L/14 heads) or improved_mlp (ViT-L/14).")
    thresholds: AestheticThresholds = AestheticThresholds()

    @property
    def threshold(self) -> float:
        """The threshold of the configured head kind."""
        return getattr(self.thresholds, self.kind)

    def local_paths(self) -> dict[str, dict[str, str | None]]:
        """`runtime.paths.require_local_paths` arguments: the head file, checked before a run starts."""
        return {"folders": {}, "files": {"aesthetic.head": self.head}}


def _build(kind: HeadKind, dim: int):  # noqa: ANN202 - a torch module
    import torch.nn as nn

    if kind == "linear":
        return nn.Linear(dim, 1)

    class ImprovedMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            w = (dim, *MLP_WIDTHS)
            self.layers = nn.Sequential(
                nn.Linear(w[0], w[1]), nn.Dropout(MLP_DROPOUT[0]), nn.Linear(w[1], w[2]), nn.Dropout(MLP_DROPOUT[1]),
                nn.Linear(w[2], w[3]), nn.Dropout(MLP_DROPOUT[2]), nn.Linear(w[3], w[4]), nn.Linear(w[4], w[5]))

        def forward(self, x):  # noqa: ANN001, ANN202
            return self.layers(x)

    return ImprovedMLP()


def _input_dim(kind: HeadKind, state: dict) -> int:
    key = "weight" if kind == "linear" else "layers.0.weight"
    if key not in state or getattr(state[key], "ndim", 0) != 2:
        expected = "weight, bias" if kind == "linear" else "layers.{0,2,4,6,7}.{weight,bias}"
        found = ", ".join(sorted(state))
        raise ValueError(f"not an aesthetic head of kind {kind}: expected the keys {expected}, found {found}")
    return int(state[key].shape[1])


class AestheticHead:
    """A published LAION aesthetic head, loaded once; scores L2-normalised CLIP embeddings."""

    def __init__(self, module, kind: HeadKind, dim: int, path: str | None = None) -> None:  # noqa: ANN001
        self.module = module.eval()
        self.kind = kind
        self.dim = dim
        self.path = path

    @classmethod
    def load(cls, path: str | Path, kind: HeadKind) -> AestheticHead:
        """The head at `path` (a torch state dict, or a .safetensors file of one); ValueError in one line when the
        file is not a head of that kind."""
        import torch

        path = Path(path)
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(str(path), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise FileNotFoundError(f"aesthetic.head {path}: no such file") from None
        except Exception as exc:  # noqa: BLE001 - unpickling and format errors of every kind become one line
            raise ValueError(f"aesthetic.head {path}: not a torch state dict ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"aesthetic.head {path}: not a state dict but a {type(state).__name__}")
        try:
            dim = _input_dim(kind, state)
            module = _build(kind, dim)
            module.load_state_dict(state, strict=True)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"aesthetic.head {path}: {str(exc).splitlines()[0]}") from None
        return cls(module.float(), kind, dim, str(path))

    def check_dim(self, dim: int, what: str = "the embeddings") -> None:
        """ValueError naming both sizes unless embeddings of size `dim` fit this head."""
        if dim != self.dim:
            fits = {512: "CLIP ViT-B/32 or B/16", 768: "CLIP ViT-L/14"}.get(self.dim, f"{self.dim}-dim CLIP")
            raise ValueError(f"aesthetic head {self.path or self.kind} takes {self.dim}-dim embeddings ({fits}); "
                             f"{what} have {dim}: use the head made for the configured CLIP model")

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Scores (float64 [n]) of embeddings [n, D], each L2-normalised first."""
        import torch

        matrix = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        self.check_dim(matrix.shape[1])
        matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        with torch.inference_mode():
            out = self.module(torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32)))
        return out[:, 0].double().numpy()

    def score(self, embedding: np.ndarray) -> float:
        """The aesthetic score of one embedding [D]."""
        return float(self.scores(np.asarray(embedding)[None, :])[0])
