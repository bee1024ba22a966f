"""Cooldown branches on a real local Ray cluster (head + one worker node, 1 CPU each).

A WSD grid of 2 trunks and 6 branches runs through the Ray executor. No branch is submitted
(or starts) before its trunk's checkpoint at the branch step is registered; runs, lineage and
metric rows equal those of the local executor's run of the same grid; a re-run trains nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from services import RayCluster

from scaletrack.store import Store
from scaletrack.sweeps.executors import CellStarted, SweepEvent
from scaletrack.sweeps.executors.local import LocalExecutor
from scaletrack.sweeps.grid import Grid
from scaletrack.workflows import load_grid, run_sweep

pytest.importorskip("ray")
from scaletrack.sweeps.executors.ray import RayExecutor  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

LOSS_TOL = 1e-6  # nats/token


def write_grid(directory: Path) -> Path:
    """2 sizes x 3 budgets (40, 80, 120 steps of 4 x 16 tokens) as WSD cooldown branches: one
    trunk per size runs to 90 steps, each budget's branch cools down from its branch point."""
    grid = directory / "grid.toml"
    grid.write_text(
        """
name = "ray-branches"
[data]
corpus = "stdlib"
context = 16
options = { max_bytes = 200_000 }
[model]
family = "gpt"
sizes = [{ n_layer = 1, n_head = 2, d_model = 16 }, { n_layer = 1, n_head = 2, d_model = 32 }]
[axes]
tokens = [2560, 5120, 7680]
[train]
batch_size = 4
device = "cpu"
[eval]
every = 10
batches = 2
[checkpoint]
every = 1000
[schedule]
kind = "wsd"
branches = true
cooldown = "1-sqrt"
decay_frac = 0.25
"""
    )
    return grid


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Grid:
    grid = load_grid(write_grid(tmp_path_factory.mktemp("ray-branches")))
    roles = sorted(c.role for c in grid.cells)
    assert roles == ["branch"] * 6 + ["trunk"] * 2
    return grid


def outcome(url: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs indexed by run_key, metric rows sorted by run_key, name, step)."""
    with Store.open(url) as store:
        runs = store.runs().set_index("run_key").sort_index()
        rows = store.metrics()
    keys = ["run_key", "name", "step"]
    assert not rows.duplicated(keys).any(), "duplicate (run, name, step) rows"
    return runs, rows[[*keys, "value"]].sort_values(keys).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(grid: Grid, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """The grid trained by the local executor, one worker on one core (torch threads 1, as in
    a 1-CPU Ray task, so losses compare bit for bit)."""
    root = tmp_path_factory.mktemp("local-branches")
    url = f"sqlite:///{root / 'local.db'}"
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        report = run_sweep(grid, url, executor=LocalExecutor(workers=1),
                           checkpoint_dir=root / "ckpt")
    finally:
        os.sched_setaffinity(0, cores)
    assert report.ok and report.trained == len(grid.cells)
    yield outcome(url)


def _epoch(at: datetime) -> float:
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


def test_ray_gates_branches_on_their_trunk_checkpoint(
    grid: Grid, reference: tuple, ray_cluster: RayCluster, tmp_path: Path
) -> None:
    started: dict[str, float] = {}

    class Sink:
        """The runner's display slot: a context manager that is an event sink."""

        def __init__(self, *_: object) -> None:
            pass

        def __enter__(self) -> Sink:
            return self

        def __exit__(self, *_: object) -> None:
            pass

        def __call__(self, event: SweepEvent) -> None:
            if isinstance(event, CellStarted):
                assert event.run_key not in started, f"{event.run_key} started twice"
                started[event.run_key] = event.at

    url = f"sqlite:///{tmp_path / 'ray.db'}"
    executor = RayExecutor(address=ray_cluster.address)
    report = run_sweep(grid, url, executor=executor, checkpoint_dir=tmp_path / "ckpt",
                       display=Sink)
    assert report.ok and report.trained == len(grid.cells), [r.message for r in report.results]
    assert set(started) == set(executor.submitted) == {c.run_key for c in grid.cells}

    # gating: a branch went out only after its trunk registered the branch-point checkpoint
    with Store.open(url) as store:
        for cell in grid.cells:
            if cell.role != "branch":
                continue
            point = next(c for c in store.latest_checkpoints(cell.parent_run_key)
                         if c.step == cell.branch_step)
            saved = _epoch(point.created_at)
            assert executor.submitted[cell.run_key] >= saved, (cell.run_key, cell.branch_step)
            assert started[cell.run_key] >= saved
            # lineage as the grid planned it
            run = store.get_run(cell.run_key)
            assert (run.role, run.parent_run_key, run.branch_step) == (
                "branch", cell.parent_run_key, cell.branch_step)
    trunks = [c.run_key for c in grid.cells if c.role == "trunk"]
    first_branch = min(executor.submitted[c.run_key] for c in grid.cells if c.role == "branch")
    assert first_branch > max(executor.submitted[k] for k in trunks)

    # the same runs, losses and rows as the local executor's
    ref_runs, ref_rows = reference
    runs, rows = outcome(url)
    assert list(runs.index) == list(ref_runs.index)
    assert set(runs["status"]) == {"finished"} and set(runs["attempts"]) == {1}
    assert runs[["role", "parent_run_key", "branch_step"]].equals(
        ref_runs[["role", "parent_run_key", "branch_step"]])
    assert (runs["final_loss"] - ref_runs["final_loss"]).abs().max() <= LOSS_TOL
    assert rows[["run_key", "name", "step"]].equals(ref_rows[["run_key", "name", "step"]])
    assert (rows["value"] - ref_rows["value"]).abs().max() <= LOSS_TOL

    # a re-run trains nothing
    again = run_sweep(grid, url, executor=RayExecutor(address=ray_cluster.address),
                      checkpoint_dir=tmp_path / "ckpt")
    assert again.ok and again.trained == 0 and again.already_done == len(grid.cells)
    gaps = [executor.submitted[c.run_key] - min(executor.submitted.values())
            for c in grid.cells if c.role == "branch"]
    print(f"\nray branches: {len(grid.cells)} cells, branches submitted "
          f"{min(gaps):.1f}-{max(gaps):.1f} s after the first trunk, {len(rows)} rows equal "
          f"to the local run's, sweep {report.wall_s:.1f} s (loaded machine)")
