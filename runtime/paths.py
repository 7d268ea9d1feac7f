"""Local paths a run reads (model weights, checkpoints, runtime_env files), checked before anything starts.
Nothing is fetched from a hub, so a path that names nothing is a usage error (exit 2, one line), found before
Ray, torch or a model processor starts rather than as a hang or a traceback inside them."""

from __future__ import annotations

from pathlib import Path


class MissingPath(ValueError):
    """A setting names a local folder or file that is not there."""


def require_local_paths(folders: dict[str, str | None] | None = None,
                        files: dict[str, str | None] | None = None) -> None:
    """Raise `MissingPath` (one line naming every bad setting) unless each `folders` value is a folder and each
    `files` value a file. Keys name the setting (`vllm.model_path`, `--checkpoint`); None values are skipped."""
    problems = []
    for kind, paths, ok in (("folder", folders, Path.is_dir), ("file", files, Path.is_file)):
        for setting, value in (paths or {}).items():
            if value is not None and not ok(Path(value)):
                problems.append(f"{setting} {value}: {'not a' if Path(value).exists() else 'no such'} {kind}")
    if problems:
        raise MissingPath("; ".join(problems))
