"""Model FLOPs of a training step, for MFU (model FLOPs utilisation): the same count in the trainer's
tensorboard and in the benchmarks."""

from __future__ import annotations

from torch import nn

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, per device


def _block_weights(model: nn.Module) -> tuple[int, int]:
    """Matmul weights of the transformer blocks, counted once per model: (applied to every token, applied once
    per sequence). The AdaLN projections (`norm1.linear`, `norm2.linear`) map the conditioning vector to the
    modulation, once per sequence; every other linear layer runs on each token. Biases and norms are not
    matmuls and are left out."""
    if not hasattr(model, "_flops_block_weights"):
        per_token = per_sequence = 0
        for name, module in model.transformer_blocks.named_modules():
            if isinstance(module, nn.Linear):
                if name.endswith(("norm1.linear", "norm2.linear")):
                    per_sequence += module.weight.numel()
                else:
                    per_token += module.weight.numel()
        model._flops_block_weights = (per_token, per_sequence)
    return model._flops_block_weights


def training_flops(model: nn.Module, tokens: int) -> float:
    """Forward + backward FLOPs (3x the forward's) for one sequence of `tokens` ([text; video]) through the
    transformer blocks: 2 x weights x tokens per forward for the token-wise matmuls, 2 x weights for the
    per-sequence AdaLN projections, and 4 x layers x tokens² x width for full attention (QKᵀ and AV). Gradient
    checkpointing's recomputation is not counted (model FLOPs, not hardware FLOPs)."""
    width = model.config.num_attention_heads * model.config.attention_head_dim
    per_token, per_sequence = _block_weights(model)
    forward = 2 * per_token * tokens + 2 * per_sequence + 4 * model.config.num_layers * tokens**2 * width
    return 3 * forward
