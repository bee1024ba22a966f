"""Weights-only checkpoints: round trip, sha256 verification, refusal of pickles."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from scaletrack.errors import DataError
from scaletrack.models import build_model
from scaletrack.models.checkpoint import (
    file_sha256,
    load_checkpoint,
    load_checkpoint_model,
    read_state_dict,
    save_checkpoint,
)
from scaletrack.store.records import CheckpointRecord

SHAPE = {"n_layer": 1, "n_head": 2, "d_model": 16, "context": 16}


def _trained(tmp_path: Path) -> tuple[torch.nn.Module, torch.optim.Optimizer, Path, str]:
    torch.manual_seed(0)
    model = build_model("gpt", SHAPE)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 256, (2, 16))
    model(x).sum().backward()
    opt.step()
    gen = torch.Generator().manual_seed(5)
    path = tmp_path / "c.safetensors"
    sha = save_checkpoint(path, model, optimizer=opt, rng={"data": gen.get_state()},
                          meta={"model": SHAPE, "step": 1})
    return model, opt, path, sha


def test_round_trip_restores_model_optimizer_and_rng(tmp_path: Path) -> None:
    model, opt, path, sha = _trained(tmp_path)
    assert sha == file_sha256(path)
    state = load_checkpoint(path, sha)
    assert state.meta == {"model": SHAPE, "step": 1}
    fresh = build_model("gpt", SHAPE)
    fresh.load_state_dict(state.model)
    opt2 = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    opt2.load_state_dict(state.optimizer)
    for a, b in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)
        assert torch.equal(opt.state[a]["exp_avg_sq"], opt2.state[b]["exp_avg_sq"])
    g = torch.Generator()
    g.set_state(state.rng["data"])
    expected = torch.rand(3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.rand(3, generator=g), expected)

    rec = CheckpointRecord(id=1, run_key="r", kind="own", N=1, tokens=1, flops=None, step=1,
                           path=str(path), sha256=sha, loader="gpt", meta={"model": SHAPE})
    loaded = load_checkpoint_model(rec)
    x = torch.randint(0, 256, (1, 8))
    assert torch.equal(loaded(x), model.eval()(x))


def test_corrupt_checkpoint_is_detected(tmp_path: Path) -> None:
    _, _, path, sha = _trained(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="corrupt"):
        load_checkpoint(path, sha)
    rec = CheckpointRecord(id=1, run_key="r", kind="own", N=1, tokens=1, flops=None, step=1,
                           path=str(path), sha256=sha, loader="gpt", meta={"model": SHAPE})
    with pytest.raises(DataError, match="corrupt"):
        load_checkpoint_model(rec)
    with pytest.raises(DataError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")


class Payload:
    def __reduce__(self):  # would run code if unpickled without weights_only
        return (print, ("pwned",))


def test_pickled_payload_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        torch.save({"model": {"w": torch.zeros(2)}, "x": Payload()}, fh, pickle_protocol=2)
    with pytest.raises(DataError, match="pickled"):
        read_state_dict(path)
    ok = tmp_path / "ok.pt"
    torch.save({"w": torch.ones(2)}, ok)
    assert torch.equal(read_state_dict(ok)["w"], torch.ones(2))
