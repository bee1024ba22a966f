"""Stores for the dashboard's view tests: a sweep run adaptively (its cells' losses follow a
known Chinchilla law with 1 % noise, as in tests/test_adaptive_sweep.py) and an
evaluation-only store (one Pythia model's lm-evaluation-harness files imported)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_adaptive_sweep import GRID, law_loss

from scaletrack.adaptive import AdaptiveSettings, run_adaptive
from scaletrack.store import Store
from scaletrack.sweeps.runner import SweepReport
from scaletrack.workflows import load_grid

SIZES_CSV = Path(__file__).resolve().parents[1] / "examples" / "lm_eval" / "pythia_sizes.csv"
PYTHIA_MODEL = "pythia-160m"  # the folder of one model's files under lm_eval_pythia


def adaptive_store(root: Path, seed: int = 11) -> tuple[str, str]:
    """A store where the test grid ran adaptively to a 1e14-FLOP target: all but its two
    largest cells finished before (a resumed sweep), then cells in the planner's order under a
    budget with room for one more, so it trains one and stops with the budget spent. Cells'
    final losses follow LAW with 1 % noise (recorded as each cell's run finishes). Returns
    (store URL, sweep name)."""
    path = root / "grid.toml"
    path.write_text(GRID)
    grid = load_grid(path)
    url = f"sqlite:///{root / 'adaptive.db'}"
    rng = np.random.default_rng(seed)

    def finish(store: Store, cells) -> None:  # noqa: ANN001
        for cell in cells:
            store.ensure_run(cell.record())
            loss = law_loss(cell.N, cell.D) * float(np.exp(rng.normal(0.0, 0.01)))
            store.finish_run(cell.run_key, "finished", final_loss=loss)

    def run_cells(subgrid):  # noqa: ANN001, ANN202 - the runner's signature
        with Store.open(url) as store:
            finish(store, subgrid.cells)
        return SweepReport(sweep=subgrid.name, total=len(subgrid.cells), already_done=0,
                           results=(), lost_workers=0, interrupted=False, wall_s=0.0)

    by_cost = sorted(grid.cells, key=lambda c: c.spent_flops)
    done, left = by_cost[:-2], by_cost[-2:]
    with Store.open(url) as store:
        store.upsert_sweep(grid.name, grid.stored_spec())
        finish(store, done)
    budget = sum(c.spent_flops for c in done) + max(c.spent_flops for c in left) + 1.0
    run_adaptive(grid, AdaptiveSettings(until_width=1e-3, target_compute=1e14, budget=budget),
                 url, run_cells=run_cells)
    return url, grid.name


def evaluation_only_store(root: Path, shared_data: Path) -> str:
    """One Pythia model's lm-eval results imported: external checkpoints with evals (0- and
    5-shot), no run with a final loss."""
    from typer.testing import CliRunner

    from scaletrack.cli.main import app

    url = f"sqlite:///{root / 'evals.db'}"
    done = CliRunner().invoke(app, [
        "import", "lm-eval", str(shared_data / "lm_eval_pythia" / PYTHIA_MODEL),
        "--sizes", str(SIZES_CSV), "--store", url])
    assert done.exit_code == 0, done.output
    return url
