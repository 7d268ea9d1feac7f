"""DeepSpeed engine: the JSON in configs/ plus what our config owns (batch, AdamW, clipping, warmup).

AdamW takes the paper's values (lr 2e-5, weight decay 3e-2, eps 1e-10). Without a GPU, DeepSpeed's fused Adam
cannot build, so CPU runs use `torch_adam`. With optimizer offload, `torch_adam` would silently replace
DeepSpeed's CPU Adam by torch's slower AdamW, so that combination is refused.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from .config import TrainConfig
from .distributed import DistInfo

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]


def read_deepspeed_json(path: str) -> dict:
    file = Path(path)
    if not file.is_absolute() and not file.exists():
        file = REPO / path
    try:
        return json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"deepspeed config {path}: {exc}") from None


def deepspeed_config(config: TrainConfig, device: torch.device) -> dict:
    ds = read_deepspeed_json(config.deepspeed)
    o = config.optim
    ds["train_micro_batch_size_per_gpu"] = config.data.batch_size
    ds["gradient_accumulation_steps"] = config.train.gradient_accumulation
    ds.pop("train_batch_size", None)
    ds["gradient_clipping"] = o.grad_clip
    ds.setdefault("steps_per_print", 10**9)
    ds.setdefault("wall_clock_breakdown", False)
    optimizer = ds.setdefault("optimizer", {"type": "AdamW", "params": {}})
    params = optimizer.setdefault("params", {})
    params.update({"lr": o.lr, "weight_decay": o.weight_decay, "eps": o.eps, "betas": list(o.betas)})
    offload = ds.get("zero_optimization", {}).get("offload_optimizer", {}).get("device", "none") not in ("none", None)
    if offload and params.get("torch_adam"):
        raise ValueError("optimizer offload with torch_adam would run torch's AdamW instead of DeepSpeed's CPU Adam; "
                         "remove torch_adam from the DeepSpeed config")
    if device.type == "cpu" and not offload and "torch_adam" not in params:
        params["torch_adam"] = True
        log.info("CPU run: AdamW through torch (torch_adam), DeepSpeed's fused Adam needs a GPU")
    return ds


def warmup_lambda(warmup_steps: int):
    def factor(step: int) -> float:
        return min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0

    return factor


def build_engine(config: TrainConfig, transformer: torch.nn.Module, dist_info: DistInfo, output: Path):
    """deepspeed.initialize with our optimizer settings and a linear warmup to a constant lr."""
    import deepspeed

    ds = deepspeed_config(config, dist_info.device)
    output.mkdir(parents=True, exist_ok=True)
    if dist_info.rank == 0:
        (output / "deepspeed_config.json").write_text(json.dumps(ds, indent=2, sort_keys=True) + "\n")

    def scheduler(optimizer):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_lambda(config.optim.warmup_steps))

    params = [p for p in transformer.parameters() if p.requires_grad]
    engine, _, _, _ = deepspeed.initialize(model=transformer, model_parameters=params, config=ds,
                                           lr_scheduler=scheduler)
    return engine
