"""A synthetic corpus whose best possible loss is known: Zipf-distributed words.

The source has a fixed vocabulary of ``types`` random lowercase words (2 to 7 letters, fixed by
``seed``). Words are drawn independently, the word of frequency rank r with probability
proportional to r^-exponent, and written separated by single spaces, one byte per token.

A model learns the frequent words first and the rare ones only with more parameters (to hold
them) and more tokens (to see them), so its loss falls with both towards a floor that, unlike
for natural text, is known exactly:

- :meth:`ZipfWords.entropy_rate`: H(word) / E[tokens per word], in nats/token: the loss of the
  best predictor that sees the whole past;
- :meth:`ZipfWords.bayes_floor`: the best possible mean loss on given evaluation windows. A
  window that starts inside a word does not know where that word began, so its first tokens
  cost more than the entropy rate; the floor accounts for that exactly.

A Chinchilla fit's E estimates this floor, which makes the corpus a check on the fit itself.
Train and validation text are independent draws (streams 0 and 1 of the seed), so no
validation window crosses a seam.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from scaletrack.errors import DataError

ZIPF_TYPES = 16_384  # distinct words
ZIPF_EXPONENT = 1.5  # P(rank r) proportional to r^-exponent
MIN_LETTERS, MAX_LETTERS = 2, 7
LETTERS = b"abcdefghijklmnopqrstuvwxyz"
SEPARATOR = ord(" ")
TRAIN_WORDS = 2_000_000  # ~12.8M tokens at the default exponent
VAL_WORDS = 40_000  # ~255k tokens


@dataclass(frozen=True)
class ZipfWords:
    """The word source: vocabulary, probabilities, sampled text and its exact loss floor."""

    types: int = ZIPF_TYPES
    exponent: float = ZIPF_EXPONENT
    seed: int = 0

    @cached_property
    def words(self) -> tuple[bytes, ...]:
        """The vocabulary, most frequent first (distinct random words of 2-7 letters)."""
        rng = np.random.default_rng([self.seed, 2])  # streams 0 and 1 are train and val text
        seen: dict[bytes, None] = {}
        while len(seen) < self.types:
            lengths = rng.integers(MIN_LETTERS, MAX_LETTERS + 1, size=self.types)
            letters = rng.integers(0, len(LETTERS), size=(self.types, MAX_LETTERS))
            for length, row in zip(lengths, letters, strict=True):
                seen.setdefault(bytes(LETTERS[i] for i in row[:length]), None)
                if len(seen) == self.types:
                    break
        return tuple(seen)

    @cached_property
    def probabilities(self) -> np.ndarray:
        """P(word), in the order of :attr:`words`."""
        p = np.arange(1, self.types + 1, dtype=float) ** -self.exponent
        return p / p.sum()

    def tokens(self, n_words: int, stream: int) -> torch.Tensor:
        """``n_words`` independent words of one stream as byte tokens (uint8), each followed
        by a space."""
        rng = np.random.default_rng([self.seed, stream])
        picks = rng.choice(self.types, size=n_words, p=self.probabilities)
        spaced = [w + b" " for w in self.words]
        text = b"".join(spaced[i] for i in picks)
        return torch.frombuffer(bytearray(text), dtype=torch.uint8).clone()

    def entropy_rate(self) -> float:
        """Nats/token of the best predictor with unbounded context: H(word) over the mean
        tokens per word (letters plus the space). Exact: spaces make the text decodable."""
        p = self.probabilities
        lengths = np.array([len(w) + 1 for w in self.words], dtype=float)
        return float(-(p * np.log(p)).sum() / (p * lengths).sum())

    @cached_property
    def _tables(self) -> tuple[dict[bytes, dict[int, float]], dict[bytes, dict[int, float]]]:
        # prefix[c][x]: weight of next token x after a known word start and letters c;
        # inner[u][x]: weight of x after letters u seen from an unknown place in a word
        # (each (word, offset) has stationary weight P(word); normalising cancels the rest)
        prefix: dict[bytes, dict[int, float]] = defaultdict(lambda: defaultdict(float))
        inner: dict[bytes, dict[int, float]] = defaultdict(lambda: defaultdict(float))
        for word, p in zip(self.words, self.probabilities.tolist(), strict=True):
            spelled = word + b" "
            for j in range(len(word) + 1):
                prefix[word[:j]][spelled[j]] += p
            for start in range(len(word)):
                for end in range(start + 1, len(word) + 1):
                    inner[word[start:end]][spelled[end]] += p
        return prefix, inner

    def bayes_floor(self, windows: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
        """The lowest mean loss (nats/token) any model can have on these evaluation windows:
        each (inputs, targets) pair is (batch, context) as from ``models.data.eval_batches``.

        At each position the Bayes predictor knows the source: after a space it knows the
        current word's prefix; before the window's first space it weighs every (word, offset)
        consistent with the letters seen so far.
        """
        prefix, inner = self._tables
        total, count = 0.0, 0
        for inputs, targets in windows:
            for xs, ys in zip(inputs.tolist(), targets.tolist(), strict=True):
                seen = bytes(xs)
                last_space = -1
                for t, y in enumerate(ys):
                    if xs[t] == SEPARATOR:
                        last_space = t
                    if last_space >= 0:
                        table = prefix.get(seen[last_space + 1 : t + 1], {})
                    else:
                        table = inner.get(seen[: t + 1], {})
                    weight = table.get(y, 0.0)
                    if weight <= 0.0:
                        raise DataError(
                            f"evaluation window holds text this source cannot produce: "
                            f"{seen[: t + 1]!r} then {bytes([y])!r}"
                        )
                    total -= math.log(weight / sum(table.values()))
                    count += 1
        if count == 0:
            raise DataError("no evaluation windows given")
        return total / count


# The built-in corpus (`[data] corpus = "zipf-words"`): one instance, so its vocabulary and
# floor tables are built once per process for loading the text and for its floor.
BUILTIN = ZipfWords()
