"""The Zipf-words corpus: its vocabulary, its sampled text, and its exact loss floors."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from scaletrack.errors import DataError
from scaletrack.models.data import eval_batches, load_tokens
from scaletrack.models.zipf_words import BUILTIN, ZipfWords


def _windows(text: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    """One (inputs, targets) window over `text`: targets are inputs shifted by one token."""
    ids = torch.tensor(list(text))
    return ids[None, :-1], ids[None, 1:]


def test_vocabulary_is_distinct_short_words_fixed_by_the_seed() -> None:
    source = ZipfWords(types=500)
    words = source.words
    assert len(words) == 500 and len(set(words)) == 500
    assert all(2 <= len(w) <= 7 and w.isalpha() and w.islower() for w in words)
    assert ZipfWords(types=500).words == words
    assert ZipfWords(types=500, seed=1).words != words
    assert source.probabilities.sum() == pytest.approx(1.0)
    assert np.all(np.diff(source.probabilities) < 0)  # most frequent first


def test_sampled_words_follow_the_zipf_probabilities() -> None:
    source = ZipfWords(types=200, exponent=1.2)
    n = 100_000
    text = bytes(source.tokens(n, stream=0).tolist())
    counts = Counter(text.split())
    assert sum(counts.values()) == n and text.endswith(b" ")
    for rank in (0, 1, 5, 50):
        p = source.probabilities[rank]
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(counts[source.words[rank]] - n * p) < 5 * sigma
    # streams are independent draws, each reproducible
    assert torch.equal(source.tokens(1000, stream=1), source.tokens(1000, stream=1))
    assert not torch.equal(source.tokens(1000, stream=0), source.tokens(1000, stream=1))


def test_entropy_rate_matches_the_sampled_text() -> None:
    source = ZipfWords(types=300, exponent=1.3)
    words = bytes(source.tokens(200_000, stream=0).tolist()).split()
    index = {w: i for i, w in enumerate(source.words)}
    nats = -sum(math.log(source.probabilities[index[w]]) for w in words)
    tokens = sum(len(w) + 1 for w in words)
    assert source.entropy_rate() == pytest.approx(nats / tokens, rel=0.01)


def test_floor_after_a_known_word_start_is_each_words_own_surprisal() -> None:
    # a window that opens on a space knows where every word starts: the Bayes loss of each
    # word (its letters and the space that ends it) is exactly -log P(word)
    source = ZipfWords(types=1000)
    picks = [0, 3, 999, 17, 0, 250]
    text = b" " + b"".join(source.words[i] + b" " for i in picks)
    floor = source.bayes_floor([_windows(text)])
    expected = -sum(math.log(source.probabilities[i]) for i in picks)
    assert floor * (len(text) - 1) == pytest.approx(expected, rel=1e-12)


def _brute_force_loss(words: list[bytes], probs: list[float], window: bytes) -> float:
    """Mean loss of the Bayes predictor on one window, by enumerating where it may start:
    every (word, offset) inside a word, weighted P(word), or right on a word's space."""
    starts = []  # (weight, the text from that start: that word's rest, then fresh words)
    for w, p in zip(words, probs, strict=True):
        for offset in range(len(w) + 1):
            starts.append((p, (w + b" ")[offset:]))
    total = 0.0
    for t in range(1, len(window)):
        seen, nxt = window[:t], window[t]
        # P(seen + next) / P(seen), summed over starts: expand each start's continuations
        def mass(prefix: bytes) -> float:
            out = 0.0
            for weight, head in starts:
                out += weight * _continuations(words, probs, head, prefix)
            return out
        total -= math.log(mass(seen + bytes([nxt])) / mass(seen))
    return total / (len(window) - 1)


def _continuations(words: list[bytes], probs: list[float], head: bytes, prefix: bytes) -> float:
    """P(the text after `head` continues so that head + rest starts with `prefix`)."""
    if len(prefix) <= len(head):
        return 1.0 if head.startswith(prefix) else 0.0
    if not prefix.startswith(head):
        return 0.0
    rest = prefix[len(head):]
    return sum(p * _continuations(words, probs, w + b" ", rest)
               for w, p in zip(words, probs, strict=True))


def test_floor_mid_word_matches_brute_force_enumeration() -> None:
    source = ZipfWords(types=4, exponent=1.0, seed=3)
    words, probs = list(source.words), source.probabilities.tolist()
    text = bytes(source.tokens(40, stream=5).tolist())
    for start in (0, 1, 2, 3, 7):
        window = text[start:start + 12]
        expected = _brute_force_loss(words, probs, window)
        assert source.bayes_floor([_windows(window)]) == pytest.approx(expected, rel=1e-9)


def test_floor_refuses_text_the_source_cannot_make() -> None:
    source = ZipfWords(types=50)
    with pytest.raises(DataError, match="cannot produce"):
        source.bayes_floor([_windows(b" " + source.words[0] + b"  ")])
    with pytest.raises(DataError, match="no evaluation windows"):
        source.bayes_floor([])


def test_builtin_corpus_loads_with_an_independent_validation_draw() -> None:
    data = load_tokens({"corpus": "zipf-words", "max_bytes": 100_000})
    assert data.name == "zipf-words" and data.vocab_size == 256
    assert data.n_train == 100_000 and data.val.numel() > 100_000
    source = BUILTIN
    windows = eval_batches(data.val, 2, 4, 32)
    floor = source.bayes_floor(windows)
    # windows open mid-word, so the floor is above the entropy rate, but not by much
    assert source.entropy_rate() < floor < source.entropy_rate() + 0.3


def test_unknown_builtin_corpus_names_the_choices() -> None:
    with pytest.raises(DataError, match="'stdlib', 'zipf-words'"):
        load_tokens({"corpus": "wiki"})
