"""YAML configs into their pydantic models, with one clear line on any error; and back into commented YAML."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """The config file is missing, not YAML, or does not validate."""


def describe_validation_error(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown setting"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def load_config(path: str | Path | None, model: type[M]) -> M:
    """`model` from the YAML at `path` (its defaults when `path` is None)."""
    if path is None:
        return model()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation_error(exc)}") from None


def render_yaml(config: BaseModel, header: str = "") -> str:
    """The config as commented YAML (each key with its description): what `configs/<name>.yaml` holds."""
    lines = [header.rstrip("\n")] if header else []

    def emit(model: BaseModel, indent: int) -> None:
        for name, spec in type(model).model_fields.items():
            value = getattr(model, name)
            pad = " " * indent
            if isinstance(value, BaseModel):
                doc = " ".join((type(value).__doc__ or "").split())
                lines.append(f"{pad}{name}:" + (f"  # {doc}" if doc else ""))
                emit(value, indent + 2)
                continue
            plain = list(value) if isinstance(value, tuple) else value
            text = yaml.safe_dump(plain, default_flow_style=True).strip().removesuffix("...").strip()
            lines.append(f"{pad}{name}: {text}" + (f"  # {spec.description}" if spec.description else ""))

    emit(config, 0)
    return "\n".join(lines) + "\n"
