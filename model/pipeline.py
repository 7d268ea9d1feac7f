"""DropletVideoPipeline: text-to-video and image-to-video sampling, saved and read as a diffusers-format folder.

The folder holds `model_index.json`, `transformer/`, `vae/`, `text_encoder/`, `tokenizer/` and `scheduler/`, so
CogVideoX-Fun-V1.1-5b-InP or a DropletVideo-5B folder converted to diffusers layout loads as it is.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .conditioning import IMAGE_FITS, REFERENCE_NOISE_SIGMA, first_frame_mask, inpaint_conditioning, resize_image
from .scheduler import make_scheduler
from .text import TextEncoder
from .transformer import DropletVideoTransformer3DModel
from .vae import decode_video, latent_frames, load_vae
from .weights import load_transformer

log = logging.getLogger(__name__)

# Sampling defaults. Each is the released inference's (inference.py / pipeline.py / utils.py of IEIT-AGI/DropletVideo)
# unless its comment says otherwise; README "Sampling defaults" tabulates them.
RELEASED_TEXT_TOKENS = 400  # inference.py: pipeline(..., max_sequence_length = 400); CogVideoX configs say 226
NEGATIVE_PROMPT = "The video is low quality, blurry, distortion. "  # inference.py: negative_prompt (trailing space)
QUALITY_SUFFIX = (  # inference.py: prompt = prompt + " " + "<this>"
    "The video is of high quality, and the view is very clear. High quality, masterpiece, best quality, highres, "
    "ultra-detailed, fantastic."
)
DEFAULT_FRAMES = 85  # inference.py: --video_length 85
DEFAULT_HEIGHT = 384  # inference.py: --height 384
DEFAULT_WIDTH = 672  # inference.py: --width 672
DEFAULT_STEPS = 50  # inference.py: --num_inference_steps 50
# inference.py: --guidance_scale 6.0. The paper gives 6.5; the released script (which made the released samples)
# wins, so a default run reproduces what the released code does.
DEFAULT_GUIDANCE = 6.0
DEFAULT_MOTION = 16.0  # inference.py: --FPS 16 (the motion intensity M)
DEFAULT_SEED = 42  # inference.py: --seed 42
RELEASED_MP4_FPS = 8.0  # inference.py: save_videos_grid(sample, save_path, fps=8), whatever M is
DEFAULT_IMAGE_FIT = "stretch"  # utils.py get_image_to_video_latent: Image.resize([width, height]), no crop


def with_quality_suffix(prompt: str) -> str:
    """The prompt as the released inference.py hands it to the pipeline: the quality suffix after one space."""
    return prompt + " " + QUALITY_SUFFIX


def default_text_tokens(transformer_config) -> int:
    """T5 tokens per prompt: 400 for RoPE models whatever `max_text_seq_length` says (the released inference),
    the config's `max_text_seq_length` for models with a sin-cos position table (sized by it)."""
    if transformer_config.use_rotary_positional_embeddings:
        return RELEASED_TEXT_TOKENS
    return transformer_config.max_text_seq_length


@dataclass
class SampleSettings:
    num_frames: int = DEFAULT_FRAMES
    height: int = DEFAULT_HEIGHT
    width: int = DEFAULT_WIDTH
    steps: int = DEFAULT_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE
    motion: float = DEFAULT_MOTION
    negative_prompt: str = NEGATIVE_PROMPT
    quality_suffix: bool = True
    """Append `QUALITY_SUFFIX` to the prompt (not to the negative prompt), as the released inference does."""
    seed: int = DEFAULT_SEED
    max_text_tokens: int | None = None
    """T5 tokens per prompt; None: the pipeline's text encoder's (400 for RoPE models read by `from_pretrained`)."""
    image_fit: str = DEFAULT_IMAGE_FIT
    """"stretch" (the released inference) or "cover" (resize to cover, centre-crop)."""
    reference_noise: float | None = None
    """σ of the noise on image-to-video reference pixels; None: `REFERENCE_NOISE_SIGMA` (0.0563) when the
    transformer config says `add_noise_in_inpaint_model`, else none (pipeline.py of the released code)."""

    def check(self) -> None:
        if (self.num_frames - 1) % 4:
            raise ValueError(f"num_frames must be 4k+1 (49, 85, ...), got {self.num_frames}")
        if self.height % 16 or self.width % 16:
            raise ValueError(f"height and width must be multiples of 16, got {self.height}x{self.width}")
        if self.steps < 1:
            raise ValueError("steps must be >= 1")
        if self.max_text_tokens is not None and self.max_text_tokens < 1:
            raise ValueError(f"max_text_tokens must be >= 1, got {self.max_text_tokens}")
        if self.image_fit not in IMAGE_FITS:
            raise ValueError(f"image_fit {self.image_fit!r}: choose from {IMAGE_FITS}")

    def prompt_text(self, prompt: str) -> str:
        return with_quality_suffix(prompt) if self.quality_suffix else prompt


class DropletVideoPipeline:
    """Transformer + VAE + T5 + DDIM scheduler; `__call__` returns uint8 video [F, H, W, 3].

    With `enable_model_cpu_offload(device)` the three models stay on the CPU and each moves to `device` only while
    it runs (text encoder, then VAE encode, transformer, VAE decode), as diffusers' model CPU offload does.
    """

    def __init__(self, transformer: DropletVideoTransformer3DModel, vae, text: TextEncoder, scheduler=None) -> None:
        self.transformer = transformer.eval()
        self.vae = vae.eval()
        self.text = text
        self.scheduler = scheduler or make_scheduler()
        self.offload_device: torch.device | None = None

    @property
    def inpaint(self) -> bool:
        """True for the 33-channel image-to-video layout (noisy 16 + mask 1 + reference 16)."""
        return self.transformer.config.in_channels > self.transformer.config.out_channels

    @property
    def device(self) -> torch.device:
        """Where sampling runs: the offload device when offloading, else where the transformer is."""
        if self.offload_device is not None:
            return self.offload_device
        return next(self.transformer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.dtype

    def to(self, device) -> DropletVideoPipeline:
        """Every model on `device` (and model CPU offload off)."""
        self.offload_device = None
        for module in self.models():
            module.to(device)
        self.text.reset_cache()
        return self

    def models(self) -> list[torch.nn.Module]:
        return [self.text.encoder, self.vae, self.transformer]

    def enable_model_cpu_offload(self, device: str | torch.device = "cuda") -> DropletVideoPipeline:
        """Keep the models on the CPU; each moves to `device` only while it runs, then back (the released
        inference.py calls diffusers' `enable_model_cpu_offload()`). Peak memory: the largest model (T5-XXL or
        the transformer) plus activations, instead of all three."""
        self.offload_device = torch.device(device)
        for module in self.models():
            module.to("cpu")
        self.text.reset_cache()
        return self

    @contextmanager
    def running(self, module: torch.nn.Module):
        """With offload on: `module` on the offload device for the block, back on the CPU after it."""
        if self.offload_device is None:
            yield module
            return
        module.to(self.offload_device)
        try:
            yield module
        finally:
            module.to("cpu")

    # -- folders -------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: torch.dtype = torch.float32, vae_tiling: bool = False,
                        vae_slicing: bool = False, max_text_tokens: int | None = None) -> DropletVideoPipeline:
        """Read a pipeline folder. Prompts are encoded to `max_text_tokens` T5 tokens, by default 400 for RoPE
        models whatever the transformer config's `max_text_seq_length` says (`default_text_tokens`)."""
        from diffusers import CogVideoXDDIMScheduler

        folder = Path(folder)
        missing = [p for p in ("transformer", "vae", "text_encoder", "tokenizer") if not (folder / p).is_dir()]
        if missing:
            raise FileNotFoundError(f"{folder} is not a pipeline folder: no {', '.join(missing)}/")
        transformer = load_transformer(folder / "transformer", dtype)
        vae = load_vae(folder / "vae", dtype, tiling=vae_tiling, slicing=vae_slicing)
        tokens = max_text_tokens or default_text_tokens(transformer.config)
        if tokens != transformer.config.max_text_seq_length:
            log.info("encoding prompts to %d T5 tokens (the transformer config says max_text_seq_length %d)", tokens,
                     transformer.config.max_text_seq_length)
        text = TextEncoder.from_folders(folder / "text_encoder", folder / "tokenizer", max_length=tokens, dtype=dtype)
        scheduler = None
        if (folder / "scheduler").is_dir():
            scheduler = CogVideoXDDIMScheduler.from_pretrained(folder / "scheduler")
        else:
            log.warning("%s has no scheduler/: using CogVideoX-5B's DDIM settings", folder)
        return cls(transformer, vae, text, scheduler)

    def save_pretrained(self, folder: str | Path, safe_serialization: bool = True) -> Path:
        import diffusers

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.transformer.save_pretrained(folder / "transformer", safe_serialization=safe_serialization)
        self.vae.save_pretrained(folder / "vae", safe_serialization=safe_serialization)
        self.text.encoder.save_pretrained(folder / "text_encoder", safe_serialization=safe_serialization)
        self.text.tokenizer.save_pretrained(folder / "tokenizer")
        self.scheduler.save_pretrained(folder / "scheduler")
        index = {
            "_class_name": "DropletVideoPipeline",
            "_diffusers_version": diffusers.__version__,
            "transformer": ["model.transformer", "DropletVideoTransformer3DModel"],
            "vae": ["diffusers", "AutoencoderKLCogVideoX"],
            "text_encoder": ["transformers", "T5EncoderModel"],
            "tokenizer": ["transformers", type(self.text.tokenizer).__name__],
            "scheduler": ["diffusers", type(self.scheduler).__name__],
        }
        (folder / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        return folder

    def configured_size(self) -> tuple[int, int, int]:
        """(frames, height, width) the transformer was configured at (49 x 480 x 720 for 5B)."""
        cfg = self.transformer.config
        scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        return cfg.sample_frames, cfg.sample_height * scale, cfg.sample_width * scale

    def default_settings(self, **overrides) -> SampleSettings:
        """The released defaults (85 frames at 384x672, ...) with overrides that are not None. A model configured
        smaller than 384x672 (the tiny test model: 9 frames at 64x64) samples at its configured size instead."""
        frames, height, width = self.configured_size()
        base = {}
        if height < DEFAULT_HEIGHT or width < DEFAULT_WIDTH:
            base = {"num_frames": frames, "height": height, "width": width}
        return SampleSettings(**{**base, **{k: v for k, v in overrides.items() if v is not None}})

    # -- sampling ------------------------------------------------------------------------------------------------
    def prepare_image(self, image: torch.Tensor | None, settings: SampleSettings) -> torch.Tensor | None:
        """uint8 [H, W, 3] -> [-1, 1] video [1, 3, F, H, W] with the image as frame 0 (the rest is masked)."""
        if image is None:
            return None
        first = resize_image(image, settings.height, settings.width, fit=settings.image_fit).to(self.device)
        video = torch.full((1, 3, settings.num_frames, settings.height, settings.width), -1.0, device=self.device)
        video[:, :, 0] = first
        return video

    def reference_noise(self, settings: SampleSettings) -> float:
        """σ of the noise on reference pixels: the setting, else 0.0563 when the transformer config says
        `add_noise_in_inpaint_model` (pipeline.py of the released code: `noise_aug_strength` = 0.0563)."""
        if settings.reference_noise is not None:
            return settings.reference_noise
        return REFERENCE_NOISE_SIGMA if getattr(self.transformer.config, "add_noise_in_inpaint_model", False) else 0.0

    def encode_prompts(self, prompt: str, settings: SampleSettings, use_cfg: bool) -> torch.Tensor:
        """[negative; prompt] features (or the prompt's alone without CFG); a warning for each cut prompt."""
        tokens = settings.max_text_tokens or self.text.max_length
        prompts = ([settings.negative_prompt] if use_cfg else []) + [settings.prompt_text(prompt)]
        with self.running(self.text.encoder):
            return self.text.encode(prompts, max_length=tokens, warn=True).to(self.device, self.dtype)

    @torch.no_grad()
    def __call__(self, prompt: str, image: torch.Tensor | None = None, settings: SampleSettings | None = None,
                 progress: bool = True) -> torch.Tensor:
        latents = self.sample_latents(prompt, image, settings, progress)
        with self.running(self.vae):
            return decode_video(self.vae, latents)[0].cpu()

    @torch.no_grad()
    def sample_latents(self, prompt: str, image: torch.Tensor | None = None, settings: SampleSettings | None = None,
                       progress: bool = True) -> torch.Tensor:
        """The denoised latents [1, F', 16, h, w] (scaled by the VAE's scaling factor), before decoding."""
        settings = settings or SampleSettings()
        settings.check()
        if image is not None and not self.inpaint:
            raise ValueError("this transformer has no image-to-video channels (in_channels == out_channels)")
        device, dtype = self.device, self.dtype
        vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        shape = (1, latent_frames(settings.num_frames), self.transformer.config.out_channels,
                 settings.height // vae_scale, settings.width // vae_scale)
        # Drawn on the CPU, so a seed gives the same video on any device (the released code draws on the GPU).
        generator = torch.Generator(device="cpu").manual_seed(settings.seed)
        latents = torch.randn(shape, generator=generator).to(device, dtype) * self.scheduler.init_noise_sigma

        use_cfg = settings.guidance_scale > 1.0
        text = self.encode_prompts(prompt, settings, use_cfg)
        condition = None
        if self.inpaint:
            pixels = self.prepare_image(image, settings)
            mask = first_frame_mask(1, settings.num_frames, device) if pixels is not None else \
                torch.ones(1, settings.num_frames, device=device)
            # The reference noise comes from the seeded generator, after the latents (the released code draws it
            # from torch's global, unseeded generator).
            with self.running(self.vae):
                condition = inpaint_conditioning(self.vae, pixels, mask, shape, self.reference_noise(settings),
                                                 generator=generator).to(dtype)
            if use_cfg:
                condition = torch.cat([condition, condition])

        self.scheduler.set_timesteps(settings.steps, device=device)
        with self.running(self.transformer):
            for t in tqdm(self.scheduler.timesteps, desc="sampling", disable=not progress):
                model_input = torch.cat([latents, latents]) if use_cfg else latents
                model_input = self.scheduler.scale_model_input(model_input, t)
                if condition is not None:
                    model_input = torch.cat([model_input, condition], dim=2)
                batch = model_input.shape[0]
                motion = torch.full((batch,), settings.motion)
                pred = self.transformer(model_input, text, t.expand(batch), motion=motion, return_dict=False)[0].float()
                if use_cfg:
                    uncond, cond = pred.chunk(2)
                    pred = uncond + settings.guidance_scale * (cond - uncond)
                latents = self.scheduler.step(pred, t, latents, return_dict=False)[0].to(dtype)
        return latents


def write_mp4(video: torch.Tensor, path: str | Path, fps: float) -> Path:
    """uint8 [F, H, W, 3] -> H.264 yuv420p mp4 (PyAV)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = video.numpy()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
