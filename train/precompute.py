"""`droplet precompute`: VAE latents + T5 features written as new shards, keyed by bucket and N.

Adaptive equalization sampling is deterministic (fixed trims, uniform indices), so a clip's frames, and so its
latents, are the same every epoch: training from these shards skips the VAE and T5 entirely. Latents are the
VAE posterior's mean (no per-epoch posterior sampling), stored in bf16 with the T5 features. Models with the
image-to-video layout also get the reference latents of the first-frame mask: `train.reference_noise.
precompute_draws` (K, default 1) encodings of the first frame, each noised with its own sigma = exp(N(-3, 0.5))
before encoding as training does on pixels (`reference` [K, F', 16, h, w], `reference_sigma` [K]); training picks
one per sample and step (with K = 1 and one epoch, one fresh draw per sample, as from pixels). K = 0 stores one
clean encoding (`reference` [F', 16, h, w]) and training then adds no reference noise. The draws are seeded by
(train.seed, clip key), so a precompute is reproducible in any order.

Layout: `OUTPUT/latents-N{N}-{H}x{W}-{NNNNNN}.tar` (WebDataset: `<key>.safetensors`, `<key>.json`) and
`OUTPUT/manifest.json` (`"kind": "precomputed"`, shard names, sample counts).
"""

from __future__ import annotations

import json
import logging
import zlib
from pathlib import Path

import torch
import webdataset as wds
from safetensors.torch import save
from tqdm.auto import tqdm

from model.conditioning import draw_reference_sigma, first_frame_mask, inpaint_conditioning
from model.vae import encode_pixels, video_to_pixels
from shards.sampling import sample_frames

from .buckets import Bucket
from .components import build_components
from .config import TrainConfig
from .data import ClipBatches, StreamSpec

log = logging.getLogger(__name__)
MANIFEST_KIND = "precomputed"


class BucketShardWriters:
    """One rolling shard series per bucket."""

    def __init__(self, output: Path, maxcount: int) -> None:
        self.output, self.maxcount = output, maxcount
        self.writers: dict[str, tuple[wds.TarWriter, int, int]] = {}
        self.done: list[dict] = []

    def _open(self, bucket: str, number: int) -> wds.TarWriter:
        return wds.TarWriter(str(self.output / f"latents-{bucket}-{number:06d}.tar"))

    def write(self, bucket: str, sample: dict) -> None:
        writer, number, count = self.writers.get(bucket) or (self._open(bucket, 0), 0, 0)
        if count == self.maxcount:
            self._close(bucket, writer, number, count)
            writer, number, count = self._open(bucket, number + 1), number + 1, 0
        writer.write(sample)
        self.writers[bucket] = (writer, number, count + 1)

    def _close(self, bucket: str, writer: wds.TarWriter, number: int, count: int) -> None:
        writer.close()
        self.done.append({"name": f"latents-{bucket}-{number:06d}.tar", "bucket": bucket, "samples": count})

    def close(self) -> list[dict]:
        for bucket, (writer, number, count) in sorted(self.writers.items()):
            self._close(bucket, writer, number, count)
        self.writers = {}
        return sorted(self.done, key=lambda s: s["name"])


@torch.no_grad()
def precompute(config: TrainConfig, urls: list[str], output: Path, maxcount: int = 1000,
               progress: bool = True) -> dict:
    """Every clip once, bucketed, sampled and decoded by the training stream itself (in order, batch size 1)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    parts = build_components(config, device)
    spec = StreamSpec(urls=urls, frame_counts=config.data.frame_counts, token_budget=config.data.token_budget,
                      batch_size=1, shuffle_buffer=1, resampled=False)
    if config.data.aspect_ratios:
        spec.aspect_ratios = tuple(config.data.aspect_ratios)
    stream = ClipBatches(spec)
    output.mkdir(parents=True, exist_ok=True)
    noise = config.train.reference_noise
    draws = noise.precompute_draws if noise.enabled else 0
    if parts.inpaint:
        if draws:
            log.info("reference latents: %d noisy encoding(s) per clip, sigma = exp(N(%g, %g)) each; training picks "
                     "one per step", draws, noise.log_mean, noise.log_std)
        else:
            log.info("reference latents: stored clean (train.reference_noise.precompute_draws 0 or noise off): "
                     "training from these shards adds no reference noise")
    writers = BucketShardWriters(output, maxcount)
    for batch in tqdm(stream, desc="precompute", disable=not progress):
        if batch.get("skipped"):
            continue
        meta, caption = batch["meta"][0], batch["caption"][0]
        bucket = Bucket(*batch["video"].shape[1:4])
        pixels = video_to_pixels(batch["video"]).to(device, parts.vae.dtype)
        latents = encode_pixels(parts.vae, pixels)
        tensors = {"latents": latents[0].to(torch.bfloat16).cpu().contiguous(),
                   "text": parts.text.encode([caption])[0].to(torch.bfloat16).cpu().contiguous()}
        if parts.inpaint:
            tensors.update(reference_latents(parts.vae, pixels, tuple(latents.shape), noise,
                                             clip_generator(config.train.seed, batch["key"][0])))
        indices = sample_frames(int(meta["num_frames"]), float(meta["fps"]), bucket.frames).indices
        info = {**{k: meta[k] for k in ("clip_id", "num_frames", "fps", "width", "height") if k in meta},
                "bucket": {"frames": bucket.frames, "height": bucket.height, "width": bucket.width},
                "indices": list(indices), "motion": batch["motion"][0].item(), "caption": caption}
        writers.write(bucket.name, {"__key__": batch["key"][0], "safetensors": save(tensors),
                                    "json": json.dumps(info, sort_keys=True).encode()})
    skipped = dict(stream.skipped)
    shards = writers.close()
    manifest = {"kind": MANIFEST_KIND, "shards": shards, "skipped": skipped,
                "frame_counts": config.data.frame_counts, "token_budget": config.data.token_budget,
                "image_to_video": parts.inpaint, "text_length": parts.text.max_length}
    if parts.inpaint:
        manifest["reference_noise"] = {"draws": draws, "log_mean": noise.log_mean, "log_std": noise.log_std}
    (output / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def clip_generator(seed: int, key: str) -> torch.Generator:
    """The generator of one clip's reference-noise draws: the same for a clip whatever the order of the run."""
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}:{key}".encode()))


def reference_latents(vae, pixels: torch.Tensor, latent_shape: tuple[int, ...], noise,
                      generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One clip's stored reference latents for the first-frame mask: `noise.precompute_draws` noisy encodings
    with their sigmas ({"reference": [K, F', 16, h, w], "reference_sigma": [K]}), or one clean encoding
    ({"reference": [F', 16, h, w]}) when K is 0 or the noise is off."""
    draws = noise.precompute_draws if noise.enabled else 0
    frames = pixels.shape[2]
    if not draws:
        cond = inpaint_conditioning(vae, pixels, first_frame_mask(1, frames, pixels.device), latent_shape)
        return {"reference": cond[0, :, 1:].to(torch.bfloat16).cpu().contiguous()}
    sigma = draw_reference_sigma(draws, generator, noise.log_mean, noise.log_std)
    cond = inpaint_conditioning(vae, pixels.expand(draws, -1, -1, -1, -1), first_frame_mask(draws, frames,
                                pixels.device), (draws, *latent_shape[1:]), sigma, generator=generator)
    return {"reference": cond[:, :, 1:].to(torch.bfloat16).cpu().contiguous(), "reference_sigma": sigma.float()}


def precomputed_urls(folder: Path) -> list[str] | None:
    """Shard paths of a precompute output folder, or None when `folder` is not one."""
    manifest = Path(folder) / "manifest.json"
    if not manifest.exists():
        return None
    data = json.loads(manifest.read_text())
    if data.get("kind") != MANIFEST_KIND:
        return None
    return [str(Path(folder) / s["name"]) for s in data["shards"]]
