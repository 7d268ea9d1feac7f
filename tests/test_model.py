"""The DropletVideo model side: equality with diffusers' CogVideoX, motion M, weights, conditioning, sampling."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch
from conftest import PYTHON, REPO, run_droplet
from diffusers import AutoencoderKLCogVideoX, CogVideoXPipeline, CogVideoXTransformer3DModel

from model.conditioning import first_frame_mask, inpaint_conditioning, latent_frame_mask
from model.pipeline import DropletVideoPipeline
from model.rope import video_rope
from model.scheduler import make_scheduler
from model.tiny import build_tiny_pipeline, write_tiny_pipeline
from model.transformer import DropletVideoTransformer3DModel
from model.vae import encode_pixels
from model.weights import load_transformer

SMALL = dict(num_attention_heads=2, attention_head_dim=32, in_channels=4, out_channels=4, time_embed_dim=32,
             text_embed_dim=24, num_layers=2, sample_width=8, sample_height=6, sample_frames=9,
             max_text_seq_length=7)


def diffusers_twin(rope: bool, seed: int = 0) -> tuple[DropletVideoTransformer3DModel, CogVideoXTransformer3DModel]:
    """Our model and diffusers' holding the same (non-trivial) weights, our motion MLP's output layer at zero."""
    torch.manual_seed(seed)
    cfg = {**SMALL, "use_rotary_positional_embeddings": rope}
    theirs = CogVideoXTransformer3DModel(**cfg).eval()
    with torch.no_grad():
        for p in theirs.parameters():  # default init zeroes AdaLN and output layers: make every weight matter
            p.normal_(0, 0.2)
    ours = DropletVideoTransformer3DModel(**cfg).eval()
    result = ours.load_state_dict(theirs.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == sorted(k for k in ours.state_dict() if k.startswith("fps_embedding."))
    torch.nn.init.zeros_(ours.fps_embedding.linear_2.weight)
    torch.nn.init.zeros_(ours.fps_embedding.linear_2.bias)
    return ours, theirs


def diffusers_rope(frames: int, height: int, width: int, cfg: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotary embedding exactly as diffusers' CogVideoX pipeline prepares it (its own method)."""
    fake = SimpleNamespace(vae_scale_factor_spatial=8, transformer=SimpleNamespace(config=SimpleNamespace(
        patch_size=2, patch_size_t=None, sample_width=cfg["sample_width"], sample_height=cfg["sample_height"],
        attention_head_dim=cfg["attention_head_dim"])))
    return CogVideoXPipeline._prepare_rotary_positional_embeddings(fake, height * 8, width * 8, frames, "cpu")


@pytest.mark.parametrize("rope", [True, False], ids=["rope", "sincos"])
@pytest.mark.parametrize("shape", [(3, 6, 8), (2, 10, 6)], ids=["base-grid", "other-grid"])
def test_equals_diffusers_cogvideox(rope: bool, shape: tuple[int, int, int]) -> None:
    ours, theirs = diffusers_twin(rope)
    frames, h, w = shape
    x = torch.randn(2, frames, 4, h, w)
    text = torch.randn(2, 7, 24)
    t = torch.tensor([10, 700])
    emb = diffusers_rope(frames, h, w, SMALL) if rope else None
    with torch.no_grad():
        expected = theirs(x, text, t, image_rotary_emb=emb).sample
        got = ours(x, text, t, motion=torch.tensor([8.0, 2.5])).sample  # RoPE built inside, M embedded as zero
    assert got.shape == expected.shape == x.shape
    assert (got - expected).abs().max().item() <= 1e-5
    assert expected.abs().mean() > 0.1  # a real signal, not zeros matching zeros
    if rope:  # positions passed in, as diffusers' pipelines do, give the same
        with torch.no_grad():
            passed = ours(x, text, t, motion=torch.tensor([8.0, 2.5]), image_rotary_emb=emb).sample
        assert (passed - expected).abs().max().item() <= 1e-5


def test_rope_matches_diffusers_pipeline_on_non_base_grids() -> None:
    cfg = {**SMALL, "sample_width": 90, "sample_height": 60, "attention_head_dim": 64}
    for frames, h, w in [(13, 60, 90), (13, 48, 84), (4, 112, 64)]:
        cos, sin = diffusers_rope(frames, h, w, cfg)
        our_cos, our_sin = video_rope(64, frames, h // 2, w // 2, 30, 45)
        assert torch.equal(cos, our_cos) and torch.equal(sin, our_sin)


def test_motion_changes_the_output_and_none_means_no_motion() -> None:
    ours, _ = diffusers_twin(rope=True)
    with torch.no_grad():
        torch.nn.init.normal_(ours.fps_embedding.linear_2.weight, std=0.2)
        x, text = torch.randn(1, 3, 4, 6, 8), torch.randn(1, 7, 24)
        outputs = [ours(x, text, 500, motion=m).sample for m in (2.0, 8.0, 8.0)]
    assert (outputs[0] - outputs[1]).abs().max() > 1e-3
    assert torch.equal(outputs[1], outputs[2])


def test_save_load_round_trip_is_bit_exact(tmp_path: Path) -> None:
    ours, _ = diffusers_twin(rope=True)
    torch.nn.init.normal_(ours.fps_embedding.linear_2.weight, std=0.1)
    ours.save_pretrained(tmp_path / "transformer")
    assert (tmp_path / "transformer" / "diffusion_pytorch_model.safetensors").exists()
    loaded = load_transformer(tmp_path / "transformer")
    for key, value in ours.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    x, text = torch.randn(1, 3, 4, 6, 8), torch.randn(1, 7, 24)
    with torch.no_grad():
        assert torch.equal(ours(x, text, 10, motion=4.0).sample, loaded(x, text, 10, motion=4.0).sample)
    again = DropletVideoTransformer3DModel.from_pretrained(tmp_path / "transformer")  # plain diffusers API too
    assert torch.equal(again.fps_embedding.linear_2.weight, ours.fps_embedding.linear_2.weight)


def test_weights_without_motion_keys_get_a_fresh_motion_mlp(tmp_path: Path, caplog) -> None:
    _, theirs = diffusers_twin(rope=True)
    theirs.save_pretrained(tmp_path / "cogvideox")  # a CogVideoX(-Fun) checkpoint: no fps_embedding
    config = json.loads((tmp_path / "cogvideox" / "config.json").read_text())
    assert config["_class_name"] == "CogVideoXTransformer3DModel"
    with caplog.at_level(logging.WARNING):
        loaded = load_transformer(tmp_path / "cogvideox")
    assert "no motion embedding" in caplog.text
    emb = loaded.fps_embedding
    assert torch.count_nonzero(emb.linear_2.weight) == 0 and torch.count_nonzero(emb.linear_2.bias) == 0
    assert emb.linear_1.weight.std() > 1e-3 and not emb.linear_1.weight.is_meta  # random, trainable
    assert all(not p.is_meta for p in loaded.parameters())
    x, text = torch.randn(1, 3, 4, 6, 8), torch.randn(1, 7, 24)
    with torch.no_grad():
        expected = theirs(x, text, torch.tensor([30]), image_rotary_emb=diffusers_rope(3, 6, 8, SMALL)).sample
        got = loaded(x, text, 30, motion=6.0).sample
    assert (got - expected).abs().max() <= 1e-5
    # and M trains: a gradient reaches linear_1 through linear_2 after one step on linear_2
    loaded.train()
    loaded(x, text, 30, motion=6.0).sample.square().mean().backward()
    assert emb.linear_2.weight.grad.abs().sum() > 0


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    ours, _ = diffusers_twin(rope=True)
    x, text = torch.randn(1, 3, 4, 6, 8), torch.randn(1, 7, 24)
    grads = []
    for checkpointing in (False, True):
        ours.zero_grad()
        (ours.enable_gradient_checkpointing if checkpointing else ours.disable_gradient_checkpointing)()
        ours.train()
        ours(x, text, 100, motion=3.0).sample.square().mean().backward()
        grads.append(ours.transformer_blocks[0].attn1.to_q.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_scheduler_is_cogvideox_5b_not_the_diffusers_default() -> None:
    cfg = make_scheduler().config
    assert cfg.prediction_type == "v_prediction" and cfg.rescale_betas_zero_snr and cfg.set_alpha_to_one
    assert cfg.timestep_spacing == "trailing" and cfg.beta_schedule == "scaled_linear" and not cfg.clip_sample
    assert (cfg.beta_start, cfg.beta_end, cfg.snr_shift_scale) == (0.00085, 0.012, 1.0)
    scheduler = make_scheduler()
    scheduler.set_timesteps(50)
    assert scheduler.timesteps[0] == 999 and scheduler.alphas_cumprod[-1] < 1e-6  # trailing, zero terminal SNR


def test_latent_frame_mask_follows_the_causal_vae() -> None:
    mask = first_frame_mask(1, 9)
    assert latent_frame_mask(mask).tolist() == [[0.0, 1.0, 1.0]]
    given_first_five = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1, 1]], dtype=torch.float32)
    assert latent_frame_mask(given_first_five).tolist() == [[0.0, 0.0, 1.0]]
    one_generated = torch.tensor([[0, 0, 0, 1, 0, 0, 0, 0, 0]], dtype=torch.float32)
    assert latent_frame_mask(one_generated).tolist() == [[0.0, 1.0, 0.0]]


def test_inpaint_conditioning_channels() -> None:
    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(block_out_channels=[8, 8, 16, 16], layers_per_block=1, norm_num_groups=4,
                                 scaling_factor=0.7).eval()
    pixels = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    shape = (1, 3, 16, 4, 4)
    cond = inpaint_conditioning(vae, pixels, first_frame_mask(1, 9), shape)
    assert cond.shape == (1, 3, 17, 4, 4)
    assert torch.allclose(cond[:, 0, 0], torch.tensor(0.7)) and torch.all(cond[:, 1:, 0] == 0)
    masked = pixels.clone()
    masked[:, :, 1:] = -1
    assert torch.allclose(cond[:, :, 1:], encode_pixels(vae, masked))  # encode() already scales by 0.7
    unscaled = vae.encode(masked).latent_dist.mode().permute(0, 2, 1, 3, 4)
    assert torch.allclose(encode_pixels(vae, masked), unscaled * 0.7)
    t2v = inpaint_conditioning(vae, None, torch.ones(1, 9), shape)
    assert t2v.shape == (1, 3, 17, 4, 4) and torch.count_nonzero(t2v) == 0
    noisy = inpaint_conditioning(vae, pixels, first_frame_mask(1, 9), shape, reference_noise_sigma=0.0563,
                                 generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(noisy[:, :, 1:], cond[:, :, 1:]) and torch.equal(noisy[:, :, :1], cond[:, :, :1])
    mixed = torch.stack([first_frame_mask(1, 9)[0], torch.ones(9)])  # precomputed: reference latents given
    stored = cond[:, :, 1:].expand(2, -1, -1, -1, -1)
    from_latents = inpaint_conditioning(vae, None, mixed, (2, *shape[1:]), reference_latents=stored)
    assert torch.equal(from_latents[:1], cond) and torch.count_nonzero(from_latents[1]) == 0
    with pytest.raises(ValueError, match="do not match"):
        inpaint_conditioning(vae, None, mixed, (2, 3, 16, 8, 8), reference_latents=stored)


def test_caches_are_reset_through_their_owners() -> None:
    pipe = build_tiny_pipeline()
    empty = pipe.text.empty()
    assert pipe.text._empty is not None
    pipe.text.reset_cache()
    assert pipe.text._empty is None and torch.equal(pipe.text.empty(), empty)
    transformer = pipe.transformer
    positions = transformer.positions(3, 4, 4, torch.device("cpu"))
    assert transformer.positions(3, 4, 4, torch.device("cpu")) is positions
    transformer.clear_position_cache()
    assert transformer._position_cache == {} and transformer._rope_full is None
    assert transformer.positions(3, 4, 4, torch.device("cpu")) is not positions


def test_tiny_pipeline_samples_text_to_video_and_image_to_video(tmp_path: Path) -> None:
    write_tiny_pipeline(tmp_path / "t2v")
    write_tiny_pipeline(tmp_path / "i2v", in_channels=33)
    index = json.loads((tmp_path / "t2v" / "model_index.json").read_text())
    assert {"transformer", "vae", "text_encoder", "tokenizer", "scheduler"} <= set(index)
    for name in ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tmp_path / "t2v" / name).is_dir()

    t2v = DropletVideoPipeline.from_pretrained(tmp_path / "t2v", max_text_tokens=32)  # (400 by default: slower)
    settings = t2v.default_settings(steps=2, motion=4.0)
    assert (settings.num_frames, settings.height, settings.width) == (9, 64, 64)
    video = t2v("The camera pans left across a harbour.", settings=settings, progress=False)
    assert video.shape == (9, 64, 64, 3) and video.dtype == torch.uint8
    assert torch.equal(video, t2v("The camera pans left across a harbour.", settings=settings, progress=False))
    other = t2v("The camera pans left across a harbour.", settings=t2v.default_settings(steps=2, motion=4.0, seed=1),
                progress=False)
    assert not torch.equal(video, other)
    with pytest.raises(ValueError, match="image-to-video"):
        t2v("x", image=torch.zeros(64, 64, 3, dtype=torch.uint8), settings=settings)

    i2v = DropletVideoPipeline.from_pretrained(tmp_path / "i2v", max_text_tokens=32)
    assert i2v.inpaint
    red = torch.zeros(40, 90, 3, dtype=torch.uint8)
    red[..., 0] = 255
    a = i2v("A red wall.", image=red, settings=settings, progress=False)
    b = i2v("A red wall.", image=torch.zeros(40, 90, 3, dtype=torch.uint8), settings=settings, progress=False)
    c = i2v("A red wall.", settings=settings, progress=False)  # text-to-video with the inpaint layout
    assert a.shape == b.shape == c.shape == (9, 64, 64, 3)
    assert not torch.equal(a, b)  # the image reaches the model


def test_build_tiny_pipeline_is_seeded() -> None:
    a, b = build_tiny_pipeline(seed=3), build_tiny_pipeline(seed=3)
    for (key, x), y in zip(a.transformer.state_dict().items(), b.transformer.state_dict().values(), strict=True):
        assert torch.equal(x, y), key
    ids = a.text.tokenizer("The camera pans left.").input_ids
    assert ids[-1] == a.text.tokenizer.eos_token_id and a.text.tokenizer.unk_token_id not in ids


def test_droplet_sample_writes_an_mp4_at_8_fps_or_at_motion_fps(tmp_path: Path) -> None:
    result = run_droplet(["init-model", str(tmp_path / "ckpt"), "--image-to-video", "--add-noise-in-inpaint-model"])
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads((tmp_path / "ckpt" / "transformer" / "config.json").read_text())
    assert config["add_noise_in_inpaint_model"] is True and config["in_channels"] == 33
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((48, 80, 3)) * 255).astype("uint8")).save(tmp_path / "img.png")
    runs = {"released.mp4": [], "motion.mp4": ["--fps-from-motion", "--image-fit", "cover", "--no-quality-suffix",
                                               "--max-text-tokens", "64", "--no-cpu-offload"]}
    for name, extra in runs.items():
        result = run_droplet(["sample", "--checkpoint", str(tmp_path / "ckpt"), "--prompt", "The camera tilts up.",
                              "--motion", "12", "--image", str(tmp_path / "img.png"), "--steps", "2",
                              "--out", str(tmp_path / name), *extra])
        assert result.returncode == 0, result.stderr[-2000:]
        assert "fp32" in result.stdout and "seed 42" in result.stdout and "CFG 6," in result.stdout  # CPU: auto fp32
    for name, fps in (("released.mp4", 8.0), ("motion.mp4", 12.0)):  # the released script writes at 8 fps
        with av.open(str(tmp_path / name)) as container:
            stream = container.streams.video[0]
            frames = [f for f in container.decode(stream)]
            assert (len(frames), stream.width, stream.height) == (9, 64, 64)
            assert float(stream.average_rate) == pytest.approx(fps)
    bad = run_droplet(["sample", "--checkpoint", str(tmp_path / "ckpt"), "--prompt", "x", "--frames", "10",
                       "--out", str(tmp_path / "bad.mp4")])
    assert bad.returncode == 2 and "4k+1" in bad.stderr


def test_model_imports_without_opencv_onnx_vllm_or_the_data_side() -> None:
    code = ("import sys, model.pipeline, model.tiny, model.weights, model.conditioning; "
            "bad = [m for m in ('cv2', 'onnxruntime', 'vllm', 'curation', 'captioning', 'shards', 'ray') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_cogvideox_style_sentencepiece_tokenizer_folder_loads(tmp_path: Path) -> None:
    """Released CogVideoX folders ship `tokenizer/` as spiece.model + tokenizer_config.json; one trained on the
    spot with sentencepiece must load and drive the pipeline's text encoder."""
    import io

    import sentencepiece as spm

    from model.text import TextEncoder
    from model.tiny import CORPUS

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS.splitlines() * 20), model_writer=model,
                                   vocab_size=100, model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   character_coverage=1.0, minloglevel=2)
    write_tiny_pipeline(tmp_path / "ckpt")
    tokenizer = tmp_path / "ckpt" / "tokenizer"
    for old in tokenizer.iterdir():
        old.unlink()
    (tokenizer / "spiece.model").write_bytes(model.getvalue())
    (tokenizer / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 0}))
    text = TextEncoder.from_folders(tmp_path / "ckpt" / "text_encoder", tokenizer, max_length=32)
    ids = text.tokenizer("The camera pans left.").input_ids
    assert ids[-1] == 1 and 2 not in ids  # ends with </s>, no unknown pieces
    assert text.encode(["The camera pans left.", ""]).shape == (2, 32, 32)
    pipe = DropletVideoPipeline.from_pretrained(tmp_path / "ckpt")
    video = pipe("The camera pans left.", settings=pipe.default_settings(steps=1), progress=False)
    assert video.shape == (9, 64, 64, 3)
