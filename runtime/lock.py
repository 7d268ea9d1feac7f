"""The config lock: a folder (an OUT, a run) is made with one config; a different one later is refused,
naming the settings that differ."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from runtime.atomic import write_text_atomic


class ConfigMismatch(ValueError):
    """The folder was made with another config (the message names the keys that differ)."""


def changed_keys(old: Any, new: Any, ignore: Iterable[str] = (), prefix: str = "", defaults: Any = None) -> list[str]:
    """Dotted paths of the settings that differ between two nested mappings, sorted; `ignore` paths (and
    everything under them) do not count, nor does a setting `old` lacks (added to the config since) whose `new`
    value is its value in `defaults`: the folder was made the way that default works."""
    ignored = set(ignore)
    path = prefix.rstrip(".")
    if path in ignored:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        known = defaults if isinstance(defaults, dict) else {}
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            if key not in old and key in known and new.get(key) == known[key]:
                continue
            out += changed_keys(old.get(key), new.get(key), ignored, f"{prefix}{key}.", known.get(key))
        return out
    return [] if old == new else [path]


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else (yaml.safe_load(text) or {})


def _render(path: Path, data: Any) -> str:
    if path.suffix == ".json":
        return json.dumps(data, indent=2, sort_keys=True) + "\n"
    return yaml.safe_dump(data, sort_keys=False)


def lock_config(path: str | Path, fingerprint: dict, *, full: dict | None = None, ignore: Iterable[str] = (),
                what: str = "made", defaults: dict | None = None) -> None:
    """Write `full` (default: `fingerprint`) to `path`, or check that the config already there has the same
    `fingerprint` (the settings that shape the folder's content; `ignore` paths may change; a setting the
    locked config lacks is the same when it is at its value in `defaults`, the default config's fingerprint).

    Raises `ConfigMismatch` with one line: which folder, which keys.
    """
    path = Path(path)
    if path.exists():
        changed = changed_keys(_read(path), fingerprint, ignore, defaults=defaults)
        if changed:
            shown = ", ".join(changed[:6]) + (", ..." if len(changed) > 6 else "")
            raise ConfigMismatch(f"{path.parent} was {what} with a different config (changed: {shown}); "
                                 "use a new folder or the same config")
        return
    write_text_atomic(path, _render(path, full if full is not None else fingerprint))
