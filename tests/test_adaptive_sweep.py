"""Adaptive sweeps: cells in the planner's order, a refit after each, a stop of their own
(band narrow enough, or budget spent), every decision recorded in the store and shown by
`sweep status`."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from scaletrack.adaptive import DECISION_FORM, AdaptiveSettings, decisions, run_adaptive
from scaletrack.analysis.plan import expected_band_width
from scaletrack.cli.main import app
from scaletrack.number_format import fmt_number
from scaletrack.planning import fit_points, load_points
from scaletrack.store import Store
from scaletrack.workflows import load_grid, run_sweep

runner = CliRunner()

# A Chinchilla law with losses in the range tiny GPTs reach (nats/token), and 1 % noise
LAW = {"E": 1.2, "A": 40.0, "alpha": 0.4, "B": 100.0, "beta": 0.4}
NOISE_SEED = 7

GRID = """
name = "adaptive-test"
[data]
corpus = "zipf-words"
context = 32
[model]
family = "gpt"
sizes = [
  { n_layer = 1, n_head = 1, d_model = 16 },
  { n_layer = 1, n_head = 2, d_model = 32 },
  { n_layer = 2, n_head = 2, d_model = 48 },
]
[axes]
tokens = [16_384, 32_768, 65_536, 131_072]
[train]
batch_size = 32
[plan]
target_compute = 1e14
"""


def law_loss(n: float, d: float) -> float:
    return LAW["E"] + LAW["A"] / n ** LAW["alpha"] + LAW["B"] / d ** LAW["beta"]


@pytest.fixture()
def half_done(tmp_path):
    """The grid with all but its largest cell recorded as finished runs whose losses follow
    LAW with 1 % noise (as a sweep resumed after most of its cells would be)."""
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    grid = load_grid(path)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    rng = np.random.default_rng(NOISE_SEED)
    largest = max(grid.cells, key=lambda c: c.C)
    with Store.open(url) as store:
        store.upsert_sweep(grid.name, grid.stored_spec())
        for cell in grid.cells:
            if cell is largest:
                continue
            store.ensure_run(cell.record())
            loss = law_loss(cell.N, cell.D) * float(np.exp(rng.normal(0.0, 0.01)))
            store.finish_run(cell.run_key, "finished", final_loss=loss)
    return grid, url, largest


def no_training(subgrid):
    raise AssertionError(f"trained {[c.label for c in subgrid.cells]} after it should stop")


def test_stops_without_training_when_the_band_is_narrow_enough(half_done):
    grid, url, largest = half_done
    with Store.open(url) as store:
        points = load_points(store=store, sweep=grid.name)
    fit = fit_points(points)
    assert fit is not None
    width = expected_band_width(fit, target_flops=1e14, seed=0, flops_per_token=None)
    assert np.isfinite(width) and width > 0
    report = run_adaptive(grid, AdaptiveSettings(until_width=min(0.99, 2 * width),
                                                 target_compute=1e14), url,
                          run_cells=no_training)
    assert report.trained == 0 and "band at the target" in report.stopped
    assert report.width is not None and report.width <= 2 * width
    with Store.open(url) as store:
        recorded = decisions(store, grid.name)
        assert store.get_run(largest.run_key) is None  # never run
    assert [r["action"] for r in recorded] == ["stop"]
    assert recorded[0]["skipped"] == [f"{largest.size_label} D={fmt_number(largest.D)}"]
    assert recorded[0]["width"] == pytest.approx(report.width)


def test_stops_when_the_budget_is_spent(half_done):
    grid, url, largest = half_done
    spent = sum(c.spent_flops for c in grid.cells if c is not largest)
    settings = AdaptiveSettings(until_width=1e-4, target_compute=1e14,
                                budget=spent + 0.5 * largest.spent_flops)
    report = run_adaptive(grid, settings, url, run_cells=no_training)
    assert report.trained == 0 and report.stopped.startswith("budget spent")
    assert report.spent_flops == pytest.approx(spent)
    assert report.full_flops == pytest.approx(spent + largest.spent_flops)


TINY = """
name = "tiny-adaptive"
[data]
corpus = "zipf-words"
context = 32
[model]
family = "gpt"
sizes = [{ n_layer = 1, n_head = 1, d_model = 16 }, { n_layer = 1, n_head = 2, d_model = 32 }]
[axes]
tokens = [4_096, 8_192]
[train]
batch_size = 8
[eval]
every = 8
batches = 2
[checkpoint]
every = 1000
"""


@pytest.mark.slow
def test_adaptive_cpu_sweep_stops_on_its_own_and_records_its_decisions(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    grid = load_grid(path)
    costs = sorted(c.spent_flops for c in grid.cells)
    budget = costs[0] + costs[1] + 1.0  # room for two cells, not three
    url = f"sqlite:///{tmp_path / 'tiny.db'}"
    res = runner.invoke(app, ["sweep", "run", str(path), "--store", url, "--until-width", "2%",
                              "--target-compute", "1e13", "--budget", f"{budget!r}"])
    assert res.exit_code == 0, res.output
    assert "stop: budget spent" in res.output
    with Store.open(url) as store:
        recorded = decisions(store, grid.name)
        runs = store.runs(sweep=grid.name)
        stored = store.fits(DECISION_FORM)
    ran = [r for r in recorded if r["action"] == "run"]
    assert len(ran) == 2 and recorded[-1]["action"] == "stop"
    finished = set(runs.loc[runs["status"] == "finished", "run_key"])
    assert {r["run_key"] for r in ran} == finished
    assert recorded[-1]["spent_flops"] <= budget
    assert len(recorded[-1]["skipped"]) == len(grid.cells) - 2
    assert set(stored["sweep"]) == {grid.name}

    res = runner.invoke(app, ["sweep", "status", grid.name, "--store", url])
    assert res.exit_code == 0, res.output
    assert "adaptive decisions" in res.output and "budget spent" in res.output

    # run again: the sweep resumes, trains nothing and stops for the same reason
    again = run_adaptive(grid, AdaptiveSettings(until_width=0.02, target_compute=1e13,
                                                budget=budget), url,
                         run_cells=lambda g: run_sweep(g, url))
    assert again.trained == 0 and again.stopped.startswith("budget spent")
    with Store.open(url) as store:
        steps = [r["step"] for r in decisions(store, grid.name)]
    assert steps == list(range(1, len(recorded) + 2))  # numbered on across the resume
