"""The training loops give exactly the values recorded in ``tests/data/training_loop_values.json``.

The fixture holds, for tiny runs on the built-in Zipf-words corpus (CPU, one thread, fixed
seeds), every metric row (name, step, value, tokens), each run's final loss and status, each
TrainResult and the sha256 of every checkpoint file: a GPT run, an LSTM run, a diverging run,
a run crashed and resumed, a run stopped and resumed, a cooldown branch off a trunk, a stacked
group of three GPTs (one diverging), the same group crashed and resumed and stopped and
resumed. Floats are stored in full precision (JSON's shortest round-trip form) and compared
bit for bit; a NaN equals a NaN.

It was written by running this file as a script, before the loops were rewritten::

    .venv/bin/python tests/test_training_loop_values.py

Exact equality holds for one build of PyTorch on one CPU kind; on another machine a changed
figure is expected, and the fixture is written again with the command above from a commit
whose losses are trusted.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from scaletrack.store import Store
from scaletrack.sweeps.multi import train_group
from scaletrack.sweeps.train import TrainConfig, TrainResult, plan_run, train_run

pytestmark = pytest.mark.slow  # sixteen tiny runs: about half a minute of CPU

FIXTURE = Path(__file__).parent / "data" / "training_loop_values.json"
DATA = {"corpus": "zipf-words", "max_bytes": 200_000}


def _config(**kw: Any) -> TrainConfig:
    base: dict[str, Any] = dict(
        family="gpt", model={"n_layer": 2, "n_head": 2, "d_model": 32}, data=DATA, context=32,
        batch_size=8, tokens=8 * 32 * 40, lr=3e-3, eval_every=10, eval_batches=2,
        checkpoint_every=10, log_every=4,
    )
    base.update(kw)
    return TrainConfig(**base)


def _crash_at(step_no: int) -> Callable[[int, int], None]:
    def crash(step: int, total: int) -> None:
        if step == step_no:
            raise RuntimeError("simulated crash")
    return crash


def _result(res: TrainResult) -> dict[str, Any]:
    return {"status": res.status, "final_loss": res.final_loss, "steps": res.steps,
            "tokens": res.tokens, "flops": res.flops, "resumed_from_step": res.resumed_from_step}


def _run(store: Store, key: str) -> dict[str, Any]:
    rows = store.metrics([key]).sort_values(["name", "step"])
    run = store.get_run(key)
    assert run is not None
    return {
        "status": run.status,
        "final_loss": run.final_loss,
        "error": run.error,
        "metrics": [[str(r.name), int(r.step), float(r.value),
                     None if pd.isna(r.tokens) else int(r.tokens)]
                    for r in rows.itertuples()],
        "checkpoints": [[c.step, c.tokens, c.flops, c.sha256]
                        for c in store.latest_checkpoints(key)],
    }


def record_values(workdir: Path) -> dict[str, Any]:
    """Train every case in ``workdir`` and return what the fixture holds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    store = Store.open(f"sqlite:///{workdir}/values.db")
    ck = workdir / "ck"
    out: dict[str, Any] = {"results": {}, "runs": {}}
    results = out["results"]
    try:
        cfg = _config()
        results["gpt"] = _result(train_run(cfg, store, "gpt", ck))
        results["lstm"] = _result(train_run(
            _config(family="lstm", model={"n_layer": 1, "d_hidden": 32}, tokens=8 * 32 * 20,
                    log_every=3), store, "lstm", ck))
        results["diverged"] = _result(train_run(_config(lr=1e6, warmup_frac=0.0), store,
                                                "diverged", ck))
        with pytest.raises(RuntimeError, match="simulated"):
            train_run(cfg, store, "crashed", ck, on_step=_crash_at(23))
        results["crashed"] = _result(train_run(cfg, store, "crashed", ck))
        stop = threading.Event()
        results["stopped_first"] = _result(train_run(
            cfg, store, "stopped", ck, stop_event=stop,
            on_step=lambda s, t: stop.set() if s == 17 else None))
        results["stopped"] = _result(train_run(cfg, store, "stopped", ck))

        steps = plan_run(cfg).steps
        trunk = _config(schedule="constant", warmup_steps=4, checkpoint_at=(30,),
                        tokens=8 * 32 * 30, checkpoint_every=1000)
        results["trunk"] = _result(train_run(trunk, store, "trunk", ck))
        branch = _config(schedule="wsd", warmup_steps=4, decay_frac=0.25, cooldown="1-sqrt",
                         branch_from="trunk", branch_step=30, checkpoint_every=1000)
        assert steps == 40
        results["branch"] = _result(train_run(branch, store, "branch", ck))

        group = [_config(seed=0), _config(seed=1, lr=1e-3, weight_decay=0.0),
                 _config(seed=2, lr=float("nan"))]
        results["group"] = [_result(r) for r in train_group(
            group, store, ["g0", "g1", "g2"], ck)]
        keys = ["c0", "c1", "c2"]
        with pytest.raises(RuntimeError, match="simulated"):
            train_group(group, store, keys, ck, on_step=_crash_at(25))
        results["group_crashed"] = [_result(r) for r in train_group(group, store, keys, ck)]
        stop = threading.Event()
        keys = ["s0", "s1", "s2"]
        results["group_stopped_first"] = [_result(r) for r in train_group(
            group, store, keys, ck, stop_event=stop,
            on_step=lambda s, t: stop.set() if s == 13 else None)]
        results["group_stopped"] = [_result(r) for r in train_group(group, store, keys, ck)]
        for key in ("gpt", "lstm", "diverged", "crashed", "stopped", "trunk", "branch",
                    "g0", "g1", "g2", "c0", "c1", "c2", "s0", "s1", "s2"):
            out["runs"][key] = _run(store, key)
    finally:
        store.close()
        torch.set_num_threads(before)
    return out


def _exact(value: Any) -> Any:
    """Floats as their hex form (bit-exact, NaN equal to NaN); containers walked."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else value.hex()
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_exact(v) for v in value]
    return value


@pytest.fixture(scope="module")
def values(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    yield record_values(tmp_path_factory.mktemp("values"))


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def test_results_equal_the_recorded_ones(values: dict[str, Any],
                                         recorded: dict[str, Any]) -> None:
    assert set(values["results"]) == set(recorded["results"])
    for case, expected in recorded["results"].items():
        assert _exact(values["results"][case]) == _exact(expected), case


@pytest.mark.parametrize("key", ["gpt", "lstm", "diverged", "crashed", "stopped", "trunk",
                                 "branch", "g0", "g1", "g2", "c0", "c1", "c2", "s0", "s1",
                                 "s2"])
def test_metric_rows_and_checkpoints_equal_the_recorded_ones(
    values: dict[str, Any], recorded: dict[str, Any], key: str
) -> None:
    got, expected = values["runs"][key], recorded["runs"][key]
    assert got["metrics"], key  # every case logged something
    for field in ("status", "final_loss", "error", "checkpoints"):
        assert _exact(got[field]) == _exact(expected[field]), (key, field)
    assert len(got["metrics"]) == len(expected["metrics"]), key
    for row, want in zip(got["metrics"], expected["metrics"], strict=True):
        assert _exact(row) == _exact(want), (key, row, want)


def test_resumed_runs_equal_uninterrupted_ones(values: dict[str, Any]) -> None:
    runs = values["runs"]
    for resumed, whole in (("crashed", "gpt"), ("stopped", "gpt"), ("c0", "g0"), ("c1", "g1"),
                           ("s0", "g0"), ("s1", "g1")):
        assert _exact(runs[resumed]["metrics"]) == _exact(runs[whole]["metrics"])
        assert _exact(runs[resumed]["final_loss"]) == _exact(runs[whole]["final_loss"])


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        data = record_values(Path(tmp))
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE} ({len(data['runs'])} runs)", file=sys.stderr)
