"""Grids and sweeps with the evaluation layer wired in: what `scaletrack.load_grid` and
`scaletrack.run_sweep` are.

`scaletrack.sweeps` trains and knows nothing of evaluations or ideas (it sits below them);
this module composes the layers: a grid's eval task names are checked against the task
registry, each checkpoint a cell registers is evaluated on the grid's tasks in the worker that
trained it (local processes and Ray tasks alike), and the "not yet" ideas that a new, larger
checkpoint makes due are re-checked after each finished cell. When a sweep has finished, the
dashboard's scaling fits of its runs are saved in the store's fit cache (`scaling_fits`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaletrack.errors import ScaletrackError
from scaletrack.evals.evaluate import resolve_task
from scaletrack.evals.hooks import evaluate_new_checkpoint, idea_rechecker
from scaletrack.scaling_fits import cache_scaling_fits
from scaletrack.store import Store, resolve_store_url
from scaletrack.sweeps.grid import load_grid as load_sweep_grid
from scaletrack.sweeps.runner import run_sweep as run_grid

if TYPE_CHECKING:
    from scaletrack.sweeps.executors import Executor
    from scaletrack.sweeps.grid import Cell, Grid
    from scaletrack.sweeps.runner import SweepReport

log = logging.getLogger(__name__)


def load_grid(path: str | Path) -> Grid:
    """Read, validate and expand a grid file (TOML), eval task names included.

    Nothing is written anywhere; any problem is a ConfigError naming the field.
    """
    return load_sweep_grid(path, check_task=resolve_task)


def run_sweep(
    grid: Grid | str | Path,
    store_url: str | None = None,
    *,
    workers: int | None = None,
    executor: str | Executor | None = None,
    address: str | None = None,
    checkpoint_dir: str | Path | None = None,
    stale_after_s: float = 60.0,
    display: Callable[[Grid, list[Cell], int], Any] | None = None,
    recheck_ideas: bool = True,
) -> SweepReport:
    """Train every unfinished cell of `grid` (a Grid or a grid file), evaluate, re-check ideas.

    Resumable and idempotent: finished cells are skipped, interrupted ones resume from their
    last checkpoint. `workers`, `executor` ("local" | "ray" | an Executor) and `address` (a
    Ray cluster HOST:PORT) override the grid's [executor] table; `store_url` defaults to
    $SCALETRACK_STORE, else sqlite:///scaletrack.db. The grid's [eval] tasks run on each
    cell's checkpoints; with `recheck_ideas`, each finished cell re-runs the ideas its
    checkpoint made due. `display(grid, todo, done)` returns a context manager that is also
    an event sink (see `scaletrack.sweeps.runner.SweepDisplay`); None = silent.
    """
    if isinstance(grid, (str, Path)):
        grid = load_grid(grid)
    report = run_grid(
        grid,
        store_url,
        workers=workers,
        executor=executor,
        address=address,
        checkpoint_dir=checkpoint_dir,
        stale_after_s=stale_after_s,
        display=display,
        after_checkpoint=evaluate_new_checkpoint,
        after_cell=idea_rechecker if recheck_ideas else None,
    )
    if not report.unfinished and not report.interrupted and report.store_error is None:
        _cache_scaling_fits(store_url, report.sweep)
    return report


def _cache_scaling_fits(store_url: str | None, sweep: str) -> None:
    """Save the dashboard's scaling fits of a finished sweep (a failure only costs the view
    its cache: it fits by itself then)."""
    try:
        with Store.open(resolve_store_url(store_url)) as store:
            cache_scaling_fits(store, sweep)
    except ScaletrackError as exc:
        log.warning("sweep %s: scaling fits not cached: %s", sweep, exc)
