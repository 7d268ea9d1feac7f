"""Exponential moving average of the transformer's weights, optionally sharded across ranks.

An fp32 EMA of 5B parameters is 22 GB per GPU; sharded, each rank keeps 1/world of the tensors. bf16 halves it
again but rounds away updates smaller than 1/256 of a weight (decay 0.9999 moves a weight by 1e-4 of the
difference), so fp32 sharded is the default.
"""

from __future__ import annotations

import logging

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


class ShardedEMA:
    def __init__(self, model: nn.Module, decay: float, dtype: torch.dtype = torch.float32, sharded: bool = True,
                 rank: int = 0, world_size: int = 1) -> None:
        self.decay = decay
        self.rank, self.world_size = rank, world_size
        self.sharded = sharded and world_size > 1
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.owner = {n: (i % world_size if self.sharded else rank) for i, (n, _) in enumerate(named)}
        self.params = {n: p for n, p in named if self.owner[n] == rank}
        self.shadow = {n: p.detach().to(dtype).clone() for n, p in self.params.items()}
        if dtype == torch.bfloat16 and decay > 0.999:
            log.warning("bf16 EMA with decay %.4f: updates below bf16 resolution are lost", decay)

    @torch.no_grad()
    def update(self) -> None:
        for name, param in self.params.items():
            shadow = self.shadow[name]
            shadow.copy_(shadow.float().lerp_(param.detach().float(), 1.0 - self.decay))

    def state_dict(self) -> dict:
        return {"decay": self.decay, "shadow": {n: t.cpu() for n, t in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        for name, tensor in state["shadow"].items():
            self.shadow[name].copy_(tensor)

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        """Every EMA tensor, gathered on rank 0 (None elsewhere). Collective when sharded."""
        if not self.sharded:
            return {n: t.detach().cpu() for n, t in self.shadow.items()} if self.rank == 0 else None
        out = {}
        for name, owner in self.owner.items():
            tensor = self.shadow[name] if owner == self.rank else None
            box = [tensor.cpu() if tensor is not None else None]
            dist.broadcast_object_list(box, src=owner)
            if self.rank == 0:
                out[name] = box[0]
        return out if self.rank == 0 else None
