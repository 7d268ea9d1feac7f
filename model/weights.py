"""Loading transformer weights from a diffusers-format folder, with or without the motion embedding.

`from_pretrained` would leave weights that the checkpoint lacks uninitialised (or on the meta device). DropletVideo
adds `fps_embedding`, so CogVideoX(-Fun) weights need it created: `linear_1` random (an all-zero MLP never trains),
`linear_2` zero, so the model starts out exactly as the checkpoint it came from.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from .transformer import DropletVideoTransformer3DModel

log = logging.getLogger(__name__)

MOTION_PREFIX = "fps_embedding."
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors")
INDEX_NAMES = ("diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json")


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a diffusers model folder: one safetensors file, a sharded index, or a legacy .bin."""
    folder = Path(folder)
    for name in INDEX_NAMES:
        if (folder / name).exists():
            files = sorted(set(json.loads((folder / name).read_text())["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for file in files:
                state.update(load_file(folder / file))
            return state
    for name in WEIGHT_NAMES:
        if (folder / name).exists():
            return load_file(folder / name)
    legacy = folder / "diffusion_pytorch_model.bin"
    if legacy.exists():
        return torch.load(legacy, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"no transformer weights in {folder}")


def init_motion_embedding(model: DropletVideoTransformer3DModel, dtype: torch.dtype = torch.float32) -> None:
    """Fresh motion MLP: linear_1 with nn.Linear's default init, linear_2 zero (output unchanged at start)."""
    emb = model.fps_embedding
    emb.linear_1 = nn.Linear(emb.linear_1.in_features, emb.linear_1.out_features, dtype=dtype)
    emb.linear_2 = nn.Linear(emb.linear_2.in_features, emb.linear_2.out_features, dtype=dtype)
    nn.init.zeros_(emb.linear_2.weight)
    nn.init.zeros_(emb.linear_2.bias)


def load_transformer(folder: str | Path, dtype: torch.dtype = torch.float32) -> DropletVideoTransformer3DModel:
    """Build from `config.json` without allocating, then load the weights; create the motion MLP if missing."""
    folder = Path(folder)
    config = DropletVideoTransformer3DModel.load_config(folder)
    with torch.device("meta"):
        model = DropletVideoTransformer3DModel.from_config(config)
    state = {k: v.to(dtype) for k, v in read_state_dict(folder).items()}
    result = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in result.missing_keys if not k.startswith(MOTION_PREFIX)]
    if missing or result.unexpected_keys:
        raise ValueError(f"{folder}: weights do not match the config (missing {missing[:5]}, "
                         f"unexpected {result.unexpected_keys[:5]})")
    if result.missing_keys:
        init_motion_embedding(model, dtype)
        log.warning("%s has no motion embedding (fps_embedding): created it with linear_2 = 0, so the model starts "
                    "out as the checkpoint and learns M in training", folder)
    model.clear_position_cache()
    return model.eval()
