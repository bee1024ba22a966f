"""Corpora as token tensors, a fixed validation split, and reproducible batch sampling.

Tokenisation is byte-level (vocab 256) for text; nanoGPT-style ``.bin`` files hold uint16
token ids. A :class:`TokenData` holds a train and a validation tensor:
- text corpora are cut into 64 KiB blocks and every 20th block (5%) goes to validation,
  so validation is spread over the whole corpus, identically on every run;
- a ``.bin`` file with a sibling ``val.bin`` uses that as validation, otherwise the last 5%;
- the synthetic Zipf-words corpus draws its validation text independently.
Batches come from a caller-owned ``torch.Generator``; saving its state lets a resumed run
draw exactly the batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scaletrack.errors import DataError
from scaletrack.models.zipf_words import BUILTIN as ZIPF_WORDS
from scaletrack.models.zipf_words import TRAIN_WORDS, VAL_WORDS

BYTE_VOCAB = 256
VAL_BLOCK_BYTES = 64 * 1024
VAL_EVERY_BLOCKS = 20  # 1 block in 20 -> 5% validation
BUILTIN_CORPORA = ("stdlib", "zipf-words")
STDLIB_MAX_BYTES = 16 * 1024 * 1024  # cap on the built-in corpus (bytes = tokens)
_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", "idlelib", "turtledemo"}


@dataclass(frozen=True)
class TokenData:
    """Token ids of one corpus. ``train``/``val`` are 1-D integer tensors (uint8 or int32)."""

    name: str
    train: torch.Tensor
    val: torch.Tensor
    vocab_size: int

    @property
    def n_train(self) -> int:
        return int(self.train.numel())


def encode(text: str) -> torch.Tensor:
    """UTF-8 bytes of ``text`` as a uint8 tensor (one token per byte)."""
    return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).clone()


def decode(tokens: torch.Tensor | list[int]) -> str:
    """Byte tokens back to text (invalid UTF-8 is replaced)."""
    values = tokens.tolist() if isinstance(tokens, torch.Tensor) else tokens
    return bytes(int(t) for t in values).decode("utf-8", errors="replace")


def split_blocks(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic train/val split: every VAL_EVERY_BLOCKS-th block of VAL_BLOCK_BYTES."""
    n = tokens.numel()
    if n < 2 * VAL_BLOCK_BYTES * VAL_EVERY_BLOCKS:  # small corpus: last 5% is validation
        cut = max(1, int(n * 0.95))
        return tokens[:cut], tokens[cut:]
    block_ids = torch.arange(n) // VAL_BLOCK_BYTES
    is_val = (block_ids % VAL_EVERY_BLOCKS) == VAL_EVERY_BLOCKS - 1
    return tokens[~is_val].clone(), tokens[is_val].clone()


def stdlib_files(root: Path | None = None) -> list[Path]:
    """The standard library's ``.py`` files in a fixed order (sorted relative POSIX paths)."""
    base = Path(root or sysconfig.get_paths()["stdlib"])
    if not base.is_dir():
        raise DataError(f"standard-library folder {base} does not exist")
    files: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for fn in filenames:
            if fn.endswith(".py"):
                path = Path(dirpath) / fn
                files.append((path.relative_to(base).as_posix(), path))
    files.sort()
    return [p for _, p in files]


def _cache_dir() -> Path:
    root = os.environ.get("SCALETRACK_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "scaletrack"
    )
    return Path(root)


def stdlib_tokens(max_bytes: int = STDLIB_MAX_BYTES) -> torch.Tensor:
    """Byte tokens of the stdlib corpus (files concatenated, capped), cached on disk."""
    base = sysconfig.get_paths()["stdlib"]
    key = hashlib.sha256(f"{sys.version}|{base}|{max_bytes}".encode()).hexdigest()[:16]
    cache = _cache_dir() / f"stdlib-{key}.u8"
    if cache.is_file():
        return torch.from_numpy(np.fromfile(cache, dtype=np.uint8))
    chunks: list[bytes] = []
    total = 0
    for path in stdlib_files(Path(base)):
        data = path.read_bytes()
        if b"\0" in data:
            continue
        chunks.append(data)
        total += len(data)
        if total >= max_bytes:
            break
    if not chunks:
        raise DataError(f"no Python source found under the standard library at {base}")
    blob = b"".join(chunks)[:max_bytes]
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(blob)
        os.replace(tmp, cache)
    except OSError:
        pass  # cache is an optimisation only
    return torch.frombuffer(bytearray(blob), dtype=torch.uint8).clone()


def text_tokens(path: Path, max_bytes: int | None = None) -> torch.Tensor:
    """Byte tokens of a text file, or of every non-binary file under a folder (sorted)."""
    if not path.exists():
        raise DataError(f"corpus path {path} does not exist")
    if path.is_file():
        files = [path]
    else:
        files = sorted(
            p for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    chunks, total = [], 0
    for f in files:
        data = f.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary file
        chunks.append(data)
        total += len(data)
        if max_bytes is not None and total >= max_bytes:
            break
    blob = b"".join(chunks)[:max_bytes] if max_bytes else b"".join(chunks)
    if not blob:
        raise DataError(f"corpus {path} holds no text (empty or only binary files)")
    return torch.frombuffer(bytearray(blob), dtype=torch.uint8).clone()


def bin_tokens(path: Path, vocab_size: int | None = None) -> tuple[torch.Tensor, int]:
    """uint16 token ids from a nanoGPT-style ``.bin`` file, as int32, and the vocab size."""
    if not path.is_file():
        raise DataError(f"token file {path} does not exist")
    if path.stat().st_size % 2:
        raise DataError(f"token file {path} has an odd size; expected uint16 tokens")
    arr = np.fromfile(path, dtype=np.uint16)
    if arr.size == 0:
        raise DataError(f"token file {path} is empty")
    top = int(arr.max()) + 1
    if vocab_size is None:
        vocab_size = top
    elif top > vocab_size:
        raise DataError(f"token file {path} holds token id {top - 1} >= vocab_size {vocab_size}")
    return torch.from_numpy(arr.astype(np.int32)), int(vocab_size)


def zipf_words_tokens(max_bytes: int | None = None) -> TokenData:
    """The built-in Zipf-words corpus (see :mod:`scaletrack.models.zipf_words`): independent
    train and validation draws; ``max_bytes`` caps the training tokens."""
    train = ZIPF_WORDS.tokens(TRAIN_WORDS, stream=0)
    if max_bytes is not None:
        train = train[: int(max_bytes)]
    return TokenData("zipf-words", train, ZIPF_WORDS.tokens(VAL_WORDS, stream=1), BYTE_VOCAB)


def load_tokens(spec: Mapping[str, Any]) -> TokenData:
    """Load the corpus a data spec names (see :func:`_load_tokens_cached` for the forms).

    Forms: ``{"corpus": "stdlib" | "zipf-words", "max_bytes": ...}``, ``{"path": file-or-folder}``,
    ``{"tokens": "train.bin", "vocab_size": ...}``, ``{"task": name, "n_examples": ..., ...}``.
    Results are cached per process (keyed by the spec's JSON).
    """
    try:
        key = json.dumps(dict(spec), sort_keys=True)
    except TypeError as exc:
        raise DataError(f"data spec {spec!r} is not JSON-able: {exc}") from exc
    return _load_tokens_cached(key)


@lru_cache(maxsize=8)
def _load_tokens_cached(key: str) -> TokenData:
    spec = json.loads(key)
    if "corpus" in spec:
        if spec["corpus"] == "zipf-words":
            return zipf_words_tokens(spec.get("max_bytes"))
        if spec["corpus"] != "stdlib":
            raise DataError(
                f"unknown built-in corpus {spec['corpus']!r}; expected one of {BUILTIN_CORPORA}"
            )
        toks = stdlib_tokens(int(spec.get("max_bytes", STDLIB_MAX_BYTES)))
        train, val = split_blocks(toks)
        return TokenData("stdlib", train, val, BYTE_VOCAB)
    if "path" in spec:
        path = Path(spec["path"]).expanduser()
        toks = text_tokens(path, spec.get("max_bytes"))
        train, val = split_blocks(toks)
        return TokenData(str(path), train, val, BYTE_VOCAB)
    if "tokens" in spec:
        path = Path(spec["tokens"]).expanduser()
        toks, vocab = bin_tokens(path, spec.get("vocab_size"))
        val_path = path.with_name("val.bin")
        if path.name != "val.bin" and val_path.is_file():
            val, vocab_val = bin_tokens(val_path, spec.get("vocab_size"))
            return TokenData(str(path), toks, val, max(vocab, vocab_val))
        cut = max(1, int(toks.numel() * 0.95))
        return TokenData(str(path), toks[:cut], toks[cut:], vocab)
    if "task" in spec:
        from scaletrack.models.tasks import get_task

        task = get_task(spec["task"])
        text = task.training_text(int(spec.get("n_examples", 20000)), int(spec.get("seed", 0)))
        toks = encode(text)
        train, val = split_blocks(toks)
        return TokenData(f"task:{task.name}", train, val, BYTE_VOCAB)
    raise DataError(
        f"data spec {spec} names no corpus; give one of 'corpus', 'path', 'tokens' or 'task'"
    )


def sample_batch(
    tokens: torch.Tensor, batch_size: int, context: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: inputs and next-token targets, both (batch_size, context) int64."""
    n = tokens.numel()
    if n < context + 2:
        raise DataError(f"corpus of {n} tokens is shorter than context+1 = {context + 1}")
    starts = torch.randint(0, n - context - 1, (batch_size,), generator=generator)
    idx = starts[:, None] + torch.arange(context + 1)  # (B, T+1)
    chunk = tokens[idx].long()
    return chunk[:, :-1], chunk[:, 1:]


def eval_batches(
    tokens: torch.Tensor, n_batches: int, batch_size: int, context: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed validation batches: windows at evenly spaced offsets (same for every run)."""
    n = tokens.numel()
    if n < context + 2:
        raise DataError(f"validation split of {n} tokens is shorter than context+1 = {context + 1}")
    count = n_batches * batch_size
    starts = torch.linspace(0, n - context - 1, count).long()
    idx = starts[:, None] + torch.arange(context + 1)
    chunk = tokens[idx].long()
    xs, ys = chunk[:, :-1], chunk[:, 1:]
    return [
        (xs[i : i + batch_size], ys[i : i + batch_size]) for i in range(0, count, batch_size)
    ]


def unigram_entropy(tokens: torch.Tensor, vocab_size: int) -> float:
    """Entropy of the token frequency distribution, nats/token."""
    counts = torch.bincount(tokens.long(), minlength=vocab_size).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())
