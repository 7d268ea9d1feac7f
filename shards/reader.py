"""Reading shards back: the shard list of an OUT folder and a streaming sample iterator (plain `tarfile`).

Samples are grouped the way WebDataset groups them: consecutive members with the same key (the member name up
to its first dot). `.json` is decoded to a dict, `.txt` to a str; other members stay bytes. Members are read into
memory, never extracted; a member whose name could point outside a folder (absolute, or with a `..` part) is
skipped with a log line, so no such key reaches a caller (the trainer skips them the same way).
"""

from __future__ import annotations

import json
import logging
import os
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from shards.index import shard_number
from shards.layout import OutLayout

PathOrUrl = str | os.PathLike
log = logging.getLogger(__name__)


def safe_member_name(name: str) -> bool:
    """A tar member name that stays inside the folder it would be read into: not empty, relative, no `..`."""
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts


def _is_url(value: PathOrUrl) -> bool:
    return "://" in str(value) and not str(value).startswith("file://")


def _local(value: PathOrUrl) -> Path:
    text = str(value)
    return Path(text[len("file://"):] if text.startswith("file://") else text)


def _sorted_shards(names: Iterable[str]) -> list[str]:
    picked = [n for n in names if shard_number(n.rstrip("/").rsplit("/", 1)[-1]) is not None]
    return sorted(picked, key=lambda n: shard_number(n.rstrip("/").rsplit("/", 1)[-1]) or 0)


def shard_urls(out_or_shards: PathOrUrl) -> list[str]:
    """Complete shard tars (`shard-NNNNNN.tar`, temp files excluded) of an OUT folder or a shards folder."""
    if _is_url(out_or_shards):
        import fsspec

        fs, root = fsspec.core.url_to_fs(str(out_or_shards))
        root = root.rstrip("/")
        if fs.isdir(f"{root}/shards"):
            root = f"{root}/shards"
        found = _sorted_shards(fs.ls(root, detail=False))
        return [fs.unstrip_protocol(p) for p in found]
    root = _local(out_or_shards)
    if OutLayout(root).shards_dir.is_dir():
        root = OutLayout(root).shards_dir
    if root.is_file():
        return [str(root)]
    return [str(root / n) for n in _sorted_shards(p.name for p in root.iterdir())]


def _open(url: PathOrUrl) -> IO[bytes]:
    if _is_url(url):
        import fsspec

        return fsspec.open(str(url), "rb").open()
    return open(_local(url), "rb")


def _decode(sample: dict) -> dict:
    if "json" in sample:
        sample["json"] = json.loads(sample["json"])
    if "txt" in sample:
        sample["txt"] = sample["txt"].decode("utf-8")
    return sample


def iter_samples(urls_or_paths: PathOrUrl | Iterable[PathOrUrl]) -> Iterator[dict]:
    """Yields {"__key__", "__url__", "json": dict, "mp4": bytes, "txt": str} per sample, shard after shard."""
    if isinstance(urls_or_paths, (str, os.PathLike)):
        urls_or_paths = [urls_or_paths]
    for url in urls_or_paths:
        with _open(url) as f, tarfile.open(fileobj=f, mode="r|") as tar:
            sample: dict | None = None
            for member in tar:
                if not member.isfile():
                    continue
                if not safe_member_name(member.name):
                    log.warning("skipped tar member %r of %s: unsafe name (absolute or with ..)", member.name, url)
                    continue
                base = member.name.rsplit("/", 1)[-1]
                key, _, ext = base.partition(".")
                key = member.name[: len(member.name) - len(base)] + key
                data = tar.extractfile(member).read()
                if sample is None or sample["__key__"] != key:
                    if sample is not None:
                        yield _decode(sample)
                    sample = {"__key__": key, "__url__": str(url)}
                sample[ext] = data
            if sample is not None:
                yield _decode(sample)
