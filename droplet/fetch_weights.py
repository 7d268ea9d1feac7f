"""Named pretrained weights and `droplet models fetch`, the one command that uses the network.

Weights on a hub come with `huggingface_hub` (so `HF_ENDPOINT` points it at a mirror); files that no hub holds (the
LAION aesthetic heads live in code repositories) come from a pinned URL and are kept only when their sha256 is the
pinned one. Each fetch prints the config lines that point to what it wrote: the pipelines themselves only ever
read local paths. This module lives in `droplet/` so that no pipeline package can import it.

The sha256 values are those of the files as committed to the public repositories at the pinned commits (the git
blobs, checked with `git fsck`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from runtime.atomic import temp_name
from shards.tario import file_sha256

CHUNK = 1 << 20
TIMEOUT_S = 60.0
# what a VLM snapshot leaves out: duplicate weight formats beside the safetensors
SNAPSHOT_IGNORE = ("*.bin", "*.pth", "*.pt", "*.ckpt", "*.h5", "*.msgpack", "*.onnx", "*.gguf", "*.tflite")


class FetchError(ValueError):
    """A download failed or a file is not the pinned one (one line)."""


@dataclass(frozen=True)
class HubWeights:
    """Files of a hub repository at a revision; `files` None: the whole snapshot (less SNAPSHOT_IGNORE). An item of
    `files` that is a tuple names alternatives: the first the repository has is fetched."""

    name: str
    repo_id: str
    revision: str
    folder: str
    files: tuple[str | tuple[str, ...], ...] | None
    about: str
    config: str  # YAML lines; {path} is the folder written
    config_file: str  # which config they belong in


@dataclass(frozen=True)
class FileWeights:
    """One file from a URL, kept only with the pinned sha256."""

    name: str
    url: str
    sha256: str
    filename: str
    about: str
    config: str  # YAML lines; {path} is the file written
    config_file: str


_OPEN_CLIP_FILES = ("open_clip_config.json", ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"))
_LAION_V1 = "https://raw.githubusercontent.com/LAION-AI/aesthetic-predictor/6d122adad522ab246644d9dc1c6d7a3810ee255f"
_LAION_V2 = ("https://raw.githubusercontent.com/christophschuhmann/improved-aesthetic-predictor/"
             "6934dd81792f086e613a121dbce43082cb8be85e")
_CURATE, _CAPTION = "curate config", "caption config"
_CLIP = "embeddings:\n  weights: {path}  # open_clip_config.json and its weights\n"


def _linear(name: str, backbone: str, file: str, sha256: str, clip: str) -> FileWeights:
    return FileWeights(name, f"{_LAION_V1}/{file}", sha256, file,
                       f"LAION aesthetic predictor V1, linear head on OpenAI CLIP {backbone} (pairs with {clip})",
                       "aesthetic:\n  head: {path}\n  kind: linear\n", _CURATE)


def _vlm(name: str, repo_id: str, family: str, about: str) -> HubWeights:
    return HubWeights(name, repo_id, "main", repo_id.split("/")[1], None, about,
                      "backend: vllm\nvllm:\n  model_path: {path}\n  family: " + family + "\n", _CAPTION)


REGISTRY: dict[str, HubWeights | FileWeights] = {w.name: w for w in (
    HubWeights("clip-vit-b-32", "timm/vit_base_patch32_clip_224.openai", "ab5b8ef490e86faa07d3523926b842c765de1de5",
               "clip-vit-b-32", _OPEN_CLIP_FILES, "OpenAI CLIP ViT-B/32 for open_clip (ViT-B-32-quickgelu), 605 MB",
               _CLIP, _CURATE),
    HubWeights("clip-vit-b-16", "timm/vit_base_patch16_clip_224.openai", "main", "clip-vit-b-16", _OPEN_CLIP_FILES,
               "OpenAI CLIP ViT-B/16 for open_clip (ViT-B-16-quickgelu), 599 MB", _CLIP, _CURATE),
    HubWeights("clip-vit-l-14", "timm/vit_large_patch14_clip_224.openai", "main", "clip-vit-l-14", _OPEN_CLIP_FILES,
               "OpenAI CLIP ViT-L/14 for open_clip (ViT-L-14-quickgelu), 1.7 GB", _CLIP, _CURATE),
    _linear("aesthetic-b32-linear", "ViT-B/32", "sa_0_4_vit_b_32_linear.pth",
            "c7b14cead230694acc7b9447974d3cad78003c72da032e402a303b6c2429e85f", "clip-vit-b-32"),
    _linear("aesthetic-b16-linear", "ViT-B/16", "sa_0_4_vit_b_16_linear.pth",
            "8ad3923d7ecf019df20ecd2ab5542a3075fbba0278d239c0371345f3d7fcbde0", "clip-vit-b-16"),
    _linear("aesthetic-l14-linear", "ViT-L/14", "sa_0_4_vit_l_14_linear.pth",
            "2cd4e60f4f24ae3bcd57b847b13c1f3ba27edc28cc1a7f9ce74ee9f421243cba", "clip-vit-l-14"),
    FileWeights("aesthetic-l14-mlp", f"{_LAION_V2}/sac+logos+ava1-l14-linearMSE.pth",
                "21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0", "sac+logos+ava1-l14-linearMSE.pth",
                "LAION aesthetic predictor V2 (improved, SAC+LOGOS+AVA) MLP head on OpenAI CLIP ViT-L/14 (pairs with "
                "clip-vit-l-14)", "aesthetic:\n  head: {path}\n  kind: improved_mlp\n", _CURATE),
    _vlm("qwen2.5-vl-7b-instruct", "Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_5_vl",
         "Qwen2.5-VL-7B-Instruct, the VLM of configs/caption-qwen2.5-vl.yaml, about 17 GB"),
    _vlm("internvl2-8b", "OpenGVLab/InternVL2-8B", "internvl2",
         "InternVL2-8B, the VLM of configs/caption-internvl2.yaml, about 16 GB"),
)}


def download_checked(url: str, sha256: str, dest: Path, timeout: float = TIMEOUT_S) -> bool:
    """Stream `url` into `dest` while hashing it; kept (renamed into place) only when its sha256 is `sha256`, else
    deleted and FetchError. False when `dest` already held the right file (nothing downloaded)."""
    if dest.is_file() and file_sha256(dest) == sha256:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(dest)
    digest = hashlib.sha256()
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "droplet-models-fetch"})
        with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise FetchError(f"{url}: {getattr(exc, 'reason', None) or exc}") from None
    if digest.hexdigest() != sha256:
        tmp.unlink(missing_ok=True)
        raise FetchError(f"{url}: sha256 {digest.hexdigest()} is not the pinned {sha256}; the download was deleted")
    os.replace(tmp, dest)
    return True


def _hub_error(exc: Exception, entry: HubWeights) -> FetchError:
    text = " ".join(str(exc).split())
    return FetchError(f"{entry.repo_id}@{entry.revision}: {type(exc).__name__}: {text[:300]}")


def fetch_hub(entry: HubWeights, dest: Path) -> Path:
    """The entry's files (or snapshot) in `dest`/`entry.folder`, with huggingface_hub (HF_ENDPOINT honoured)."""
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    for name in ("httpx", "httpx2"):  # one INFO line per request otherwise
        logging.getLogger(name).setLevel(logging.WARNING)
    folder = dest / entry.folder
    try:
        if entry.files is None:
            snapshot_download(entry.repo_id, revision=entry.revision, local_dir=folder,
                              ignore_patterns=list(SNAPSHOT_IGNORE))
        for item in entry.files or ():
            *firsts, last = (item,) if isinstance(item, str) else item
            for name in firsts:
                try:
                    hf_hub_download(entry.repo_id, name, revision=entry.revision, local_dir=folder)
                    break
                except EntryNotFoundError:
                    continue
            else:
                hf_hub_download(entry.repo_id, last, revision=entry.revision, local_dir=folder)
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise _hub_error(exc, entry) from None
    return folder


def fetch(name: str, dest: str | Path, url: str | None = None) -> tuple[Path, str]:
    """Fetch the named weights into the folder `dest`; (what was written, the config lines pointing to it).
    `url`: a mirror of a file entry (its pinned sha256 is still checked)."""
    entry = REGISTRY.get(name)
    if entry is None:
        raise FetchError(f"unknown weights {name!r}; known: {', '.join(REGISTRY)}")
    dest = Path(dest).resolve()
    if isinstance(entry, HubWeights):
        if url is not None:
            raise FetchError(f"{name} comes from a hub: set HF_ENDPOINT for a mirror (--url is for files)")
        path = fetch_hub(entry, dest)
    else:
        path = dest / entry.filename
        download_checked(url or entry.url, entry.sha256, path)
    return path, entry.config.format(path=path)


def describe(entry: HubWeights | FileWeights) -> str:
    """One line for `droplet models list`."""
    where = (f"hub {entry.repo_id}@{entry.revision[:12]}" if isinstance(entry, HubWeights)
             else f"url, sha256 {entry.sha256[:12]}...")
    return f"{entry.name:<24} {entry.about} [{where}]"
