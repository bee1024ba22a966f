"""Character-level LSTM language model (the char-rnn family).

Embedding (vocab -> d_hidden) -> ``n_layer`` stacked LSTM layers -> logits through the
embedding table (tied, no bias). Tying keeps the parameter accounting parallel to the GPT:
embedding parameters are the token table only; everything recurrent is "non-embedding".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LSTMConfig:
    """Shape of a char-level LSTM."""

    n_layer: int = 2
    d_hidden: int = 128
    vocab_size: int = 256
    context: int = 128  # training sequence length (tokens); the LSTM itself has no limit

    def __post_init__(self) -> None:
        for name in ("n_layer", "d_hidden", "vocab_size", "context"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"LSTMConfig.{name} must be a positive integer, got {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class CharLSTM(nn.Module):
    """Token ids (B, T) -> next-token logits (B, T, vocab); state starts at zero per sequence."""

    def __init__(self, cfg: LSTMConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_hidden)
        nn.init.normal_(self.wte.weight, mean=0.0, std=0.02)
        self.lstm = nn.LSTM(cfg.d_hidden, cfg.d_hidden, num_layers=cfg.n_layer, batch_first=True)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx)  # (B, T, h)
        h, _ = self.lstm(x)  # (B, T, h)
        return F.linear(h, self.wte.weight)  # (B, T, vocab)
