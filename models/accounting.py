"""Exact parameter counts and training FLOPs per token, computed from a model config.

Conventions (Kaplan et al. 2020, "Scaling Laws for Neural Language Models", Table 1):
- ``N`` (non-embedding parameters) excludes the token table and the position table; it
  includes every weight, bias and LayerNorm gain/shift in the blocks and the final LayerNorm.
  The output head is tied to the token table, so it adds no parameters.
- Training FLOPs per token = 3 x forward (backward costs twice the forward), with the forward
  = 2 N (one multiply-add per parameter) + 2 n_layer context d_model (attention scores and
  weighted sum at full context) + 2 d_model vocab (the output layer's logits: the tied head
  is not in N but its matmul is real work). The convention is a named option,
  ``FLOP_CONVENTIONS``: "full" (the default) = ``6 N + 6 n_layer context d_model + 6 d_model
  vocab``; "kaplan" = the same without the logit term, as Kaplan et al. count (Porian et al.
  2024 show that leaving it out is part of the Kaplan-Chinchilla disagreement: it
  undercounts small models most). Embedding lookups, softmax and LayerNorm are not counted.
- LSTM: forward = 2 N (every recurrent weight is used once per token per layer; the biases
  and elementwise gate maths are < 1%), training 6 N; there is no attention term.
All counts are per token; FLOPs are floating-point operations (a multiply-add is 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from scaletrack.models.gpt import GPTConfig
from scaletrack.models.lstm import LSTMConfig


@dataclass(frozen=True)
class ParamCount:
    """Parameters of a model: ``total`` = ``non_embedding`` + ``embedding``."""

    total: int
    non_embedding: int
    embedding: int


def gpt_params(cfg: GPTConfig) -> ParamCount:
    """Exact parameter count of :class:`models.gpt.GPT`."""
    d, f = cfg.d_model, cfg.mlp_ratio * cfg.d_model
    ln = 2 * d  # gain + shift
    attn = (d * 3 * d + 3 * d) + (d * d + d)  # qkv + output projection, with biases
    mlp = (d * f + f) + (f * d + d)
    block = 2 * ln + attn + mlp  # = 12 d^2 + 13 d for mlp_ratio 4
    non_embedding = cfg.n_layer * block + ln  # + final LayerNorm
    embedding = cfg.vocab_size * d + cfg.context * d
    return ParamCount(non_embedding + embedding, non_embedding, embedding)


def lstm_params(cfg: LSTMConfig) -> ParamCount:
    """Exact parameter count of :class:`models.lstm.CharLSTM` (PyTorch keeps two bias vectors)."""
    h = cfg.d_hidden
    per_layer = 4 * h * h + 4 * h * h + 4 * h + 4 * h  # W_ih, W_hh, b_ih, b_hh
    non_embedding = cfg.n_layer * per_layer
    embedding = cfg.vocab_size * h
    return ParamCount(non_embedding + embedding, non_embedding, embedding)


FLOP_CONVENTIONS = {
    "full": "6N + attention + output-layer logits (6·d_model·vocab) per token",
    "kaplan": "6N + attention per token (Kaplan et al. 2020: output layer not counted)",
}
DEFAULT_FLOP_CONVENTION = "full"


def check_flop_convention(name: str) -> str:
    """Return `name` if it is one of FLOP_CONVENTIONS, else raise ValueError naming them."""
    if name not in FLOP_CONVENTIONS:
        raise ValueError(f"FLOP convention must be one of {', '.join(FLOP_CONVENTIONS)}; "
                         f"got {name!r}")
    return name


def _logits(include_logits: bool | None, convention: str) -> bool:
    if include_logits is not None:
        return bool(include_logits)
    return check_flop_convention(convention) == "full"


def gpt_flops_per_token(cfg: GPTConfig, *, include_logits: bool | None = None,
                        convention: str = DEFAULT_FLOP_CONVENTION) -> float:
    """Training FLOPs per token: 6 N + 6 n_layer context d_model, plus 6 d_model vocab under
    the "full" convention (see module docstring); `include_logits` overrides it."""
    include_logits = _logits(include_logits, convention)
    n = gpt_params(cfg).non_embedding
    flops = 6 * n + 6 * cfg.n_layer * cfg.context * cfg.d_model
    if include_logits:
        flops += 6 * cfg.d_model * cfg.vocab_size
    return float(flops)


def lstm_flops_per_token(cfg: LSTMConfig, *, include_logits: bool | None = None,
                         convention: str = DEFAULT_FLOP_CONVENTION) -> float:
    """Training FLOPs per token of the LSTM: 6 N, plus 6 d_hidden vocab under "full"."""
    include_logits = _logits(include_logits, convention)
    flops = 6 * lstm_params(cfg).non_embedding
    if include_logits:
        flops += 6 * cfg.d_hidden * cfg.vocab_size
    return float(flops)


def count_module_params(module: nn.Module, *, embedding: Sequence[str] = ()) -> ParamCount:
    """Parameter count of any ``torch.nn.Module``, by the convention above.

    Embedding parameters are those of every ``nn.Embedding`` / ``nn.EmbeddingBag`` inside it,
    plus the parameters named in ``embedding`` (a learned position table kept as a bare
    ``nn.Parameter``, say: ``embedding=("pos_emb",)``; a name also covers what lies under it).
    Everything else counts in N, an untied output head included. A parameter shared between
    modules (a tied head) is counted once.
    """
    unknown = [name for name in embedding if not any(
        p == name or p.startswith(name + ".") for p, _ in module.named_parameters())]
    if unknown:
        raise ValueError(f"no parameter named {unknown[0]!r} in {type(module).__name__}")
    table_ids = {id(p) for m in module.modules()
                 if isinstance(m, nn.Embedding | nn.EmbeddingBag) for p in m.parameters()}
    total = emb = 0
    seen: set[int] = set()
    for name, param in module.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        if id(param) in table_ids or any(name == e or name.startswith(e + ".")
                                          for e in embedding):
            emb += param.numel()
    return ParamCount(total, total - emb, emb)


def count_params(model: GPTConfig | LSTMConfig | nn.Module) -> ParamCount:
    """Parameter count of a built-in family's config, or of any ``torch.nn.Module``."""
    if isinstance(model, GPTConfig):
        return gpt_params(model)
    if isinstance(model, LSTMConfig):
        return lstm_params(model)
    if isinstance(model, nn.Module):
        return count_module_params(model)
    raise TypeError(f"no parameter accounting for {type(model).__name__}")


def flops_per_token(cfg: GPTConfig | LSTMConfig, *, include_logits: bool | None = None,
                    convention: str = DEFAULT_FLOP_CONVENTION) -> float:
    """Training FLOPs per token for either family's config, under `convention` (one of
    FLOP_CONVENTIONS; `include_logits` overrides it)."""
    if isinstance(cfg, GPTConfig):
        return gpt_flops_per_token(cfg, include_logits=include_logits, convention=convention)
    if isinstance(cfg, LSTMConfig):
        return lstm_flops_per_token(cfg, include_logits=include_logits, convention=convention)
    raise TypeError(f"no FLOP accounting for {type(cfg).__name__}")
