"""Build a model from a family name and a shape dict: the one entry point the loop uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from torch import nn

from scaletrack.errors import ConfigError
from scaletrack.models.gpt import GPT, GPTConfig
from scaletrack.models.lstm import CharLSTM, LSTMConfig

FAMILIES = ("gpt", "lstm")


def make_config(family: str, shape: Mapping[str, Any]) -> GPTConfig | LSTMConfig:
    """The family's config from a shape dict; unknown keys or bad values raise ConfigError."""
    classes = {"gpt": GPTConfig, "lstm": LSTMConfig}
    if family not in classes:
        raise ConfigError(f"unknown model family {family!r}; expected one of {FAMILIES}")
    cls = classes[family]
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(shape) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown {family} shape key(s) {unknown}; allowed: {sorted(allowed)}"
        )
    try:
        return cls(**dict(shape))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {family} shape {dict(shape)}: {exc}") from exc


def build_model(family: str, shape: Mapping[str, Any]) -> nn.Module:
    """A freshly initialised model (uses the global torch RNG for initialisation)."""
    cfg = make_config(family, shape)
    return GPT(cfg) if isinstance(cfg, GPTConfig) else CharLSTM(cfg)
