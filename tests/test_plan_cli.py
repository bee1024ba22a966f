"""`scaletrack plan`: the grid it writes validates and costs what it says; bad input is one
line and writes nothing; `st.plan` and the grid's `[plan]` table."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
from typer.testing import CliRunner

import scaletrack as st
from scaletrack.cli.main import app
from scaletrack.workflows import load_grid

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("schedule", ["cosine", "wsd-branches"])
def test_plan_writes_a_grid_that_validates(tmp_path, monkeypatch, schedule):
    monkeypatch.chdir(tmp_path)  # no store here: planning must not create one
    out = tmp_path / "next.toml"
    res = invoke("plan", "--target-compute", "1e14", "--budget", "1e12", "--schedule",
                 schedule, "--simulations", "0", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "geometric grid of equal cost" in res.output
    assert not list(tmp_path.glob("*.db"))
    written = tomllib.loads(out.read_text())
    planned = written["plan"]["cells"]
    assert planned and written["plan"]["budget"] == 1e12
    assert written["data"]["corpus"] == "zipf-words"

    res = invoke("sweep", "validate", str(out))
    assert res.exit_code == 0, res.output
    grid = load_grid(out)
    cells = [c for c in grid.cells if c.role != "trunk"]
    assert sorted((c.size_label, c.D) for c in cells) == sorted(
        (p["size"], p["tokens"]) for p in planned)
    spent = sum(c.spent_flops for c in grid.cells)  # what training the grid really costs
    assert spent <= 1e12
    if schedule == "wsd-branches":
        trunks = [c for c in grid.cells if c.role == "trunk"]
        assert len(trunks) <= len({c.size_label for c in cells})
        # a trunk paid once: less than the branches' cells trained from scratch
        assert spent < sum(c.C for c in cells)


@pytest.mark.parametrize("budget, why", [
    ("-1", "finite number > 0"), ("0", "finite number > 0"), ("abc", "expected a number"),
    ("nan", "finite number > 0"), ("1e15", "not below --target-compute"),
])
def test_bad_budget_is_one_line_and_writes_nothing(tmp_path, monkeypatch, budget, why):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "next.toml"
    res = invoke("plan", "--target-compute", "1e14", "--budget", budget, "-o", str(out))
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --budget"), res.output
    assert why in lines[0]
    assert not out.exists() and not list(tmp_path.iterdir())


def test_plan_from_a_missing_sweep_touches_no_store(tmp_path):
    db = tmp_path / "none.db"
    res = invoke("plan", "--target-compute", "1e14", "--budget", "1e12", "--sweep", "x",
                 "--store", f"sqlite:///{db}", "-o", str(tmp_path / "next.toml"))
    assert res.exit_code == 1 and res.output.startswith("error:")
    assert not db.exists() and not (tmp_path / "next.toml").exists()


def test_python_api_plan_within_budget():
    plan = st.plan(target_compute=1e14, budget=1e12, n_simulations=0)
    assert plan.cells and plan.cost_flops <= 1e12
    assert plan.law_source == "prior" and plan.target_flops == 1e14
    assert plan.expected_width > 0 and plan.baseline_cells


GRID = """
name = "p"
[data]
corpus = "zipf-words"
context = 32
[model]
family = "gpt"
sizes = [{ n_layer = 1, n_head = 2, d_model = 32 }, { n_layer = 2, n_head = 2, d_model = 48 }]
[axes]
tokens = [51_200, 102_400, 204_800]
[train]
batch_size = 32
"""


@pytest.mark.parametrize("table, field", [
    ('[plan]\ncells = [{ size = "L9-H2-D32", tokens = 51_200 }]', "plan.cells[0].size"),
    ('[plan]\ncells = [{ size = "L1-H2-D32", tokens = 7 }]', "plan.cells[0].tokens"),
    ("[plan]\nuntil_width = 0.02", "plan.until_width"),
    ("[plan]\nuntil_width = 2.0\ntarget_compute = 1e14", "plan.until_width"),
    ("[plan]\nbudget = -1.0", "plan.budget"),
    ("[plan]\nwidth = 0.1", "plan.width"),
])
def test_bad_plan_table_is_refused_naming_the_field(tmp_path, table, field):
    path = tmp_path / "g.toml"
    path.write_text(GRID + table + "\n")
    res = invoke("sweep", "validate", str(path))
    assert res.exit_code == 1, res.output
    assert f"{path}: {field}:" in res.output


def test_plan_cells_select_cells_and_shorten_the_trunk(tmp_path):
    wsd = GRID + '[schedule]\nkind = "wsd"\nbranches = true\nwarmup_steps = 5\n'
    full = tmp_path / "full.toml"
    full.write_text(wsd)
    some = tmp_path / "some.toml"
    some.write_text(wsd + '[plan]\ncells = [{ size = "L1-H2-D32", tokens = 102_400 }]\n')
    every, chosen = load_grid(full), load_grid(some)
    assert [(c.role, c.size_label, c.D) for c in chosen.cells] == [
        ("trunk", "L1-H2-D32", chosen.cells[0].D), ("branch", "L1-H2-D32", 102_400)]
    long_trunk = next(c for c in every.cells if c.role == "trunk" and c.size_label == "L1-H2-D32")
    assert chosen.cells[0].D < long_trunk.D  # it ends at the one planned branch's point


def test_a_plan_worse_than_the_plain_grid_says_so() -> None:
    from types import SimpleNamespace

    from scaletrack.planning import plan_header, plan_is_worse

    def plan(width: float, baseline: float, failed: float = 0.0,
             baseline_failed: float = 0.0) -> Any:
        return SimpleNamespace(target_flops=1e14, target_n=1e6, target_tokens=2e7, cells=[1, 2],
                               expected_width=width, baseline_width=baseline,
                               law_source="published prior", failed_share=failed,
                               baseline_failed_share=baseline_failed)

    assert plan_is_worse(plan(0.41, 0.18))
    assert not plan_is_worse(plan(0.18, 0.41))
    assert not plan_is_worse(plan(float("nan"), 0.18))
    assert "prefer a plain grid" in plan_header(plan(0.41, 0.18), 1e12)
    assert "prefer a plain grid" not in plan_header(plan(0.18, 0.41), 1e12)
    # a narrower band whose fits fail more often than the grid's is no better
    from scaletrack.planning import plan_fails_more

    risky = plan(0.18, 0.41, failed=0.5, baseline_failed=0.125)
    assert plan_fails_more(risky) and not plan_fails_more(plan(0.18, 0.41, 0.125, 0.5))
    header = plan_header(risky, 1e12)
    assert "50.0 % of this plan's, 12.5 % of the geometric grid's" in header
    assert "more of this plan's fits than the geometric grid's fail" in header


@pytest.mark.slow
def test_plan_says_how_many_simulated_fits_failed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke("plan", "--target-compute", "1e14", "--budget", "1e12", "--simulations", "2",
                 "-o", str(tmp_path / "next.toml"))
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())  # the terminal may wrap the line
    said = re.search(r"refused or degenerate \(no band; the widths above are over the "
                     r"others\): (\S+) % of the plan's, (\S+) % of the grid's", text)
    assert said and all(0.0 <= float(x) <= 100.0 for x in said.groups())
    header = (tmp_path / "next.toml").read_text()
    assert "Simulated fits refused or degenerate (no band):" in header
