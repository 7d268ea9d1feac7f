"""Named model sizes: `5b` (the released DropletVideo / CogVideoX-5B shapes) and `tiny` (tests and the demo)."""

from __future__ import annotations

from copy import deepcopy

PRESETS: dict[str, dict] = {
    "5b": {
        "transformer": {
            "num_attention_heads": 48, "attention_head_dim": 64, "num_layers": 42, "time_embed_dim": 512,
            "text_embed_dim": 4096, "in_channels": 33, "out_channels": 16, "sample_height": 60, "sample_width": 90,
            "sample_frames": 49, "max_text_seq_length": 400, "use_rotary_positional_embeddings": True,
        },
        "vae": {"scaling_factor": 0.7},
        "text_encoder": {
            "vocab_size": 32128, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64,
            "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32,
        },
    },
    "tiny": {
        "transformer": {
            "num_attention_heads": 2, "attention_head_dim": 32, "num_layers": 2, "time_embed_dim": 32,
            "text_embed_dim": 32, "in_channels": 16, "out_channels": 16, "sample_height": 8, "sample_width": 8,
            "sample_frames": 9, "max_text_seq_length": 32, "use_rotary_positional_embeddings": True,
        },
        "vae": {
            "block_out_channels": [8, 8, 16, 16], "layers_per_block": 1, "norm_num_groups": 4, "latent_channels": 16,
            "sample_height": 64, "sample_width": 64, "scaling_factor": 0.7,
        },
        "text_encoder": {
            "vocab_size": 320, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4,
            "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 8,
        },
    },
}


def preset(name: str, **transformer_overrides) -> dict:
    """A copy of a preset, with transformer keys overridden (for example in_channels=33 for image-to-video)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose from {sorted(PRESETS)}")
    config = deepcopy(PRESETS[name])
    config["transformer"].update(transformer_overrides)
    return config
