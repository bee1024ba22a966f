"""A Ray sweep on SQLite meets a cell held by a dead worker on this host: the cell's task takes
the claim over at once (through the hub's WorkerStore proxy), trains it and finishes."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from services import RayCluster

from scaletrack.store import Store
from scaletrack.sweeps.liveness import holder_is_dead
from scaletrack.sweeps.runner import prepare_sweep
from scaletrack.workflows import load_grid, run_sweep

ray = pytest.importorskip("ray")
from scaletrack.sweeps.executors.ray import RayExecutor  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

GRID = """
name = "ray-takeover"
[data]
path = "{corpus}"
context = 32
[model]
family = "gpt"
sizes = [{{ n_layer = 1, n_head = 1, d_model = 16 }}]
[axes]
tokens = [2560]   # 20 steps of 4 x 32 tokens
[train]
batch_size = 4
[eval]
every = 10
batches = 2
tasks = ["val_loss"]
[checkpoint]
every = 10
"""


def dead_local_worker() -> str:
    """A worker name "host:pid:0" of this host whose process has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{socket.gethostname()}:{proc.pid}:0"


def test_ray_sweep_takes_over_a_cell_whose_local_holder_is_dead(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("every loss of every run goes into the store, step by step. " * 500)
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(GRID.format(corpus=corpus))
    grid = load_grid(grid_file)
    (cell,) = grid.cells
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    holder = dead_local_worker()
    with Store.open(url) as store:
        prepare_sweep(grid, store)
        assert store.claim_run(cell.run_key, holder)  # heartbeat now: fresh, not stale
        held = store.get_run(cell.run_key)
    assert held is not None and held.status == "running" and held.worker == holder
    assert holder_is_dead(holder, held.heartbeat_at)

    # a heartbeat an hour from stale: only the dead-holder check can hand the cell over
    report = run_sweep(grid, url, executor=RayExecutor(address=ray_cluster.address),
                       checkpoint_dir=tmp_path / "ckpt", stale_after_s=3600.0)

    assert [r.status for r in report.results] == ["finished"], report.results
    assert any(f"its worker {holder} is gone; taken over" in n for n in report.notes), \
        report.notes
    with Store.open(url) as store:
        run = store.get_run(cell.run_key)
        steps = store.metrics([cell.run_key], names=["train/loss"])["step"].tolist()
        evals = store.evals()
    assert run is not None and run.status == "finished" and run.final_loss is not None
    assert run.worker != holder and run.worker.startswith("ray:")
    assert run.attempts == 2  # the dead holder's claim, then the take-over
    assert len(steps) == 20 == len(set(steps))  # every step once, none from the dead holder
    assert evals["run_key"].tolist() == [cell.run_key]  # evaluated through the hub
