"""Synthetic algorithmic tasks for emergence studies, and their evaluation probes.

Each task makes examples ``prompt + answer`` where the answer ends with a newline, e.g.
addition ``"123+45=168\n"``. Training text is many examples, one per line. The probe scores a
model on fresh examples (a different random stream from training) with two metrics:
- ``exact_match``: fraction whose answer greedy decoding reproduces exactly. Greedy decoding
  reproduces the answer iff, with the true answer fed in, every answer position's argmax is
  the true next token; so it is computed in one teacher-forced pass.
- ``logprob_per_token``: mean log-probability of the answer tokens, nats/token (<= 0);
  the smooth counterpart of exact match. ``token_accuracy`` is the per-token argmax rate.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from scaletrack.errors import ConfigError

_EVAL_STREAM = 0x5EED_0000  # offset so probe examples use a different stream from training


@dataclass(frozen=True)
class Task:
    """A named generator of (prompt, answer) pairs."""

    name: str
    description: str
    make_example: Callable[[random.Random], tuple[str, str]]

    def examples(self, n: int, seed: int) -> list[tuple[str, str]]:
        rng = random.Random(seed)
        return [self.make_example(rng) for _ in range(n)]

    def training_text(self, n: int, seed: int = 0) -> str:
        """``n`` examples, one per line."""
        return "".join(p + a for p, a in self.examples(n, seed))

    def probe(self, n: int, seed: int = 0) -> list[tuple[str, str]]:
        """``n`` evaluation examples, drawn from a stream disjoint from ``training_text``'s."""
        return self.examples(n, _EVAL_STREAM + seed)


def _addition(max_digits: int) -> Callable[[random.Random], tuple[str, str]]:
    def make(rng: random.Random) -> tuple[str, str]:
        a = rng.randrange(10 ** rng.randint(1, max_digits))
        b = rng.randrange(10 ** rng.randint(1, max_digits))
        return f"{a}+{b}=", f"{a + b}\n"

    return make


def _reversal(max_len: int) -> Callable[[random.Random], tuple[str, str]]:
    letters = "abcdefghijklmnopqrstuvwxyz"

    def make(rng: random.Random) -> tuple[str, str]:
        s = "".join(rng.choice(letters) for _ in range(rng.randint(2, max_len)))
        return f"rev {s}=", f"{s[::-1]}\n"

    return make


def _parity(max_len: int) -> Callable[[random.Random], tuple[str, str]]:
    def make(rng: random.Random) -> tuple[str, str]:
        bits = "".join(rng.choice("01") for _ in range(rng.randint(2, max_len)))
        return f"par {bits}=", f"{bits.count('1') % 2}\n"

    return make


def _sorting(max_len: int) -> Callable[[random.Random], tuple[str, str]]:
    def make(rng: random.Random) -> tuple[str, str]:
        digits = [rng.choice("0123456789") for _ in range(rng.randint(2, max_len))]
        return f"sort {''.join(digits)}=", f"{''.join(sorted(digits))}\n"

    return make


TASKS: dict[str, Task] = {
    "addition": Task("addition", "sum of two integers of 1-3 digits", _addition(3)),
    "addition5": Task("addition5", "sum of two integers of 1-5 digits", _addition(5)),
    "reversal": Task("reversal", "reverse a string of 2-8 lowercase letters", _reversal(8)),
    "parity": Task("parity", "parity of a bit string of 2-12 bits", _parity(12)),
    "sorting": Task("sorting", "sort 2-8 decimal digits", _sorting(8)),
}


def get_task(task: str | Task) -> Task:
    """A registered task by name (or the task itself)."""
    if isinstance(task, Task):
        return task
    try:
        return TASKS[task]
    except KeyError:
        raise ConfigError(f"unknown task {task!r}; known tasks: {sorted(TASKS)}") from None


def _model_context(model: nn.Module) -> int | None:
    cfg = getattr(model, "config", None)
    return getattr(cfg, "context", None) if cfg is not None else None


@torch.no_grad()
def evaluate_task(
    model: nn.Module,
    task: str | Task,
    n: int = 200,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
) -> dict[str, float]:
    """Score ``model`` (ids (B,T) -> logits (B,T,V)) on ``n`` probe examples of ``task``.

    Returns ``exact_match`` and ``token_accuracy`` (fractions in [0, 1]) and
    ``logprob_per_token`` (nats/token, mean over all answer tokens), plus ``n``.
    """
    t = get_task(task)
    pairs = t.probe(n, seed)
    ctx = _model_context(model)
    was_training = model.training
    model.eval()
    exact = correct_tokens = answer_tokens = 0
    logprob_sum = 0.0
    try:
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i : i + batch_size]
            seqs = [(p + a).encode() for p, a in chunk]
            n_prompt = [len(p.encode()) for p, _ in chunk]
            length = max(len(s) for s in seqs)
            if ctx is not None and length - 1 > ctx:
                raise ConfigError(
                    f"task {t.name!r} examples ({length} tokens) exceed the model context {ctx}"
                )
            ids = torch.zeros(len(seqs), length, dtype=torch.long)
            mask = torch.zeros(len(seqs), length - 1, dtype=torch.bool)  # answer target positions
            for j, s in enumerate(seqs):
                ids[j, : len(s)] = torch.tensor(list(s))
                mask[j, n_prompt[j] - 1 : len(s) - 1] = True
            ids = ids.to(device)
            mask = mask.to(device)
            logits = model(ids[:, :-1]).float()  # (B, L-1, V)
            targets = ids[:, 1:]
            logp = F.log_softmax(logits, dim=-1).gather(-1, targets[..., None])[..., 0]
            hit = (logits.argmax(-1) == targets) | ~mask
            exact += int(hit.all(dim=1).sum())
            correct_tokens += int((hit & mask).sum())
            answer_tokens += int(mask.sum())
            logprob_sum += float((logp * mask).sum())
    finally:
        model.train(was_training)
    return {
        "exact_match": exact / len(pairs),
        "token_accuracy": correct_tokens / answer_tokens,
        "logprob_per_token": logprob_sum / answer_tokens,
        "n": float(len(pairs)),
    }
