"""DropletVideoPipeline: text-to-video and image-to-video sampling, saved and read as a diffusers-format folder.

The folder holds `model_index.json`, `transformer/`, `vae/`, `text_encoder/`, `tokenizer/` and `scheduler/`, so
CogVideoX-Fun-V1.1-5b-InP or a DropletVideo-5B folder converted to diffusers layout loads as it is.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .conditioning import first_frame_mask, inpaint_conditioning, resize_image
from .scheduler import make_scheduler
from .text import TextEncoder
from .transformer import DropletVideoTransformer3DModel
from .vae import decode_video, latent_frames, load_vae
from .weights import load_transformer

log = logging.getLogger(__name__)

NEGATIVE_PROMPT = (
    "The video is not of a high quality, it has a low resolution. Watermark present in each frame. "
    "The background is solid. Strange body and strange trajectory. Distortion."
)
DEFAULT_MOTION = 8.0


@dataclass
class SampleSettings:
    num_frames: int = 49
    height: int = 480
    width: int = 720
    steps: int = 50
    guidance_scale: float = 6.5
    motion: float = DEFAULT_MOTION
    negative_prompt: str = NEGATIVE_PROMPT
    seed: int = 0

    def check(self) -> None:
        if (self.num_frames - 1) % 4:
            raise ValueError(f"num_frames must be 4k+1 (49, 85, ...), got {self.num_frames}")
        if self.height % 16 or self.width % 16:
            raise ValueError(f"height and width must be multiples of 16, got {self.height}x{self.width}")
        if self.steps < 1:
            raise ValueError("steps must be >= 1")


class DropletVideoPipeline:
    """Transformer + VAE + T5 + DDIM scheduler; `__call__` returns uint8 video [F, H, W, 3]."""

    def __init__(self, transformer: DropletVideoTransformer3DModel, vae, text: TextEncoder, scheduler=None) -> None:
        self.transformer = transformer.eval()
        self.vae = vae.eval()
        self.text = text
        self.scheduler = scheduler or make_scheduler()

    @property
    def inpaint(self) -> bool:
        """True for the 33-channel image-to-video layout (noisy 16 + mask 1 + reference 16)."""
        return self.transformer.config.in_channels > self.transformer.config.out_channels

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    def to(self, device) -> DropletVideoPipeline:
        self.transformer.to(device)
        self.vae.to(device)
        self.text.encoder.to(device)
        self.text.reset_cache()
        return self

    # -- folders -------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: torch.dtype = torch.float32, vae_tiling: bool = False,
                        vae_slicing: bool = False) -> DropletVideoPipeline:
        from diffusers import CogVideoXDDIMScheduler

        folder = Path(folder)
        missing = [p for p in ("transformer", "vae", "text_encoder", "tokenizer") if not (folder / p).is_dir()]
        if missing:
            raise FileNotFoundError(f"{folder} is not a pipeline folder: no {', '.join(missing)}/")
        transformer = load_transformer(folder / "transformer", dtype)
        vae = load_vae(folder / "vae", dtype, tiling=vae_tiling, slicing=vae_slicing)
        text = TextEncoder.from_folders(folder / "text_encoder", folder / "tokenizer",
                                        max_length=transformer.config.max_text_seq_length, dtype=dtype)
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

    def default_settings(self, **overrides) -> SampleSettings:
        """The size the transformer was configured at (480x720x49 for 5B), with overrides that are not None."""
        cfg = self.transformer.config
        scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        base = {"num_frames": cfg.sample_frames, "height": cfg.sample_height * scale, "width": cfg.sample_width * scale}
        return SampleSettings(**{**base, **{k: v for k, v in overrides.items() if v is not None}})

    # -- sampling ------------------------------------------------------------------------------------------------
    def prepare_image(self, image: torch.Tensor | None, settings: SampleSettings) -> torch.Tensor | None:
        """uint8 [H, W, 3] -> [-1, 1] video [1, 3, F, H, W] with the image as frame 0 (the rest is masked)."""
        if image is None:
            return None
        first = resize_image(image, settings.height, settings.width).to(self.device)
        video = torch.full((1, 3, settings.num_frames, settings.height, settings.width), -1.0, device=self.device)
        video[:, :, 0] = first
        return video

    @torch.no_grad()
    def __call__(self, prompt: str, image: torch.Tensor | None = None, settings: SampleSettings | None = None,
                 progress: bool = True) -> torch.Tensor:
        settings = settings or SampleSettings()
        settings.check()
        if image is not None and not self.inpaint:
            raise ValueError("this transformer has no image-to-video channels (in_channels == out_channels)")
        device, dtype = self.device, self.transformer.dtype
        vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        shape = (1, latent_frames(settings.num_frames), self.transformer.config.out_channels,
                 settings.height // vae_scale, settings.width // vae_scale)
        generator = torch.Generator(device="cpu").manual_seed(settings.seed)
        latents = torch.randn(shape, generator=generator).to(device, dtype) * self.scheduler.init_noise_sigma

        use_cfg = settings.guidance_scale > 1.0
        text = self.text.encode([prompt]).to(dtype)
        if use_cfg:
            text = torch.cat([self.text.encode([settings.negative_prompt]).to(dtype), text])
        condition = None
        if self.inpaint:
            pixels = self.prepare_image(image, settings)
            mask = first_frame_mask(1, settings.num_frames, device) if pixels is not None else \
                torch.ones(1, settings.num_frames, device=device)
            condition = inpaint_conditioning(self.vae, pixels, mask, shape).to(dtype)
            if use_cfg:
                condition = torch.cat([condition, condition])

        self.scheduler.set_timesteps(settings.steps, device=device)
        for t in tqdm(self.scheduler.timesteps, desc="sampling", disable=not progress):
            model_input = torch.cat([latents, latents]) if use_cfg else latents
            model_input = self.scheduler.scale_model_input(model_input, t)
            if condition is not None:
                model_input = torch.cat([model_input, condition], dim=2)
            batch = model_input.shape[0]
            pred = self.transformer(model_input, text, t.expand(batch), motion=torch.full((batch,), settings.motion),
                                    return_dict=False)[0].float()
            if use_cfg:
                uncond, cond = pred.chunk(2)
                pred = uncond + settings.guidance_scale * (cond - uncond)
            latents = self.scheduler.step(pred, t, latents, return_dict=False)[0].to(dtype)
        return decode_video(self.vae, latents)[0].cpu()


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
