"""A tiny random Qwen2-VL / Qwen2.5-VL built offline from config, saved as a local model folder.

Tests, the caption bench and smoke runs load it exactly like real weights (AutoProcessor +
AutoModelForImageTextToText, or `transformers serve` with the folder as its model). Real architecture and
processor, random weights (its output is noise), and a byte-level BPE tokenizer trained here on a few
sentences with the special tokens the Qwen chat template and processor use. Same seed, same folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

ARCHITECTURES = ("qwen2_vl", "qwen2_5_vl")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>"]

# Qwen2-VL's published chat template (Qwen2.5-VL uses the same one).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = """The camera pans left across a quiet harbour while boats drift into the frame.
The camera pans right, tilts up and tilts down, zooms in and zooms out, trucks, pedestals, dollies and orbits.
A person walks along the street; buildings, trees, cars and the sky enter from the edge of the frame and leave it.
Describe this video clip in one paragraph: an overview sentence, a time-ordered account, and the mood.
"""

# Frames are resized to 56x56 .. 112x112 pixels: 4 to 16 visual tokens per image (28x28 pixels each).
PIXELS = {"shortest_edge": 56 * 56, "longest_edge": 112 * 112}


def train_tokenizer(vocab_size: int = 512, corpus: str = CORPUS):  # noqa: ANN201 - a PreTrainedTokenizerFast
    """A byte-level BPE tokenizer trained on `corpus` (deterministic), with the Qwen special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(corpus.splitlines(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>")


def tiny_config(arch: str, token_ids: dict[str, int], vocab_size: int):  # noqa: ANN201 - a PretrainedConfig
    """2 text layers of width 32 (2 heads of 16: mrope_section sums to 8), 1 vision block."""
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig

    text = {"vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0},
            "bos_token_id": token_ids["<|endoftext|>"], "eos_token_id": token_ids["<|im_end|>"],
            "pad_token_id": token_ids["<|endoftext|>"]}
    ids = {"image_token_id": token_ids["<|image_pad|>"], "video_token_id": token_ids["<|video_pad|>"],
           "vision_start_token_id": token_ids["<|vision_start|>"], "vision_end_token_id": token_ids["<|vision_end|>"]}
    if arch == "qwen2_vl":
        vision = {"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2, "patch_size": 14,
                  "spatial_merge_size": 2, "temporal_patch_size": 2}
        return Qwen2VLConfig(text_config=text, vision_config=vision, **ids)
    if arch == "qwen2_5_vl":
        vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 32,
                  "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 56,
                  "fullatt_block_indexes": [1]}
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)
    raise ValueError(f"unknown architecture {arch!r}: one of {', '.join(ARCHITECTURES)}")


def write_tiny_vlm(folder: str | Path, arch: Literal["qwen2_vl", "qwen2_5_vl"] = "qwen2_vl", seed: int = 0) -> Path:
    """Build the tiny model, its processor (image and video) and chat template; save them into `folder`."""
    import torch
    from transformers import AutoModelForImageTextToText

    tokenizer = train_tokenizer()
    token_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = tiny_config(arch, token_ids, len(tokenizer))
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config).eval()
    model.generation_config.eos_token_id = token_ids["<|im_end|>"]
    model.generation_config.pad_token_id = token_ids["<|endoftext|>"]
    processor = _processor(arch, tokenizer)
    folder = Path(folder)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _processor(arch: str, tokenizer):  # noqa: ANN001, ANN202
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    cls = Qwen2VLProcessor if arch == "qwen2_vl" else Qwen2_5_VLProcessor
    return cls(image_processor=Qwen2VLImageProcessor(size=PIXELS), tokenizer=tokenizer,
               video_processor=Qwen2VLVideoProcessor(size=PIXELS), chat_template=CHAT_TEMPLATE)
