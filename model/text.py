"""T5 text encoding: prompts -> [B, max_length, d_model] features, with the empty prompt's features cached."""

from __future__ import annotations

import logging

import torch
from transformers import AutoTokenizer, T5EncoderModel

log = logging.getLogger(__name__)


class TextEncoder:
    """A T5 encoder and its tokenizer, both read from local folders; prompts padded/truncated to `max_length`."""

    def __init__(self, encoder: T5EncoderModel, tokenizer, max_length: int = 400) -> None:
        self.encoder = encoder.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self._empty: torch.Tensor | None = None

    @classmethod
    def from_folders(cls, encoder_dir, tokenizer_dir, max_length: int = 400, dtype: torch.dtype = torch.float32):
        """The encoder's safetensors weights (a pickled .bin is refused) and its tokenizer."""
        encoder = T5EncoderModel.from_pretrained(encoder_dir, torch_dtype=dtype, use_safetensors=True)
        return cls(encoder, AutoTokenizer.from_pretrained(tokenizer_dir), max_length)

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    def token_count(self, prompt: str) -> int:
        """Tokens of `prompt` with nothing cut (the closing </s> included), as the encoder would see them."""
        return len(self.tokenizer(prompt, add_special_tokens=True, truncation=False).input_ids)

    def warn_if_truncated(self, prompts: list[str], max_length: int) -> list[int]:
        """Log a warning for every prompt longer than `max_length` tokens; returns the tokens dropped per prompt."""
        dropped = [max(0, self.token_count(p) - max_length) for p in prompts]
        for prompt, n in zip(prompts, dropped, strict=True):
            if n:
                log.warning("prompt cut to %d T5 tokens: %d token(s) dropped from its end (%d in all): %r", max_length,
                            n, n + max_length, prompt if len(prompt) <= 120 else prompt[:60] + " ... " + prompt[-60:])
        return dropped

    @torch.no_grad()
    def encode(self, prompts: list[str], max_length: int | None = None, warn: bool = False) -> torch.Tensor:
        """Features [B, max_length, d_model]: padded to `max_length` (default: this encoder's), cut when longer
        (with a warning per cut prompt when `warn`)."""
        max_length = max_length or self.max_length
        if warn:
            self.warn_if_truncated(prompts, max_length)
        tokens = self.tokenizer(prompts, padding="max_length", max_length=max_length, truncation=True,
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
