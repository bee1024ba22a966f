"""Hostile safetensors files: a header that claims more bytes than the file, tensors that claim
terabytes, a header of a million entries. Each is refused from its header alone, before any
tensor is allocated, in one short line."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import save_file

from scaletrack.errors import DataError
from scaletrack.models.checkpoint import (
    check_safetensors_header,
    load_checkpoint,
    read_state_dict,
)

LIMIT = 300  # characters: "one short line"


def _write(path: Path, header: dict, data: bytes = b"", header_len: int | None = None) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if header_len is None else header_len)
                     + raw + data)
    return path


def _refused(path: Path, *words: str) -> str:
    rss = psutil.Process().memory_info().rss
    for reader in (load_checkpoint, read_state_dict):
        with pytest.raises(DataError) as info:
            reader(path)
        message = str(info.value)
        assert "\n" not in message and len(message) <= LIMIT, message[:500]
        for word in words:
            assert word in message, message
    assert psutil.Process().memory_info().rss - rss < 200 * 2**20
    return message


def test_hostile_headers_are_refused_before_allocating(tmp_path: Path, figures: dict) -> None:
    _refused(_write(tmp_path / "long.safetensors", {}, header_len=2**40), "header claims")
    _refused(_write(tmp_path / "tb.safetensors",
                    {"w": {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 2**42]}},
                    b"\0" * 16), "claims bytes")
    _refused(_write(tmp_path / "shape.safetensors",
                    {"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 16]}},
                    b"\0" * 16), "dtype x shape")
    bad = tmp_path / "json.safetensors"
    bad.write_bytes(struct.pack("<Q", 10) + b"{not json}")
    _refused(bad, "malformed safetensors header")
    # a 1.3M-entry header: every entry valid but one, far down; the message stays short
    many = {f"t{i:07d}": {"dtype": "U8", "shape": [1], "data_offsets": [i, i + 1]}
            for i in range(1_300_000)}
    many["z" * 5000] = {"dtype": "U8", "shape": [1], "data_offsets": [0, 2**50]}
    _refused(_write(tmp_path / "many.safetensors", many, b"\0" * 1_300_000), "MiB limit")
    few = dict(list(many.items())[:100_000])  # under the limit: parsed, then refused
    few["z" * 5000] = many["z" * 5000]
    _refused(_write(tmp_path / "few.safetensors", few, b"\0" * 100_000), "claims bytes")
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + 6


def test_a_checkpoint_over_the_memory_budget_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ok.safetensors"
    save_file({"w": torch.zeros(1000)}, str(path))
    assert check_safetensors_header(path) == 4000
    with pytest.raises(DataError, match="more than the"):
        check_safetensors_header(path, memory_budget=1000)
    assert read_state_dict(path)["w"].shape == (1000,)
