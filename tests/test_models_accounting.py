"""Parameter and FLOP counts are exact, and the ladder picks sensible shapes."""

from __future__ import annotations

import pytest
import torch

from scaletrack.errors import ConfigError
from scaletrack.models import GPTConfig, LSTMConfig, build_model, count_params, flops_per_token
from scaletrack.models.ladder import shape_for


def _numel(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "shape",
    [dict(n_layer=1, n_head=1, d_model=16), dict(n_layer=3, n_head=4, d_model=64, context=32)],
)
def test_gpt_counts_match_numel(shape: dict) -> None:
    cfg = GPTConfig(**shape)
    model = build_model("gpt", cfg.to_dict())
    counts = count_params(cfg)
    assert counts.total == _numel(model)
    assert counts.embedding == model.wte.weight.numel() + model.wpe.weight.numel()
    assert counts.non_embedding == _numel(model) - counts.embedding


def test_gpt_hand_count() -> None:
    # d=16, L=1, ctx=8, V=256. Block: ln1 32 + qkv 16*48+48 + proj 16*16+16 + ln2 32
    # + fc 16*64+64 + proj 64*16+16 = 3280 = 12*16^2 + 13*16; final LN 32.
    cfg = GPTConfig(n_layer=1, n_head=2, d_model=16, context=8, vocab_size=256)
    counts = count_params(cfg)
    assert counts.non_embedding == 3280 + 32
    assert counts.embedding == 256 * 16 + 8 * 16
    # FLOPs/token, "full" (default): 6 N + 6 L ctx d + 6 d V = 6*3312 + 6*1*8*16 + 6*16*256
    assert flops_per_token(cfg) == 6 * 3312 + 768 + 6 * 16 * 256
    assert flops_per_token(cfg, convention="kaplan") == 6 * 3312 + 768
    assert flops_per_token(cfg, include_logits=False) == 6 * 3312 + 768
    with pytest.raises(ValueError, match="full, kaplan"):
        flops_per_token(cfg, convention="chinchilla")


def test_lstm_counts_match_numel_and_hand_count() -> None:
    cfg = LSTMConfig(n_layer=2, d_hidden=10, vocab_size=256)
    model = build_model("lstm", cfg.to_dict())
    counts = count_params(cfg)
    assert counts.total == _numel(model)
    # per layer: W_ih 40x10 + W_hh 40x10 + two biases of 40 = 880
    assert counts.non_embedding == 2 * 880
    assert counts.embedding == 2560
    assert flops_per_token(cfg) == 6 * 1760 + 6 * 10 * 256
    assert flops_per_token(cfg, convention="kaplan") == 6 * 1760


@pytest.mark.parametrize("target", [100_000, 1_000_000, 5_000_000, 50_000_000])
def test_gpt_ladder_is_close_and_well_shaped(target: int) -> None:
    cfg = shape_for("gpt", target)
    n = count_params(cfg).non_embedding
    assert abs(n / target - 1) < 0.15
    assert 16 <= cfg.head_dim <= 64 and cfg.d_model % cfg.n_head == 0
    assert 16 <= cfg.d_model / cfg.n_layer <= 256


def test_ladder_lstm_and_explicit_shape() -> None:
    cfg = shape_for("lstm", 1_000_000)
    assert abs(count_params(cfg).non_embedding / 1e6 - 1) < 0.1
    explicit = shape_for("gpt", {"n_layer": 2, "n_head": 2, "d_model": 32}, context=64)
    assert explicit == GPTConfig(n_layer=2, n_head=2, d_model=32, context=64)
    with pytest.raises(ConfigError, match="n_head"):
        shape_for("gpt", {"n_layer": 2, "n_head": 3, "d_model": 32})
    with pytest.raises(ConfigError, match="unknown"):
        build_model("gpt", {"n_layers": 2})
    with pytest.raises(ConfigError, match="family"):
        build_model("rnn", {})


def test_models_forward_shapes() -> None:
    idx = torch.randint(0, 256, (3, 20))
    gpt = build_model("gpt", {"n_layer": 1, "n_head": 2, "d_model": 32, "context": 20})
    lstm = build_model("lstm", {"n_layer": 1, "d_hidden": 24})
    assert gpt(idx).shape == (3, 20, 256)
    assert lstm(idx).shape == (3, 20, 256)
    with pytest.raises(ValueError, match="context"):
        gpt(torch.zeros(1, 21, dtype=torch.long))
