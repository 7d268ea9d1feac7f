"""DropletVideoTransformer3DModel: CogVideoX's MMDiT plus the motion-intensity embedding.

One sequence [text; video] goes through every block with full attention; text and video tokens get their own
AdaLN-Zero modulation (the paper's text/vision experts) and gates, and share the attention and MLP weights.
Parameter names are those of diffusers' `CogVideoXTransformer3DModel` plus `fps_embedding.*`, so released
diffusers-format weights load as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps, get_3d_sincos_pos_embed
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .rope import apply_rope, video_rope


class PatchEmbed(nn.Module):
    """2x2 patches of each latent frame -> tokens; T5 features -> tokens of the same width."""

    def __init__(self, patch_size: int, in_channels: int, dim: int, text_dim: int, bias: bool) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size, bias=bias)
        self.text_proj = nn.Linear(text_dim, dim)

    def forward(self, text: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, f = video.shape[:2]
        tokens = self.proj(video.flatten(0, 1))  # [B*F, D, h, w]
        tokens = tokens.flatten(2).transpose(1, 2).unflatten(0, (b, f)).flatten(1, 2)  # [B, F*h*w, D]
        return self.text_proj(text), tokens


class ModulatedNorm(nn.Module):
    """AdaLN-Zero for both streams: one projection of the conditioning gives shift/scale/gate for video and text."""

    def __init__(self, cond_dim: int, dim: int, affine: bool, eps: float) -> None:
        super().__init__()
        self.linear = nn.Linear(cond_dim, 6 * dim)
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=affine)

    def forward(self, video: torch.Tensor, text: torch.Tensor, cond: torch.Tensor):
        shift, scale, gate, t_shift, t_scale, t_gate = self.linear(F.silu(cond)).unsqueeze(1).chunk(6, dim=-1)
        video = self.norm(video) * (1 + scale) + shift
        text = self.norm(text) * (1 + t_scale) + t_shift
        return video, text, gate, t_gate


class JointAttention(nn.Module):
    """Full attention over [text; video] with QK-LayerNorm and RoPE on the video tokens (torch SDPA)."""

    def __init__(self, dim: int, heads: int, head_dim: int, bias: bool, out_bias: bool, qk_norm: bool) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=bias)
        self.to_k = nn.Linear(dim, inner, bias=bias)
        self.to_v = nn.Linear(dim, inner, bias=bias)
        self.norm_q = nn.LayerNorm(head_dim, eps=1e-6) if qk_norm else None
        self.norm_k = nn.LayerNorm(head_dim, eps=1e-6) if qk_norm else None
        self.to_out = nn.ModuleList([nn.Linear(inner, dim, bias=out_bias), nn.Dropout(0.0)])
        self.sdpa_backends: list[SDPBackend] | None = None

    def forward(self, x: torch.Tensor, text_len: int, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        b, s, _ = x.shape
        q, k, v = (proj(x).view(b, s, self.heads, -1).transpose(1, 2) for proj in (self.to_q, self.to_k, self.to_v))
        if self.norm_q is not None:
            q, k = self.norm_q(q), self.norm_k(k)
        if rope is not None:  # (cos, sin) cover the whole sequence: 1 and 0 on text tokens
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if self.sdpa_backends:
            with sdpa_kernel(self.sdpa_backends):
                out = F.scaled_dot_product_attention(q, k, v)
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out[0](out.transpose(1, 2).flatten(2))


class GeluTanhProj(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(nn.Module):
    """The 4x GELU-tanh MLP that text and video tokens share."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.ModuleList(
            [GeluTanhProj(dim, hidden), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class DropletVideoBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, cond_dim: int, dropout: float, attention_bias: bool,
                 affine: bool, eps: float) -> None:
        super().__init__()
        self.norm1 = ModulatedNorm(cond_dim, dim, affine, eps)
        self.attn1 = JointAttention(dim, heads, head_dim, bias=attention_bias, out_bias=True, qk_norm=True)
        self.norm2 = ModulatedNorm(cond_dim, dim, affine, eps)
        self.ff = FeedForward(dim, 4 * dim, dropout)

    def forward(self, video: torch.Tensor, text: torch.Tensor, cond: torch.Tensor, rope=None):
        text_len = text.shape[1]
        n_video, n_text, gate, t_gate = self.norm1(video, text, cond)
        attn = self.attn1(torch.cat([n_text, n_video], dim=1), text_len, rope)
        video = video + gate * attn[:, text_len:]
        text = text + t_gate * attn[:, :text_len]
        n_video, n_text, gate, t_gate = self.norm2(video, text, cond)
        ff = self.ff(torch.cat([n_text, n_video], dim=1))
        return video + gate * ff[:, text_len:], text + t_gate * ff[:, :text_len]


class FinalNorm(nn.Module):
    """AdaLN before the output projection (shift first, then scale, as CogVideoX orders them)."""

    def __init__(self, cond_dim: int, dim: int, affine: bool, eps: float) -> None:
        super().__init__()
        self.linear = nn.Linear(cond_dim, 2 * dim)
        self.norm = nn.LayerNorm(dim, eps, affine)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale = self.linear(F.silu(cond)).unsqueeze(1).chunk(2, dim=-1)
        return self.norm(x) * (1 + scale) + shift


class DropletVideoTransformer3DModel(ModelMixin, ConfigMixin):
    """[B, F, C, H, W] latents + [B, L, text_dim] T5 features + timestep (+ motion M) -> [B, F, C_out, H, W].

    The config keys are diffusers' `CogVideoXTransformer3DModel` keys (CogVideoX 1.0 layout: 2D patches, no `ofs`),
    plus the released DropletVideo config's `add_noise_in_inpaint_model`.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["DropletVideoBlock"]

    @register_to_config
    def __init__(
        self,
        num_attention_heads: int = 48,
        attention_head_dim: int = 64,
        in_channels: int = 16,
        out_channels: int | None = 16,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        time_embed_dim: int = 512,
        ofs_embed_dim: int | None = None,
        text_embed_dim: int = 4096,
        num_layers: int = 42,
        dropout: float = 0.0,
        attention_bias: bool = True,
        sample_width: int = 90,
        sample_height: int = 60,
        sample_frames: int = 49,
        patch_size: int = 2,
        patch_size_t: int | None = None,
        temporal_compression_ratio: int = 4,
        max_text_seq_length: int = 226,
        activation_fn: str = "gelu-approximate",
        timestep_activation_fn: str = "silu",
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
        spatial_interpolation_scale: float = 1.875,
        temporal_interpolation_scale: float = 1.0,
        use_rotary_positional_embeddings: bool = True,
        use_learned_positional_embeddings: bool = False,
        patch_bias: bool = True,
        add_noise_in_inpaint_model: bool = False,
    ) -> None:
        # `add_noise_in_inpaint_model` (a key of the released config, transformer.py of IEIT-AGI/DropletVideo) is
        # registered so that it loads and saves; the pipeline reads it (noise on image-to-video reference pixels).
        super().__init__()
        if patch_size_t is not None or ofs_embed_dim or use_learned_positional_embeddings:
            raise ValueError("only the CogVideoX 1.0 layout (2D patches, no ofs, no learned positions) is supported")
        if activation_fn != "gelu-approximate":
            raise ValueError(f"activation_fn {activation_fn!r}: only 'gelu-approximate' is supported")
        dim = num_attention_heads * attention_head_dim
        self.patch_embed = PatchEmbed(patch_size, in_channels, dim, text_embed_dim, patch_bias)
        self.embedding_dropout = nn.Dropout(dropout)
        self.time_proj = Timesteps(dim, flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(dim, time_embed_dim, timestep_activation_fn)
        self.fps_proj = Timesteps(dim, flip_sin_to_cos, freq_shift)
        self.fps_embedding = TimestepEmbedding(dim, time_embed_dim, timestep_activation_fn)
        self.transformer_blocks = nn.ModuleList(
            DropletVideoBlock(dim, num_attention_heads, attention_head_dim, time_embed_dim, dropout, attention_bias,
                              norm_elementwise_affine, norm_eps)
            for _ in range(num_layers)
        )
        self.norm_final = nn.LayerNorm(dim, norm_eps, norm_elementwise_affine)
        self.norm_out = FinalNorm(time_embed_dim, dim, norm_elementwise_affine, norm_eps)
        self.proj_out = nn.Linear(dim, patch_size * patch_size * (out_channels or in_channels))
        self.gradient_checkpointing = False
        self._position_cache: dict = {}
        self._rope_cache_key: tuple | None = None
        self._rope_full: tuple[torch.Tensor, torch.Tensor] | None = None

    def conditioning(self, timestep: torch.Tensor, motion: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        """Timestep embedding, plus the motion-intensity embedding when M is given."""
        emb = self.time_embedding(self.time_proj(timestep).to(dtype))
        if motion is not None:
            emb = emb + self.fps_embedding(self.fps_proj(motion).to(dtype))
        return emb

    def positions(self, frames: int, grid_h: int, grid_w: int, device: torch.device):
        """RoPE (cos, sin) or the sin-cos table added to video tokens, cached per latent shape."""
        key = (frames, grid_h, grid_w, device)
        if key not in self._position_cache:
            cfg = self.config
            p = cfg.patch_size
            if cfg.use_rotary_positional_embeddings:
                value = video_rope(cfg.attention_head_dim, frames, grid_h, grid_w, cfg.sample_height // p,
                                   cfg.sample_width // p, device=device)
            else:
                table = get_3d_sincos_pos_embed(
                    self.inner_dim, (grid_w, grid_h), frames, cfg.spatial_interpolation_scale,
                    cfg.temporal_interpolation_scale, device=device, output_type="pt",
                )
                value = table.flatten(0, 1)[None]
            self._position_cache = {key: value}  # one shape at a time: training buckets change it rarely
        return self._position_cache[key]

    def clear_position_cache(self) -> None:
        """Forget the cached position tables (RoPE / sin-cos, and RoPE extended to the text tokens)."""
        self._position_cache = {}
        self._rope_cache_key = None
        self._rope_full = None

    def rope_with_text(self, rope: tuple[torch.Tensor, torch.Tensor], text_len: int, key: tuple | None = None):
        """Extend video (cos, sin) to [text; video] with the identity rotation on text tokens (cached by key)."""
        if key is None or self._rope_cache_key != key:
            cos, sin = rope
            ones = cos.new_ones(text_len, cos.shape[1])
            self._rope_full = (torch.cat([ones, cos]), torch.cat([ones * 0, sin]))
            self._rope_cache_key = key
        return self._rope_full

    def set_sdpa_backends(self, names: list[str] | None) -> None:
        """Restrict torch SDPA to these kernels, in order of preference (e.g. ["cudnn", "flash"] on Hopper)."""
        backends = None
        if names:
            table = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
                     "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}
            unknown = sorted(set(names) - set(table))
            if unknown:
                raise ValueError(f"unknown SDPA backend(s) {unknown}; choose from {sorted(table)}")
            backends = [table[n] for n in names]
        for block in self.transformer_blocks:
            block.attn1.sdpa_backends = backends

    def compile_blocks(self, **kwargs) -> None:
        """torch.compile each block (fuses norms, modulation, RoPE and gates around the matmuls)."""
        for block in self.transformer_blocks:
            block.compile(**kwargs)

    @property
    def inner_dim(self) -> int:
        return self.config.num_attention_heads * self.config.attention_head_dim

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        timestep: torch.Tensor | float,
        motion: torch.Tensor | float | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        return_dict: bool = True,
    ):
        b, frames, _, height, width = hidden_states.shape
        device, dtype = hidden_states.device, hidden_states.dtype
        timestep = torch.as_tensor(timestep, device=device).reshape(-1).expand(b)
        if motion is not None:
            motion = torch.as_tensor(motion, device=device, dtype=torch.float32).reshape(-1).expand(b)
        cond = self.conditioning(timestep, motion, dtype)

        p = self.config.patch_size
        text, video = self.patch_embed(encoder_hidden_states, hidden_states)
        positions, key = image_rotary_emb, None
        if positions is None:
            positions = self.positions(frames, height // p, width // p, device)
            key = (frames, height // p, width // p, device, text.shape[1])
        rope = None
        if self.config.use_rotary_positional_embeddings:
            rope = self.rope_with_text(positions, text.shape[1], key)
        else:
            video = video + positions.to(dtype)
        text, video = self.embedding_dropout(text), self.embedding_dropout(video)

        for block in self.transformer_blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                video, text = self._gradient_checkpointing_func(block, video, text, cond, rope)
            else:
                video, text = block(video, text, cond, rope)

        video = self.proj_out(self.norm_out(self.norm_final(video), cond))
        out = video.reshape(b, frames, height // p, width // p, -1, p, p)
        out = out.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
        if not return_dict:
            return (out,)
        return Transformer2DModelOutput(sample=out)
