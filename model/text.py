"""T5 text encoding: prompts -> [B, max_length, d_model] features, with the empty prompt's features cached."""

from __future__ import annotations

import torch
from transformers import AutoTokenizer, T5EncoderModel


class TextEncoder:
    """A T5 encoder and its tokenizer, both read from local folders; prompts padded/truncated to `max_length`."""

    def __init__(self, encoder: T5EncoderModel, tokenizer, max_length: int = 400) -> None:
        self.encoder = encoder.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self._empty: torch.Tensor | None = None

    @classmethod
    def from_folders(cls, encoder_dir, tokenizer_dir, max_length: int = 400, dtype: torch.dtype = torch.float32):
        encoder = T5EncoderModel.from_pretrained(encoder_dir, torch_dtype=dtype)
        return cls(encoder, AutoTokenizer.from_pretrained(tokenizer_dir), max_length)

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(prompts, padding="max_length", max_length=self.max_length, truncation=True,
                                add_special_tokens=True, return_tensors="pt")
        return self.encoder(tokens.input_ids.to(self.device))[0]

    def reset_cache(self) -> None:
        """Forget the empty prompt's features (after the encoder moved to another device or dtype)."""
        self._empty = None

    def empty(self, batch: int = 1) -> torch.Tensor:
        """Features of the empty prompt (caption dropout, unconditional branch), computed once."""
        if self._empty is None:
            self._empty = self.encode([""])
        return self._empty.expand(batch, -1, -1)
