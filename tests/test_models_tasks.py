"""Synthetic tasks: correct examples, disjoint probe stream, sane metrics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scaletrack.errors import ConfigError
from scaletrack.models import build_model
from scaletrack.models.tasks import TASKS, evaluate_task, get_task


class Oracle(nn.Module):
    """Puts all probability on the true next byte of the probe texts it was given."""

    def __init__(self, texts: list[str]) -> None:
        super().__init__()
        self.table = {t.encode()[:-1]: t.encode()[1:] for t in texts}

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        out = torch.full((*idx.shape, 256), -30.0)
        for b, row in enumerate(idx.tolist()):
            key = bytes(row)
            nxt = next(v for k, v in self.table.items() if key.startswith(k) or k.startswith(key))
            for t, tok in enumerate(nxt[: len(row)]):
                out[b, t, tok] = 30.0
        return out


def test_examples_are_correct() -> None:
    for prompt, answer in get_task("addition").examples(50, 1):
        a, b = prompt[:-1].split("+")
        assert int(answer) == int(a) + int(b) and answer.endswith("\n")
    for prompt, answer in get_task("reversal").examples(20, 1):
        assert prompt[4:-1][::-1] + "\n" == answer
    for prompt, answer in get_task("parity").examples(20, 1):
        assert int(answer) == prompt[4:-1].count("1") % 2
    assert set(TASKS) >= {"addition", "reversal", "parity", "sorting"}
    with pytest.raises(ConfigError, match="unknown task"):
        get_task("nope")


def test_probe_differs_from_training_stream() -> None:
    task = get_task("addition5")
    assert task.probe(20, 0) != task.examples(20, 0)


def test_oracle_scores_perfectly_and_random_model_poorly() -> None:
    task = get_task("addition")
    texts = [p + a for p, a in task.probe(30, 0)]
    perfect = evaluate_task(Oracle(texts), task, n=30, seed=0)
    assert perfect["exact_match"] == 1.0 and perfect["token_accuracy"] == 1.0
    assert perfect["logprob_per_token"] > -1e-6
    torch.manual_seed(0)
    model = build_model("gpt", {"n_layer": 1, "n_head": 1, "d_model": 16, "context": 32})
    rand = evaluate_task(model, "addition", n=30, seed=0)
    assert rand["exact_match"] < 0.1
    assert -7.0 < rand["logprob_per_token"] < -4.0  # near ln(1/256) = -5.5
    assert rand["n"] == 30
