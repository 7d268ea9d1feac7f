"""Model FLOPs of a training step, for MFU (model FLOPs utilisation): the same count in the trainer's
tensorboard and in the benchmarks."""

from __future__ import annotations

from torch import nn

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, per device


def _block_params(model: nn.Module) -> int:
    """Parameters of the transformer blocks, counted once per model."""
    if not hasattr(model, "_flops_block_params"):
        model._flops_block_params = sum(p.numel() for p in model.transformer_blocks.parameters())
    return model._flops_block_params


def training_flops(model: nn.Module, tokens: int) -> float:
    """Forward + backward FLOPs for one sequence of `tokens` ([text; video]) through the transformer blocks:
    6 x parameters x tokens for the matmuls plus 12 x layers x tokens² x width for full attention. Gradient
    checkpointing's recomputation is not counted (model FLOPs, not hardware FLOPs)."""
    width = model.config.num_attention_heads * model.config.attention_head_dim
    return 6 * _block_params(model) * tokens + 12 * model.config.num_layers * tokens**2 * width
