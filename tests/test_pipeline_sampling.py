"""`DropletVideoPipeline` against the released DropletVideo inference (inference.py / pipeline.py / utils.py of
IEIT-AGI/DropletVideo) and against diffusers' CogVideoXPipeline: text length, prompts, defaults, reference noise,
image fit, model CPU offload, the sampling loop, the image-to-video conditioning. Tiny models, 1-2 steps."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import CogVideoXPipeline, CogVideoXTransformer3DModel
from PIL import Image

from model.conditioning import REFERENCE_NOISE_SIGMA, first_frame_mask, inpaint_conditioning, resize_image
from model.pipeline import (
    NEGATIVE_PROMPT,
    QUALITY_SUFFIX,
    DropletVideoPipeline,
    SampleSettings,
    default_text_tokens,
    with_quality_suffix,
)
from model.scheduler import make_scheduler
from model.tiny import build_tiny_pipeline, write_tiny_pipeline
from model.vae import decode_video
from model.weights import load_transformer

RELEASED_NEGATIVE = "The video is low quality, blurry, distortion. "
RELEASED_SUFFIX = ("The video is of high quality, and the view is very clear. High quality, masterpiece, best quality, "
                   "highres, ultra-detailed, fantastic.")


def record_encoder_inputs(pipe: DropletVideoPipeline) -> list[torch.Tensor]:
    """The token ids each T5 forward receives."""
    seen: list[torch.Tensor] = []
    pipe.text.encoder.register_forward_pre_hook(lambda _m, args, kwargs: seen.append(
        (args[0] if args else kwargs["input_ids"]).clone()), with_kwargs=True)
    return seen


def test_a_folder_whose_config_says_226_encodes_prompts_to_400_tokens(tmp_path: Path) -> None:
    write_tiny_pipeline(tmp_path / "ckpt", max_text_seq_length=226)
    assert json.loads((tmp_path / "ckpt" / "transformer" / "config.json").read_text())["max_text_seq_length"] == 226
    pipe = DropletVideoPipeline.from_pretrained(tmp_path / "ckpt")
    assert pipe.text.max_length == 400
    ids = record_encoder_inputs(pipe)
    text_lengths = []
    pipe.transformer.register_forward_pre_hook(lambda _m, args: text_lengths.append(args[1].shape[1]))
    pipe.sample_latents("The camera pans left.", settings=pipe.default_settings(steps=1), progress=False)
    assert [tuple(x.shape) for x in ids] == [(2, 400)]  # [negative; prompt], 400 tokens each
    assert text_lengths == [400]
    # the setting wins: at load time (--max-text-tokens) and per call
    assert DropletVideoPipeline.from_pretrained(tmp_path / "ckpt", max_text_tokens=64).text.max_length == 64
    pipe.sample_latents("x", settings=pipe.default_settings(steps=1, max_text_tokens=48), progress=False)
    assert tuple(ids[-1].shape) == (2, 48) and text_lengths[-1] == 48
    # a model with a sin-cos position table keeps its config's length
    assert default_text_tokens(SimpleNamespace(use_rotary_positional_embeddings=False, max_text_seq_length=226)) == 226
    assert default_text_tokens(SimpleNamespace(use_rotary_positional_embeddings=True, max_text_seq_length=226)) == 400


def test_a_500_word_prompt_warns_with_the_dropped_count(caplog) -> None:
    pipe = build_tiny_pipeline()
    prompt = " ".join(["camera"] * 500)  # a word of the tiny vocabulary: 500 tokens + </s>
    with caplog.at_level(logging.WARNING, logger="model.text"):
        features = pipe.encode_prompts(prompt, SampleSettings(max_text_tokens=400, quality_suffix=False), True)
    assert features.shape[:2] == (2, 400)
    assert "101 token(s) dropped" in caplog.text and caplog.text.count("prompt cut") == 1  # not the negative one
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="model.text"):  # the suffix (37 tokens) is what is cut first
        pipe.encode_prompts(prompt, SampleSettings(max_text_tokens=400), True)
    assert "138 token(s) dropped" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="model.text"):
        pipe.encode_prompts("The camera pans left.", SampleSettings(max_text_tokens=400), True)
    assert "prompt cut" not in caplog.text


def test_negative_prompt_and_quality_suffix_are_the_released_strings() -> None:
    assert NEGATIVE_PROMPT == RELEASED_NEGATIVE
    assert QUALITY_SUFFIX == RELEASED_SUFFIX
    assert with_quality_suffix("A harbour.") == "A harbour. " + RELEASED_SUFFIX  # inference.py: prompt + " " + ...
    pipe = build_tiny_pipeline()
    calls = []
    tokenizer = pipe.text.tokenizer
    pipe.text.tokenizer = lambda texts, **kw: calls.append(list(texts)) or tokenizer(texts, **kw)
    pipe.text.token_count = lambda text: 1
    pipe.encode_prompts("A harbour.", SampleSettings(), use_cfg=True)
    pipe.encode_prompts("A harbour.", SampleSettings(quality_suffix=False, negative_prompt="bad"), use_cfg=True)
    pipe.encode_prompts("A harbour.", SampleSettings(guidance_scale=1.0), use_cfg=False)
    assert calls == [[RELEASED_NEGATIVE, "A harbour. " + RELEASED_SUFFIX], ["bad", "A harbour."],
                     ["A harbour. " + RELEASED_SUFFIX]]


def test_defaults_are_the_released_scripts() -> None:
    s = SampleSettings()
    assert (s.num_frames, s.height, s.width, s.steps, s.guidance_scale, s.motion, s.seed) == \
        (85, 384, 672, 50, 6.0, 16.0, 42)
    assert (s.image_fit, s.quality_suffix, s.max_text_tokens, s.reference_noise) == ("stretch", True, None, None)
    five_b_grid = build_tiny_pipeline(sample_height=60, sample_width=90, sample_frames=49)  # 480x720, as 5B
    assert (lambda d: (d.num_frames, d.height, d.width))(five_b_grid.default_settings()) == (85, 384, 672)
    tiny = build_tiny_pipeline().default_settings(steps=2)  # configured at 64x64: its own size
    assert (tiny.num_frames, tiny.height, tiny.width, tiny.steps, tiny.guidance_scale) == (9, 64, 64, 2, 6.0)


def i2v_pipeline(tmp_path: Path, noise: bool) -> DropletVideoPipeline:
    folder = tmp_path / f"i2v-{noise}"
    write_tiny_pipeline(folder, in_channels=33, add_noise_in_inpaint_model=noise)
    return DropletVideoPipeline.from_pretrained(folder, max_text_tokens=16)


def vae_inputs(pipe: DropletVideoPipeline) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    encode = pipe.vae.encode
    pipe.vae.encode = lambda x, *a, **kw: seen.append(x.clone()) or encode(x, *a, **kw)
    return seen


def test_reference_noise_follows_the_transformer_config(tmp_path: Path) -> None:
    config = json.loads((write_tiny_pipeline(tmp_path / "k", add_noise_in_inpaint_model=True) / "transformer" /
                         "config.json").read_text())
    assert config["add_noise_in_inpaint_model"] is True
    assert load_transformer(tmp_path / "k" / "transformer").config.add_noise_in_inpaint_model is True

    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.integers(1, 255, (64, 64, 3), dtype=np.uint8))  # no pixel at -1 ...
    image[:8, :8] = 0  # ... but this black corner, which the released formula leaves alone
    pipe = i2v_pipeline(tmp_path, noise=True)
    settings = pipe.default_settings(steps=1)
    seen = vae_inputs(pipe)
    pipe.sample_latents("A red wall.", image=image, settings=settings, progress=False)
    clean = pipe.prepare_image(image, settings)
    (noisy,) = seen
    assert noisy.shape == clean.shape == (1, 3, 9, 64, 64)
    assert torch.equal(noisy[:, :, 1:], clean[:, :, 1:]) and bool((noisy[:, :, 1:] == -1).all())  # masked frames
    assert torch.equal(noisy[:, :, 0, :8, :8], clean[:, :, 0, :8, :8])  # black pixels: no noise
    diff = (noisy - clean)[:, :, 0]
    given = torch.ones_like(diff, dtype=torch.bool)
    given[:, :, :8, :8] = False
    diff = diff[given]
    assert diff.numel() == 3 * (64 * 64 - 64)
    assert REFERENCE_NOISE_SIGMA == 0.0563  # pipeline.py of the released code: noise_aug_strength = 0.0563
    assert diff.std().item() == pytest.approx(0.0563, rel=0.05)
    assert abs(diff.mean().item()) < 0.005

    pipe.sample_latents("A red wall.", image=image, settings=settings, progress=False)  # seeded: the same noise
    pipe.sample_latents("A red wall.", image=image, settings=pipe.default_settings(steps=1, seed=1), progress=False)
    assert torch.equal(seen[1], seen[0]) and not torch.equal(seen[2], seen[0])
    pipe.sample_latents("A red wall.", image=image, settings=pipe.default_settings(steps=1, reference_noise=0.0),
                        progress=False)
    assert torch.equal(seen[3], clean)

    plain = i2v_pipeline(tmp_path, noise=False)  # the key unset: clean pixels, as the released pipeline
    seen = vae_inputs(plain)
    plain.sample_latents("A red wall.", image=image, settings=settings, progress=False)
    assert torch.equal(seen[0], clean)


def test_image_fit_stretch_is_the_released_resize_and_cover_crops() -> None:
    image = np.random.default_rng(1).integers(0, 256, (40, 90, 3), dtype=np.uint8)
    stretched = resize_image(torch.from_numpy(image), 32, 48, fit="stretch")
    # utils.py of the released code: Image.resize([width, height]), then x / 255 * 2 - 1 (VaeImageProcessor)
    released = torch.from_numpy(np.array(Image.fromarray(image).resize([48, 32]))).permute(2, 0, 1) / 255 * 2 - 1
    assert stretched.shape == (3, 32, 48) and torch.allclose(stretched, released.float(), atol=1e-6)
    cover = resize_image(torch.from_numpy(image), 32, 48, fit="cover")
    assert cover.shape == (3, 32, 48) and (cover - stretched).abs().mean() > 0.05
    striped = np.zeros((32, 96, 3), dtype=np.uint8)
    striped[:, 72:] = 255  # the right quarter white: stretched, it stays; cover-cropped to 32x48, it is cut off
    assert resize_image(torch.from_numpy(striped), 32, 48, fit="stretch")[:, :, -4:].min() == 1.0
    assert resize_image(torch.from_numpy(striped), 32, 48, fit="cover")[:, :, -4:].max() <= -0.9
    with pytest.raises(ValueError, match="image_fit"):
        SampleSettings(image_fit="crop").check()


def test_model_cpu_offload_moves_each_model_only_while_it_runs(tmp_path: Path) -> None:
    """On the CPU the offload device is the CPU too, so the moves are observed, not measured: each model is moved
    to the device right before its first forward and back right after its last, in the order text encoder, VAE
    (reference), transformer, VAE (decode); the video is the one sampled without offload."""
    pipe = i2v_pipeline(tmp_path, noise=False)
    settings = pipe.default_settings(steps=2)
    image = torch.full((64, 64, 3), 128, dtype=torch.uint8)
    expected = pipe("A red wall.", image=image, settings=settings, progress=False)

    events: list[str] = []
    names = {"text": pipe.text.encoder, "vae": pipe.vae, "transformer": pipe.transformer}
    for name, module in names.items():
        original = module.to
        module.to = lambda *a, _name=name, _to=original, **kw: events.append(f"{_name}.to") or _to(*a, **kw)
    pipe.text.encoder.register_forward_pre_hook(lambda *_: events.append("text.run"))
    pipe.vae.encoder.register_forward_pre_hook(lambda *_: events.append("vae.run"))
    pipe.vae.decoder.register_forward_pre_hook(lambda *_: events.append("vae.run"))
    pipe.transformer.register_forward_pre_hook(lambda *_: events.append("transformer.run"))

    pipe.enable_model_cpu_offload("cpu")
    assert pipe.device == torch.device("cpu") and events == ["text.to", "vae.to", "transformer.to"]  # all home
    events.clear()
    video = pipe("A red wall.", image=image, settings=settings, progress=False)
    collapsed = [e for i, e in enumerate(events) if i == 0 or e != events[i - 1]]
    assert collapsed == ["text.to", "text.run", "text.to", "vae.to", "vae.run", "vae.to", "transformer.to",
                         "transformer.run", "transformer.to", "vae.to", "vae.run", "vae.to"]
    assert events.count("transformer.run") == 2  # one forward per step, CFG batched
    assert torch.equal(video, expected)
    pipe.to("cpu")
    assert pipe.offload_device is None


def randomised_twins(seed: int = 0):
    """Our tiny pipeline (every transformer weight random, the motion MLP's output layer zero) and diffusers'
    CogVideoXPipeline holding the same T5, tokenizer, VAE and transformer weights."""
    pipe = build_tiny_pipeline(seed=seed)
    with torch.no_grad():
        for p in pipe.transformer.parameters():  # default init zeroes AdaLN and output layers: make all matter
            p.normal_(0, 0.2)
        torch.nn.init.zeros_(pipe.transformer.fps_embedding.linear_2.weight)
        torch.nn.init.zeros_(pipe.transformer.fps_embedding.linear_2.bias)
    config = {k: v for k, v in pipe.transformer.config.items()
              if not k.startswith("_") and k != "add_noise_in_inpaint_model"}
    theirs = CogVideoXTransformer3DModel(**config).eval()
    theirs.load_state_dict({k: v for k, v in pipe.transformer.state_dict().items()
                            if not k.startswith("fps_embedding.")})
    reference = CogVideoXPipeline(tokenizer=pipe.text.tokenizer, text_encoder=pipe.text.encoder, vae=pipe.vae,
                                  transformer=theirs, scheduler=make_scheduler())
    reference.set_progress_bar_config(disable=True)
    return pipe, reference


def test_text_to_video_equals_diffusers_cogvideox_pipeline_with_motion_at_zero() -> None:
    """Same latents (the seed's CPU noise), same prompts (the released negative prompt and suffix, given to
    diffusers spelled out), 2 DDIM steps with CFG 6: CFG order, scheduler use and latent scaling agree."""
    pipe, reference = randomised_twins()
    prompt = "The camera pans left across a quiet harbour."
    settings = pipe.default_settings(steps=2, max_text_tokens=64)
    got = pipe.sample_latents(prompt, settings=settings, progress=False)

    def diffusers_latents(text: str, negative: str) -> torch.Tensor:
        return reference(prompt=text, negative_prompt=negative, num_frames=settings.num_frames,
                         height=settings.height, width=settings.width, num_inference_steps=2,
                         guidance_scale=settings.guidance_scale, generator=torch.Generator().manual_seed(42),
                         max_sequence_length=64, output_type="latent", return_dict=False)[0]

    expected = diffusers_latents(prompt + " " + RELEASED_SUFFIX, RELEASED_NEGATIVE)
    assert got.shape == expected.shape == (1, 3, 16, 8, 8)
    assert expected.std() > 0.1  # a real signal
    assert (got - expected).abs().max().item() <= 1e-5
    # the check can fail: the same latents from a pipeline told another negative prompt differ
    assert (got - diffusers_latents(prompt + " " + RELEASED_SUFFIX, "")).abs().max().item() > 1e-2
    # and decoding: uint8 frames against diffusers' [0, 1] frames (rounding only)
    ours = decode_video(pipe.vae, got)[0].float() / 255
    theirs = reference.video_processor.postprocess_video(reference.decode_latents(expected), output_type="pt")[0]
    assert (ours - theirs.permute(0, 2, 3, 1)).abs().max().item() <= 0.5 / 255 + 1e-4


def released_inpaint_latents(vae, image: torch.Tensor, generated: torch.Tensor, sigma: float) -> torch.Tensor:
    """The 17 conditioning channels as pipeline.py of the released code builds them, written out by hand:
    `masked_video = video * (mask < 0.5) - 1 * (mask > 0.5)`, noise where it is not -1, the VAE's mode times the
    scaling factor, and `resize_mask(1 - mask)` (first latent frame from pixel frame 0, the rest trilinear)."""
    frames = generated.shape[0]
    video = image[None, :, None].repeat(1, 1, frames, 1, 1)  # the image tiled over every frame
    mask = generated.float()[None, None, :, None, None].repeat(1, 1, 1, *image.shape[1:])
    masked = video * (mask < 0.5) + torch.ones_like(video) * (mask > 0.5) * -1
    if sigma:
        noise = torch.randn_like(masked) * sigma
        masked = masked + torch.where(masked == -1, torch.zeros_like(masked), noise)
    latents = vae.encode(masked).latent_dist.mode() * vae.config.scaling_factor  # [B, C, F', h, w]
    size = latents.shape[2:]
    first = F.interpolate((1 - mask)[:, :, :1], size=(1, *size[1:]), mode="trilinear", align_corners=False)
    rest = F.interpolate((1 - mask)[:, :, 1:], size=(size[0] - 1, *size[1:]), mode="trilinear", align_corners=False)
    mask_latents = torch.cat([first, rest], dim=2) * vae.config.scaling_factor
    return torch.cat([mask_latents, latents], dim=1).permute(0, 2, 1, 3, 4)


def test_image_to_video_conditioning_is_the_released_formula() -> None:
    """diffusers' CogVideoXImageToVideoPipeline cannot be the reference: it has 32 input channels (image latents
    padded with zeros, no mask channel, no -1 frames). So the released pipeline's formula is built by hand."""
    pipe = build_tiny_pipeline(in_channels=33)
    rng = np.random.default_rng(2)
    image = torch.from_numpy(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
    pixels = resize_image(image, 32, 48)
    video = torch.full((1, 3, 9, 32, 48), -1.0)
    video[:, :, 0] = pixels
    tiled = pixels[None, :, None].expand(1, 3, 9, 32, 48).clone()  # frames to generate: masked by the function
    for generated in (first_frame_mask(1, 9)[0], torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1.0])):
        ours = inpaint_conditioning(pipe.vae, tiled, generated[None], (1, 3, 16, 4, 6))
        expected = released_inpaint_latents(pipe.vae, pixels, generated, 0.0)
        assert ours.shape == expected.shape == (1, 3, 17, 4, 6)
        assert torch.allclose(ours, expected, atol=1e-5), (ours - expected).abs().max()
        assert ours[:, :, 1:].abs().mean() > 0.05
    torch.manual_seed(7)  # the released code draws from the global generator; ours from the one it is given
    expected = released_inpaint_latents(pipe.vae, pixels, first_frame_mask(1, 9)[0], REFERENCE_NOISE_SIGMA)
    ours = inpaint_conditioning(pipe.vae, video, first_frame_mask(1, 9), (1, 3, 16, 4, 6), REFERENCE_NOISE_SIGMA,
                                generator=torch.Generator().manual_seed(7))
    clean = inpaint_conditioning(pipe.vae, video, first_frame_mask(1, 9), (1, 3, 16, 4, 6))
    assert torch.allclose(ours, expected, atol=1e-5) and (ours - clean).abs().max() > 1e-3
