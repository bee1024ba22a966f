"""Corrupted checkpoints (truncated, bit-flipped, missing) are caught by their sha256; the run
falls back to an older checkpoint or restarts, says so, and still finishes with the result of an
uninterrupted run. Pickled payloads are refused, never executed."""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.errors import DataError
from scaletrack.models.checkpoint import (
    file_sha256,
    load_checkpoint,
    read_state_dict,
    save_checkpoint,
)
from scaletrack.store import CheckpointRecord, Store
from scaletrack.sweeps.train import TrainConfig, train_run

TOKENS_PER_STEP = 4 * 16


def tiny(**kw) -> TrainConfig:
    base = dict(family="gpt", model={"n_layer": 1, "n_head": 2, "d_model": 16},
                data={"corpus": "stdlib", "max_bytes": 200_000}, context=16, batch_size=4,
                tokens=TOKENS_PER_STEP * 40, lr=3e-3, eval_every=10, eval_batches=2,
                checkpoint_every=10, log_every=5)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # exact comparisons need one thread count throughout
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[float, list[float]]:
    """Final val loss (nats) and train losses of an uninterrupted run."""
    tmp = tmp_path_factory.mktemp("full")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with Store.open(f"sqlite:///{tmp / 's.db'}") as store:
            result = train_run(tiny(), store, "full", tmp / "ck")
            losses = _losses(store, "full")
    finally:
        torch.set_num_threads(before)
    assert result.status == "finished" and result.final_loss is not None
    return result.final_loss, losses


def _losses(store: Store, key: str) -> list[float]:
    return store.metrics([key], ["train/loss"]).sort_values("step")["value"].tolist()


def _stop_at(step: int) -> tuple[threading.Event, Callable[[int, int], None]]:
    stop = threading.Event()
    return stop, lambda s, t: stop.set() if s == step else None


def truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def bit_flip(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) * 2 // 3] ^= 0x10
    path.write_bytes(bytes(raw))


def delete(path: Path) -> None:
    path.unlink()


def _said_so(caplog: pytest.LogCaptureFixture, caught: list, path: str) -> bool:
    texts = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    texts += [str(w.message) for w in caught]
    name = Path(path).name
    return any(name in t or "corrupt" in t.lower() or "sha256" in t.lower() for t in texts)


@pytest.mark.parametrize("damage", [truncate, bit_flip, delete], ids=lambda f: f.__name__)
def test_damaged_latest_checkpoint_falls_back_and_says_so(
    tmp_path: Path, damage: Callable[[Path], None], full_run: tuple[float, list[float]],
    caplog: pytest.LogCaptureFixture, figures: dict,
) -> None:
    full_loss, full_losses = full_run
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        stop, on_step = _stop_at(25)
        first = train_run(tiny(), store, "r", tmp_path / "ck", stop_event=stop, on_step=on_step)
        assert first.status == "interrupted"
        ckpts = store.latest_checkpoints("r")
        assert [c.step for c in ckpts] == [25, 20, 10]
        damage(Path(ckpts[0].path))
        if damage is not delete:
            with pytest.raises(DataError, match="corrupt"):
                load_checkpoint(ckpts[0].path, ckpts[0].sha256)  # the checksum catches it
        caplog.set_level(logging.WARNING)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            resumed = train_run(tiny(), store, "r", tmp_path / "ck")
        assert resumed.status == "finished"
        assert resumed.resumed_from_step == 20  # the previous checkpoint
        assert abs(resumed.final_loss - full_loss) <= 1e-6
        assert _losses(store, "r") == pytest.approx(full_losses, abs=1e-6)
        assert store.get_run("r").status == "finished"
    figures["corrupt checkpoints survived"] = figures.get("corrupt checkpoints survived", 0) + 1
    assert _said_so(caplog, caught, ckpts[0].path), (
        "the fallback from a corrupt checkpoint was silent (no warning naming it)"
    )


def test_every_checkpoint_corrupt_restarts_the_cell(
    tmp_path: Path, full_run: tuple[float, list[float]], caplog: pytest.LogCaptureFixture,
    figures: dict,
) -> None:
    full_loss, full_losses = full_run
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        stop, on_step = _stop_at(25)
        train_run(tiny(), store, "r", tmp_path / "ck", stop_event=stop, on_step=on_step)
        ckpts = store.latest_checkpoints("r")
        for rec, damage in zip(ckpts, [truncate, bit_flip, truncate], strict=True):
            damage(Path(rec.path))
        caplog.set_level(logging.WARNING)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            resumed = train_run(tiny(), store, "r", tmp_path / "ck")
        assert resumed.status == "finished" and resumed.resumed_from_step is None
        assert abs(resumed.final_loss - full_loss) <= 1e-6
        metrics = store.metrics(["r"])
        assert not metrics.duplicated(["name", "step"]).any()
        assert _losses(store, "r") == pytest.approx(full_losses, abs=1e-6)
    figures["corrupt checkpoints survived"] = figures.get("corrupt checkpoints survived", 0) + 3
    assert _said_so(caplog, caught, ckpts[0].path), "restarting the cell was silent"


# ------------------------------------------------------------------------------ weights only


class Payload:
    """Unpickling this writes a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_file(path: Path, marker: Path) -> Path:
    state = {"model": {"w": torch.zeros(2)}, "x": Payload(marker)}
    with open(path, "wb") as fh:
        torch.save(state, fh)
    return path


def test_the_payload_is_live(tmp_path: Path) -> None:
    """Control: loaded the unsafe way, the file does run code (so the refusals below count)."""
    marker = tmp_path / "control-marker"
    evil = _evil_file(tmp_path / "control.pt", marker)
    torch.load(evil, weights_only=False)
    assert marker.exists()


SHAPE = {"n_layer": 1, "n_head": 2, "d_model": 16, "context": 16, "vocab_size": 256,
         "mlp_ratio": 4}


def test_pickled_payload_is_refused_everywhere(tmp_path: Path, figures: dict) -> None:
    marker = tmp_path / "pwned"
    evil = _evil_file(tmp_path / "evil.pt", marker)
    tried = 0

    with pytest.raises(DataError, match="pickled"):  # direct read
        read_state_dict(evil)
    tried += 1
    disguised = _evil_file(tmp_path / "evil.safetensors", marker)  # a pickle named .safetensors
    with pytest.raises(DataError):
        load_checkpoint(disguised)
    with pytest.raises(DataError):
        read_state_dict(disguised)
    tried += 1

    url = f"sqlite:///{tmp_path / 's.db'}"
    runner = CliRunner()
    import json

    added = runner.invoke(app, ["checkpoints", "add", str(evil), "--params", "3000", "--tokens",
                                "6400", "--loader", "gpt", "--meta",
                                json.dumps({"model": SHAPE}), "--store", url])
    assert added.exit_code == 0, added.output
    with Store.open(url) as store:
        ckpt_id = int(store.checkpoints()["id"].iloc[-1])
    result = runner.invoke(app, ["checkpoints", "eval", str(ckpt_id), "--task", "val_loss",
                                 "--store", url])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in (result.stderr or "").splitlines() if ln.strip()]
    assert len(lines) == 1 and "pickled" in lines[0], result.stderr
    tried += 1

    # a run's own checkpoint swapped for a pickle (sha256 updated to match): resume refuses it
    with Store.open(url) as store:
        stop, on_step = _stop_at(10)
        cfg = tiny(tokens=TOKENS_PER_STEP * 20)
        train_run(cfg, store, "r", tmp_path / "ck", stop_event=stop, on_step=on_step)
        (rec,) = store.latest_checkpoints("r")
        _evil_file(Path(rec.path), marker)
        store.add_checkpoint(CheckpointRecord(
            id=None, run_key="r", kind="own", N=rec.N, tokens=rec.tokens, flops=rec.flops,
            step=rec.step, path=rec.path, sha256=file_sha256(rec.path), loader=rec.loader,
            meta=rec.meta,
        ))
        resumed = train_run(cfg, store, "r", tmp_path / "ck")
        assert resumed.status == "finished" and resumed.resumed_from_step is None
    tried += 1
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + tried
    assert not marker.exists(), "a pickled payload was executed"


def test_safe_checkpoint_control(tmp_path: Path) -> None:
    """A genuine checkpoint still loads, with and without its checksum."""
    from scaletrack.models.build import build_model

    model = build_model("gpt", SHAPE)
    path = tmp_path / "ok.safetensors"
    sha = save_checkpoint(path, model)
    assert set(load_checkpoint(path, sha).model) == set(model.state_dict())
    assert set(read_state_dict(path)) == set(model.state_dict())
