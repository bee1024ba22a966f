"""`scaletrack fit`, `plot` and `import-csv` end to end on a real SQLite store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_fit_chinchilla import TRUE, synthetic_runs
from typer.testing import CliRunner

from scaletrack.cli.main import app

runner = CliRunner()


@pytest.fixture()
def runs_csv(tmp_path):
    df = synthetic_runs(n=80).rename(columns={"N": "params", "D": "tokens", "loss": "L"})
    df["arith_acc"] = np.linspace(0.0, 0.9, len(df))
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    return path


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_fit_csv_json(runs_csv):
    res = invoke("fit", "--form", "chinchilla", "--csv", str(runs_csv), "--n-col", "params",
                 "--d-col", "tokens", "--loss-col", "L", "--bootstrap", "30", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["form"] == "chinchilla" and out["n_points"] == 80
    assert set(out["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert all(len(v) == 2 for v in out["ci95"].values())
    assert out["params"]["alpha"] == pytest.approx(TRUE["alpha"], abs=0.05)


def test_fit_table_output(runs_csv):
    res = invoke("fit", "--form", "compute", "--csv", str(runs_csv), "--n-col", "params",
                 "--d-col", "tokens", "--loss-col", "L", "--bootstrap", "20")
    assert res.exit_code == 0, res.output
    assert "alpha" in res.stdout and "ci_low" in res.stdout


def test_fit_errors_are_one_line(tmp_path, runs_csv):
    res = invoke("fit", "--form", "chinchilla", "--csv", str(tmp_path / "nope.csv"))
    assert res.exit_code == 1
    assert "does not exist" in res.output and "Traceback" not in res.output
    res = invoke("fit", "--form", "chinchilla", "--csv", str(runs_csv))
    assert res.exit_code == 1
    assert "no column 'loss'" in res.output
    bad = pd.read_csv(runs_csv)
    bad.loc[7, "L"] = np.nan
    bad_path = tmp_path / "bad.csv"
    bad.to_csv(bad_path, index=False)
    res = invoke("fit", "--form", "chinchilla", "--csv", str(bad_path), "--n-col", "params",
                 "--d-col", "tokens", "--loss-col", "L")
    assert res.exit_code == 1
    assert "'loss'" in res.output and "line 9" in res.output  # data row 7: file line 9
    assert len(res.output.strip().splitlines()) == 1
    res = invoke("fit", "--form", "chinchilla")
    assert res.exit_code == 1 and "--sweep" in res.output


def test_import_then_fit_sweep_saves_fit(tmp_path, runs_csv):
    import scaletrack.store as store_mod
    url = f"sqlite:///{tmp_path / 'st.db'}"
    args = ("import-csv", str(runs_csv), "--sweep", "pub", "--n-col", "params", "--d-col",
            "tokens", "--loss-col", "L", "--store", url)
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    assert "80 new runs" in res.output
    res = invoke(*args)  # idempotent
    assert res.exit_code == 0 and "(0 new runs)" in res.output
    with store_mod.Store.open(url) as st:
        runs = st.runs(sweep="pub")
        evals = st.evals(task="arith_acc")
        ckpts = st.checkpoints(kind="external")
    assert len(runs) == 80
    assert set(runs["family"]) == {"imported"} and set(runs["status"]) == {"finished"}
    assert len(ckpts) == 80 and len(evals) == 80
    assert set(evals["metric"]) == {"value"}
    assert evals["value"].max() == pytest.approx(0.9)

    res = invoke("fit", "--form", "chinchilla", "--sweep", "pub", "--bootstrap", "20",
                 "--json", "--store", url)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["n_points"] == 80 and "fit_id" in out
    with store_mod.Store.open(url) as st:
        fits = st.fits(form="chinchilla")
    assert len(fits) == 1 and fits["sweep"].iloc[0] == "pub"
    from scaletrack.analysis import FitResult

    stored = FitResult.from_dict(fits["payload"].iloc[0])
    assert stored.params["alpha"] == pytest.approx(out["params"]["alpha"])


def test_import_task_cols_option(tmp_path, runs_csv):
    import scaletrack.store as store_mod
    url = f"sqlite:///{tmp_path / 'st2.db'}"
    res = invoke("import-csv", str(runs_csv), "--n-col", "params", "--d-col", "tokens",
                 "--loss-col", "L", "--task-cols", "", "--store", url)
    assert res.exit_code == 0, res.output
    with store_mod.Store.open(url) as st:
        assert st.evals().empty
    res = invoke("import-csv", str(runs_csv), "--n-col", "params", "--d-col", "tokens",
                 "--loss-col", "L", "--task-cols", "nope", "--store", url)
    assert res.exit_code == 1 and "task column 'nope'" in res.output


@pytest.mark.parametrize("kind", ["compute", "isoflop", "optimal"])
def test_plot_commands_write_png_and_svg(tmp_path, kind):
    from test_fit_isoflop import isoflop_runs

    csv = tmp_path / "iso.csv"
    isoflop_runs().to_csv(csv, index=False)
    out = tmp_path / f"{kind}.png"
    res = invoke("plot", kind, "-o", str(out), "--csv", str(csv), "--bootstrap", "20")
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.with_suffix(".svg").stat().st_size > 1000


def test_unidentified_fit_prints_its_reason_not_numbers(tmp_path):
    # two model sizes cannot identify the Chinchilla form
    df = pd.DataFrame({"N": [3e8] * 4 + [3e9] * 4, "D": [1e9, 2e9, 4e9, 8e9] * 2})
    df["loss"] = 1.8 + 400 / df["N"] ** 0.34 + 2000 / df["D"] ** 0.37
    path = tmp_path / "two_sizes.csv"
    df.to_csv(path, index=False)
    res = invoke("fit", "--form", "chinchilla", "--csv", str(path), "--bootstrap", "10")
    assert res.exit_code == 0, res.output
    assert "chinchilla fit is degenerate" in res.stdout and "Remedy" in res.stdout
    assert "ci_low" not in res.stdout and "compute-optimal" not in res.stdout
    res = invoke("fit", "--form", "chinchilla", "--csv", str(path), "--bootstrap", "10",
                 "--json")
    out = json.loads(res.stdout)
    assert out["status"] == "degenerate" and set(out["params"]) == {"E", "A", "B", "alpha", "beta"}


def test_points_on_the_law_are_said_to_carry_no_scatter(tmp_path) -> None:
    n = np.array([2e7, 2e7, 1e8, 1e8, 5e8, 5e8, 2e9])
    d = np.array([4e8, 4e9, 4e8, 4e9, 4e8, 4e9, 4e10])
    exact = TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]
    csv = tmp_path / "law.csv"
    args = ["fit", "--form", "chinchilla", "--bootstrap", "20", "--csv"]
    pd.DataFrame({"N": n, "D": d, "loss": exact}).to_csv(csv, index=False)
    res = runner.invoke(app, [*args, str(csv)])
    assert res.exit_code == 0, res.output
    assert "10x the largest run; --target-C to move it" in res.output
    assert "no run-to-run scatter" in res.output
    noisy = exact * np.exp(np.random.default_rng(0).normal(0, 0.02, n.size))
    pd.DataFrame({"N": n, "D": d, "loss": noisy}).to_csv(csv, index=False)
    res = runner.invoke(app, [*args, str(csv)])
    assert "no run-to-run scatter" not in res.output
