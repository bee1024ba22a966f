"""When an adaptive sweep may stop: only on a fit that identifies the law at its target, and
each set of finished cells is fitted once."""

from __future__ import annotations

import re

import numpy as np

import scaletrack.planning as planning
from scaletrack.adaptive import AdaptiveSettings, decisions, run_adaptive
from scaletrack.store import Store
from scaletrack.sweeps.runner import SweepReport
from scaletrack.workflows import load_grid

LAW = {"E": 1.2, "A": 40.0, "alpha": 0.4, "B": 100.0, "beta": 0.4}  # nats/token
GRID = """
name = "adaptive-trust"
[data]
corpus = "zipf-words"
context = 32
[model]
family = "gpt"
sizes = [
  { n_layer = 1, n_head = 1, d_model = 16 },
  { n_layer = 1, n_head = 2, d_model = 32 },
  { n_layer = 2, n_head = 2, d_model = 48 },
  { n_layer = 2, n_head = 4, d_model = 96 },
]
[axes]
tokens = [16_384, 32_768, 65_536]
[train]
batch_size = 32
"""


def law_loss(n: float, d: float, rng: np.random.Generator) -> float:
    exact = LAW["E"] + LAW["A"] / n ** LAW["alpha"] + LAW["B"] / d ** LAW["beta"]
    return exact * float(np.exp(rng.normal(0.0, 0.01)))


def finish_by_law(url: str, cells, rng: np.random.Generator,
                  trained: list[str] | None = None) -> None:
    """Record each of `cells` as a finished run whose loss comes from LAW (no training)."""
    with Store.open(url) as store:
        for cell in cells:
            store.ensure_run(cell.record())
            store.finish_run(cell.run_key, "finished", final_loss=law_loss(cell.N, cell.D, rng))
            if trained is not None:
                trained.append(cell.run_key)


def law_runner(url: str, grid, rng: np.random.Generator, trained: list[str] | None = None):
    """A `run_cells` for run_adaptive that trains nothing: `finish_by_law` on each subgrid."""
    def train_by_law(subgrid):
        finish_by_law(url, subgrid.cells, rng, trained)
        return SweepReport(sweep=grid.name, total=len(grid.cells), already_done=0,
                           results=(), lost_workers=0, interrupted=False, wall_s=0.0)
    return train_by_law


def test_a_narrow_band_of_an_unidentified_law_does_not_stop_the_sweep(tmp_path, monkeypatch):
    """Two token counts cannot separate B, beta from E: the fit is kept to plan from, its
    band at the target is narrower than the stop width, yet the sweep must train on."""
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    grid = load_grid(path)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    rng = np.random.default_rng(7)
    rest = [c for c in grid.cells if c.D == 65_536]
    with Store.open(url) as store:
        store.upsert_sweep(grid.name, grid.stored_spec())
    finish_by_law(url, [cell for cell in grid.cells if cell.D != 65_536], rng)
    spent = sum(c.spent_flops for c in grid.cells if c.D != 65_536)
    cheapest = min(c.spent_flops for c in rest)

    fitted: list[int] = []
    real_fit = planning.fit_points

    def counting_fit(points, seed=0):
        fitted.append(len(points))
        return real_fit(points, seed)

    monkeypatch.setattr(planning, "fit_points", counting_fit)
    trained: list[str] = []

    train_by_law = law_runner(url, grid, rng, trained)

    settings = AdaptiveSettings(until_width=0.9, target_compute=1e14,
                                budget=spent + 1.5 * cheapest)  # room for one more cell
    report = run_adaptive(grid, settings, url, run_cells=train_by_law)

    with Store.open(url) as store:
        steps = decisions(store, grid.name)
    first = steps[0]
    assert first["action"] == "run" and len(trained) == 1  # it did not stop on the 8 runs
    assert "degenerate" in first["reason"] and "distinct D" in first["reason"]
    assert trained[0] in {c.run_key for c in rest}
    assert steps[-1]["action"] == "stop" and report.trained == 1
    assert fitted == [8, 9]  # each set of finished cells fitted once


def test_a_planner_that_cannot_plan_does_not_stop_the_sweep(tmp_path):
    """The planner refuses a target inside the runs done; the sweep trains on in the prior's
    order and stops only when every cell is trained (the band never reaches 1e-4)."""
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    grid = load_grid(path)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    rng = np.random.default_rng(11)
    last = max(grid.cells, key=lambda c: c.C)
    with Store.open(url) as store:
        store.upsert_sweep(grid.name, grid.stored_spec())
    finish_by_law(url, [cell for cell in grid.cells if cell is not last], rng)

    train_by_law = law_runner(url, grid, rng)

    inside = 0.5 * float(last.C)  # a target below the largest run: plan_runs refuses it
    report = run_adaptive(grid, AdaptiveSettings(until_width=1e-4, target_compute=inside),
                          url, run_cells=train_by_law)
    with Store.open(url) as store:
        steps = decisions(store, grid.name)
    assert [s["action"] for s in steps] == ["run", "stop"]
    assert steps[0]["run_key"] == last.run_key
    assert "the planner could not plan" in steps[0]["reason"]
    assert report.stopped == "every cell of the grid is trained"


BRANCH_GRID = GRID.replace('name = "adaptive-trust"', 'name = "adaptive-branches"').replace(
    "tokens = [16_384, 32_768, 65_536]", "tokens = [16_384, 32_768, 65_536, 131_072]") + """
[schedule]
kind = "wsd"
branches = true
warmup_steps = 5
"""


def test_branches_of_an_untrained_trunk_are_planned_together(tmp_path):
    """Three sizes are done; the largest size's trunk is not trained. What is left of the
    budget holds that trunk once plus every cooldown, not two branches that each carry the
    trunk: the planner plans several of them together, and the sweep trains them all."""
    path = tmp_path / "grid.toml"
    path.write_text(BRANCH_GRID)
    grid = load_grid(path)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    rng = np.random.default_rng(5)
    top = max(grid.cells, key=lambda c: c.N).size_label
    with Store.open(url) as store:
        store.upsert_sweep(grid.name, grid.stored_spec())
    finish_by_law(url, [cell for cell in grid.cells if cell.size_label != top], rng)
    spent = sum(c.spent_flops for c in grid.cells if c.size_label != top)
    trunk = next(c for c in grid.cells if c.role == "trunk" and c.size_label == top)
    new = [c for c in grid.cells if c.role == "branch" and c.size_label == top]
    left = trunk.spent_flops + sum(c.spent_flops for c in new)
    assert 2 * (trunk.spent_flops + min(c.spent_flops for c in new)) > left

    train_by_law = law_runner(url, grid, rng)

    settings = AdaptiveSettings(until_width=1e-4, target_compute=1e14,
                                budget=spent + left * 1.001)
    report = run_adaptive(grid, settings, url, run_cells=train_by_law)
    with Store.open(url) as store:
        steps = decisions(store, grid.name)
    planned = re.match(r"first of (\d+) planned", steps[0]["reason"])
    assert planned is not None, steps[0]["reason"]
    assert int(planned.group(1)) >= 2
    assert steps[0]["cell_flops"] > trunk.spent_flops  # the first branch trains the trunk
    assert report.trained == len(new)
    assert report.spent_flops <= settings.budget
