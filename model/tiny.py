"""Tiny random models built offline from config: a T5 with a tokenizer made on the spot, a VAE, a transformer.

Tests and `make demo` use them; real weights always come from local folders (`DropletVideoPipeline.from_pretrained`).
"""

from __future__ import annotations

import re
import string
from pathlib import Path

import torch
from diffusers import AutoencoderKLCogVideoX
from transformers import T5Config, T5EncoderModel, T5Tokenizer

from .pipeline import DropletVideoPipeline
from .presets import preset
from .scheduler import make_scheduler
from .text import TextEncoder
from .transformer import DropletVideoTransformer3DModel

CORPUS = """The camera pans left across a quiet harbour while boats drift into the frame.
The camera pans right, tilts up and tilts down, zooms in and zooms out, dollies forward, rolls and stays still.
A person walks along the street; buildings, trees, cars and the sky enter from the edge of the frame and leave it.
The video is low quality, blurry, distortion. The video is of high quality, and the view is very clear. High quality,
masterpiece, best quality, highres, ultra-detailed, fantastic. Bright warm light, dark blue shadows, green grass.
"""


def make_tokenizer(vocab_size: int = 256, corpus: str = CORPUS) -> T5Tokenizer:
    """A real `T5Tokenizer` (unigram, metaspace, '</s>' appended) whose vocabulary is made from a few sentences.

    Whole words score higher than characters, so known words stay whole and any other text falls back to
    characters. Built from sorted sets, not trained, so every process makes the same tokenizer.
    """
    found = re.findall(r"[A-Za-z]+", corpus)
    words = sorted({"\u2581" + w for w in found} | {"\u2581" + w.lower() for w in found})
    chars = sorted(set(string.ascii_letters + string.digits + ".,;:'!?-") | {"\u2581"})
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [(w, -2.0) for w in words] + [(c, -8.0) for c in chars]
    if len(pieces) > vocab_size:
        raise ValueError(f"corpus gives {len(pieces)} pieces, more than vocab_size {vocab_size}")
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def build_tiny_pipeline(seed: int = 0, **transformer_overrides) -> DropletVideoPipeline:
    """Random tiny pipeline (16 input channels; pass in_channels=33 for the image-to-video layout)."""
    config = preset("tiny", **transformer_overrides)
    torch.manual_seed(seed)
    tokenizer = make_tokenizer(config["text_encoder"]["vocab_size"])
    t5 = T5EncoderModel(T5Config(**config["text_encoder"]))
    text = TextEncoder(t5, tokenizer, max_length=config["transformer"]["max_text_seq_length"])
    vae = AutoencoderKLCogVideoX(**config["vae"])
    transformer = DropletVideoTransformer3DModel(**config["transformer"])
    return DropletVideoPipeline(transformer=transformer, vae=vae.eval(), text=text, scheduler=make_scheduler())


def write_tiny_pipeline(folder: str | Path, seed: int = 0, **transformer_overrides) -> Path:
    """Build a tiny pipeline and save it as a diffusers-format folder."""
    pipe = build_tiny_pipeline(seed=seed, **transformer_overrides)
    pipe.save_pretrained(folder)
    return Path(folder)
