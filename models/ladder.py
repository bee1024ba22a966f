"""Size ladders: pick a model shape for a target non-embedding parameter count.

GPT: search n_layer 1..64 and d_model on a grid of multiples of 16, keep shapes whose
aspect ratio d_model / n_layer lies in [ASPECT_MIN, ASPECT_MAX], choose the one closest to
the target in log N with a mild preference for aspect ratio near ASPECT_TARGET (Kaplan et
al. found loss nearly flat over a wide band of aspect ratios). Heads: head_dim 64 when
d_model >= 256, 32 when >= 64, else 16 (all divide d_model since d_model is a multiple of 16).
LSTM: n_layer 1..4 (prefers 2), d_hidden a multiple of 8.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, overload

from scaletrack.errors import ConfigError
from scaletrack.models.accounting import gpt_params, lstm_params
from scaletrack.models.build import make_config
from scaletrack.models.gpt import GPTConfig
from scaletrack.models.lstm import LSTMConfig

ASPECT_MIN, ASPECT_TARGET, ASPECT_MAX = 16.0, 64.0, 256.0
_ASPECT_WEIGHT = 0.05  # log-aspect penalty relative to log-N error


def head_dim_for(d_model: int) -> int:
    """Head dimension used by the ladder (16, 32 or 64)."""
    if d_model >= 256 and d_model % 64 == 0:
        return 64
    if d_model >= 64 and d_model % 32 == 0:
        return 32
    return 16


def gpt_shape_for(target_n: int, *, context: int = 128, vocab_size: int = 256) -> GPTConfig:
    """GPT config whose non-embedding parameter count is closest to ``target_n``."""
    if target_n < 1000:
        raise ConfigError(f"target parameter count {target_n} is too small for a GPT (min 1000)")
    best: tuple[float, GPTConfig] | None = None
    for n_layer in range(1, 65):
        ideal = math.sqrt(target_n / (12 * n_layer))
        for d_model in {max(16, 16 * math.floor(ideal / 16)), max(16, 16 * math.ceil(ideal / 16))}:
            aspect = d_model / n_layer
            if not ASPECT_MIN <= aspect <= ASPECT_MAX and n_layer > 1:
                continue
            cfg = GPTConfig(
                n_layer=n_layer,
                n_head=d_model // head_dim_for(d_model),
                d_model=d_model,
                context=context,
                vocab_size=vocab_size,
            )
            n = gpt_params(cfg).non_embedding
            score = abs(math.log(n / target_n)) + _ASPECT_WEIGHT * abs(
                math.log(aspect / ASPECT_TARGET)
            )
            if best is None or score < best[0]:
                best = (score, cfg)
    assert best is not None
    return best[1]


def lstm_shape_for(target_n: int, *, context: int = 128, vocab_size: int = 256) -> LSTMConfig:
    """LSTM config whose non-embedding parameter count is closest to ``target_n``."""
    if target_n < 100:
        raise ConfigError(f"target parameter count {target_n} is too small for an LSTM (min 100)")
    best: tuple[float, LSTMConfig] | None = None
    for n_layer in (1, 2, 3, 4):
        ideal = math.sqrt(target_n / (8 * n_layer))
        for d in {max(8, 8 * math.floor(ideal / 8)), max(8, 8 * math.ceil(ideal / 8))}:
            cfg = LSTMConfig(n_layer=n_layer, d_hidden=d, vocab_size=vocab_size, context=context)
            n = lstm_params(cfg).non_embedding
            score = abs(math.log(n / target_n)) + 0.02 * abs(n_layer - 2)
            if best is None or score < best[0]:
                best = (score, cfg)
    assert best is not None
    return best[1]


@overload
def shape_for(family: Literal["gpt"], size: int | Mapping[str, Any], *, context: int = ...,
              vocab_size: int = ...) -> GPTConfig: ...
@overload
def shape_for(family: Literal["lstm"], size: int | Mapping[str, Any], *, context: int = ...,
              vocab_size: int = ...) -> LSTMConfig: ...
@overload
def shape_for(family: str, size: int | Mapping[str, Any], *, context: int = ...,
              vocab_size: int = ...) -> GPTConfig | LSTMConfig: ...
def shape_for(
    family: str,
    size: int | Mapping[str, Any],
    *,
    context: int = 128,
    vocab_size: int = 256,
) -> GPTConfig | LSTMConfig:
    """A config from a target non-embedding count (int) or an explicit shape (dict).

    An explicit shape is validated and completed with ``context`` and ``vocab_size`` where it
    does not give them.
    """
    if isinstance(size, Mapping):
        shape = {"context": context, "vocab_size": vocab_size, **dict(size)}
        return make_config(family, shape)
    if isinstance(size, bool) or not isinstance(size, int):
        raise ConfigError(
            f"model size must be an int parameter count or a shape dict, got {size!r}"
        )
    if family == "gpt":
        return gpt_shape_for(size, context=context, vocab_size=vocab_size)
    if family == "lstm":
        return lstm_shape_for(size, context=context, vocab_size=vocab_size)
    raise ConfigError(f"unknown model family {family!r}; expected 'gpt' or 'lstm'")
