"""shards package."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "iter_samples": "shards.reader",
    "shard_urls": "shards.reader",
    "latest_captions": "shards.captions",
    "write_shards": "shards.writer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Re-exports, imported on first use so `import shards.ids` stays light."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'shards' has no attribute {name!r}")
