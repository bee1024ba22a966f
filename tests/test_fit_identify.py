"""Identifiability from what a fit can predict: too few points refused, held parameters
(`fix=` / `--fix`), and the prediction band at the target as the verdict."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_fit_chinchilla import TRUE, synthetic_runs
from typer.testing import CliRunner

from scaletrack.analysis import fit_chinchilla, fit_compute_law
from scaletrack.analysis.calibration import DEFAULT_RESIDUAL_MODEL
from scaletrack.cli.main import app
from scaletrack.errors import DataError

runner = CliRunner()


def grid_6x6(seed: int, noise: float = 0.025) -> pd.DataFrame:
    """A 6 x 6 grid of model sizes x token budgets from TRUE with log-normal noise."""
    rng = np.random.default_rng(seed)
    n = np.repeat(np.geomspace(5e7, 2e9, 6), 6)
    d = np.tile(np.geomspace(1e9, 5e10, 6), 6)
    loss = TRUE["E"] + TRUE["A"] * n ** -TRUE["alpha"] + TRUE["B"] * d ** -TRUE["beta"]
    return pd.DataFrame({"N": n, "D": d, "loss": loss * np.exp(rng.normal(0, noise, n.size))})


def test_five_points_are_refused_in_one_line(tmp_path):
    path = tmp_path / "five.csv"
    synthetic_runs(n=5).to_csv(path, index=False)
    res = runner.invoke(app, ["fit", "--form", "chinchilla", "--csv", str(path)])
    assert res.exit_code == 1
    assert res.output.count("\n") == 1 and "Traceback" not in res.output
    assert "needs at least 7 points, got 5" in res.output and "--fix" in res.output
    with pytest.raises(DataError, match="needs at least 5 points"):
        fit_chinchilla(synthetic_runs(n=4), fix={"E": 1.7, "beta": 0.36}, n_bootstrap=0)


def test_fix_holds_any_parameter_in_api_and_cli(tmp_path):
    df = synthetic_runs(n=60)
    fit = fit_chinchilla(df, n_bootstrap=20, fix={"E": 0.0})
    assert fit.params["E"] == 0.0 and fit.ci95["E"] == (0.0, 0.0)
    assert fit.extra["fixed"] == {"E": 0.0}
    held = fit_chinchilla(df, n_bootstrap=0, fix={"alpha": 0.34, "A": 400.0})
    assert held.params["alpha"] == 0.34 and held.params["A"] == pytest.approx(400.0)
    assert held.params["beta"] == pytest.approx(TRUE["beta"], abs=0.05)
    law = fit_compute_law(df.assign(C=6 * df["N"] * df["D"]), n_bootstrap=0, fix={"E": 0})
    assert law.params["E"] == 0.0
    with pytest.raises(DataError, match="cannot fix 'Q'"):
        fit_chinchilla(df, fix={"Q": 1.0})
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    res = runner.invoke(app, ["fit", "--form", "chinchilla", "--csv", str(path), "--fix", "E=0",
                              "--bootstrap", "20", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["params"]["E"] == 0.0 and out["fixed"] == {"E": 0.0}
    bad = runner.invoke(app, ["fit", "--form", "chinchilla", "--csv", str(path), "--fix", "E"])
    assert bad.exit_code != 0 and bad.output.count("\n") == 1 and "NAME=VALUE" in bad.output


def test_status_rests_on_the_band_at_the_target():
    fit = fit_chinchilla(grid_6x6(0), n_bootstrap=200)
    target = fit.extra["target"]
    assert target["C"] == pytest.approx(10 * 6 * 2e9 * 5e10, rel=1e-9)
    assert target["lo"] <= target["pred"] <= target["hi"]
    assert fit.status == "ok", fit.status_reason
    far = fit_chinchilla(grid_6x6(0), n_bootstrap=200, target_C=1e30)
    assert far.extra["target"]["C"] == 1e30


def test_cli_prints_the_band_at_the_target(tmp_path):
    path = tmp_path / "grid.csv"
    grid_6x6(1).to_csv(path, index=False)
    res = runner.invoke(app, ["fit", "--form", "chinchilla", "--csv", str(path),
                              "--bootstrap", "100", "--target-C", "1e22"])
    assert res.exit_code == 0, res.output
    assert "prediction at the target (C = 1e22" in res.stdout and "95% band" in res.stdout


def test_epoch_loader_and_cli_keep_the_same_rows(shared_data, tmp_path):
    from scaletrack.analysis import load_epoch_chinchilla
    from scaletrack.cli.fit import _load

    path = shared_data / "epoch_chinchilla_svg_extracted_data.csv"
    assert len(load_epoch_chinchilla(path)) == 245
    assert len(load_epoch_chinchilla(path, drop_highest_loss=5)) == 240
    cols = ("Model Size", "D", "loss", "Training FLOP")
    assert len(_load(None, path, None, cols)) == 245
    assert len(_load(None, path, None, cols, drop_highest_loss=5)) == 240


def test_api_calibrates_like_the_cli_and_calibrate_scatter_is_public():
    import scaletrack as st

    df = synthetic_runs(n=60)
    fit = st.fit_chinchilla(df, n_bootstrap=30)
    assert fit.extra["scatter_model"]["name"] == DEFAULT_RESIDUAL_MODEL
    plain = st.fit_chinchilla(df, n_bootstrap=30, calibrate=False)
    # on a frame without C (compute is 6·N·D)
    again = st.calibrate_scatter(plain, df, lambda d: st.fit_chinchilla(d, n_bootstrap=0))
    assert np.allclose(again.extra["scatter_residuals"], fit.extra["scatter_residuals"],
                       atol=1e-7)
    band = fit.predict_interval(N=[1e11], D=[2e12])
    assert np.allclose(band, again.predict_interval(N=[1e11], D=[2e12]), rtol=1e-6)


def test_fit_says_where_compute_comes_from(tmp_path):
    path = tmp_path / "grid.csv"
    grid_6x6(2).to_csv(path, index=False)
    res = runner.invoke(app, ["fit", "--form", "chinchilla", "--csv", str(path),
                              "--bootstrap", "0", "--json"])
    assert res.exit_code == 0, res.output
    assert "C = 6·N·D (no attention or output-layer terms)" in json.loads(res.stdout)["points"]
