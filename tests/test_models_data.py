"""Corpora, splits and reproducible batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from scaletrack.errors import DataError
from scaletrack.models.data import (
    decode,
    encode,
    eval_batches,
    load_tokens,
    sample_batch,
    stdlib_files,
    unigram_entropy,
)


def test_stdlib_corpus_is_deterministic_and_split() -> None:
    files = stdlib_files()
    assert files == sorted(files, key=lambda p: p.as_posix()) or len(files) > 100
    data = load_tokens({"corpus": "stdlib", "max_bytes": 3_000_000})
    assert data.vocab_size == 256
    n = data.train.numel() + data.val.numel()
    assert n == 3_000_000
    assert 0.04 < data.val.numel() / n < 0.06
    again = load_tokens({"corpus": "stdlib", "max_bytes": 3_000_000})
    assert torch.equal(again.val, data.val)
    assert b"def " in bytes(data.train[:200_000].tolist())
    assert 2.5 < unigram_entropy(data.train, 256) < 5.0


def test_text_folder_and_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello world\n" * 50)
    (tmp_path / "b.bin").write_bytes(b"\0\1\2" * 10)  # binary: skipped
    data = load_tokens({"path": str(tmp_path)})
    assert decode(data.train[:12]) == "hello world\n"
    assert data.train.numel() + data.val.numel() == 600
    with pytest.raises(DataError, match="does not exist"):
        load_tokens({"path": str(tmp_path / "nope")})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds no text"):
        load_tokens({"path": str(empty)})
    with pytest.raises(DataError, match="names no corpus"):
        load_tokens({"foo": 1})


def test_bin_tokens_with_val_file(tmp_path: Path) -> None:
    np.arange(1000, dtype=np.uint16).tofile(tmp_path / "train.bin")
    np.arange(100, dtype=np.uint16).tofile(tmp_path / "val.bin")
    data = load_tokens({"tokens": str(tmp_path / "train.bin")})
    assert data.vocab_size == 1000 and data.train.numel() == 1000 and data.val.numel() == 100
    with pytest.raises(DataError, match="vocab_size"):
        load_tokens({"tokens": str(tmp_path / "train.bin"), "vocab_size": 500})
    (tmp_path / "odd.bin").write_bytes(b"\1\2\3")
    with pytest.raises(DataError, match="odd size"):
        load_tokens({"tokens": str(tmp_path / "odd.bin")})


def test_batches_follow_the_generator_state() -> None:
    toks = encode("abcdefghijklmnopqrstuvwxyz" * 40)
    g = torch.Generator().manual_seed(3)
    sample_batch(toks, 4, 8, g)
    saved = g.get_state()
    x1, y1 = sample_batch(toks, 4, 8, g)
    g2 = torch.Generator()
    g2.set_state(saved)
    x2, y2 = sample_batch(toks, 4, 8, g2)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert torch.equal(x1[:, 1:], y1[:, :-1])
    batches = eval_batches(toks, 3, 4, 8)
    assert len(batches) == 3 and batches[0][0].shape == (4, 8)
    with pytest.raises(DataError, match="shorter"):
        sample_batch(toks[:5], 1, 8, g)
