"""Prediction and confidence intervals, fit status, point selection, back-test keys."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_fit_chinchilla import synthetic_runs
from test_fit_isoflop import LAW, isoflop_runs
from typer.testing import CliRunner

import scaletrack.analysis.chinchilla as chinchilla_mod
import scaletrack.analysis.chinchilla_newton as newton_mod
from scaletrack.analysis import (
    FitResult,
    backtest,
    fit_chinchilla,
    fit_compute_law,
    fit_isoflop,
    isoflop_minima,
)
from scaletrack.analysis.calibration import calibrate_scatter
from scaletrack.analysis.optimal import chinchilla_allocation
from scaletrack.analysis.selection import select_points
from scaletrack.analysis.status import degenerate_message
from scaletrack.cli.main import app
from scaletrack.errors import DataError

COMPUTE_LAW = {"E": 1.8, "a": 2.0e3, "alpha": 0.16}


def compute_runs(rng: np.random.Generator, c: np.ndarray, noise: float) -> pd.DataFrame:
    loss = COMPUTE_LAW["E"] + COMPUTE_LAW["a"] * c ** -COMPUTE_LAW["alpha"]
    return pd.DataFrame({"C": c, "loss": loss * np.exp(rng.normal(0, noise, c.size))})


def test_prediction_interval_covers_new_runs_on_simulated_data():
    """Repeated experiments: fit L(C) on 40 runs in 1e18-1e21 FLOPs, then draw new runs up to
    1e22 from the same law; the 95% prediction band should hold about 95% of them."""
    inside, conf_inside, total = 0, 0, 0
    for rep in range(8):
        rng = np.random.default_rng(rep)
        train = compute_runs(rng, np.geomspace(1e18, 1e21, 40), 0.01)
        fit = fit_compute_law(train, n_bootstrap=150, seed=rep)
        fit = calibrate_scatter(fit, train, lambda d: fit_compute_law(d, n_bootstrap=0))
        new = compute_runs(rng, np.geomspace(1e21, 1e22, 25), 0.01)
        pred = fit.predict_interval(new["C"].to_numpy(), kind="prediction")
        conf = fit.predict_interval(new["C"].to_numpy(), kind="confidence")
        y = new["loss"].to_numpy()
        inside += int(((pred["lo"] <= y) & (y <= pred["hi"])).sum())
        conf_inside += int(((conf["lo"] <= y) & (y <= conf["hi"])).sum())
        total += y.size
        assert (pred["hi"] - pred["lo"] >= conf["hi"] - conf["lo"]).all()
    coverage = inside / total
    assert 0.85 <= coverage <= 0.995, coverage
    assert conf_inside / total < coverage  # the mean-curve band is not a prediction band


def test_predict_interval_shape_and_bad_kind():
    fit = fit_compute_law(compute_runs(np.random.default_rng(0), np.geomspace(1e18, 1e21, 20),
                                       0.01), n_bootstrap=30)
    out = fit.predict_interval([1e21, 1e22], kind="confidence", level=0.9)
    assert list(out.columns) == ["pred", "lo", "hi"] and len(out) == 2
    assert (out["lo"] <= out["pred"]).all() and (out["pred"] <= out["hi"]).all()
    with pytest.raises(ValueError, match="kind"):
        fit.predict_interval([1e21], kind="both")
    no_boot = fit_compute_law(compute_runs(np.random.default_rng(1),
                                           np.geomspace(1e18, 1e21, 20), 0.01), n_bootstrap=0)
    assert no_boot.predict_interval([1e21], kind="confidence")["lo"].isna().all()
    assert no_boot.predict_interval([1e21])["lo"].notna().all()  # residual scatter only


def test_repr_is_short_and_status_round_trips():
    fit = fit_compute_law(compute_runs(np.random.default_rng(0), np.geomspace(1e18, 1e21, 20),
                                       0.01), n_bootstrap=200)
    text = repr(fit)
    assert "alpha=" in text and "status='ok'" in text and len(text) < 400
    bad = FitResult.from_dict({**fit.to_dict(), "status": "degenerate", "status_reason": "x"})
    assert FitResult.from_json(bad.to_json()).status_reason == "x"
    with pytest.raises(ValueError, match="status"):
        FitResult.from_dict({**fit.to_dict(), "status": "fine"})


def test_two_model_sizes_cannot_identify_chinchilla():
    df = synthetic_runs(n=40)
    df["N"] = np.where(df["N"] < 1e9, 3e8, 3e9)
    fit = fit_chinchilla(df, n_bootstrap=0)
    assert fit.status == "degenerate" and "distinct N" in fit.status_reason
    line = degenerate_message(fit)
    assert line is not None and "\n" not in line and "Remedy" in line


def test_wild_compute_fit_is_degenerate_and_quiet(recwarn):
    # six runs, loss flat, dropping, flat, dropping: the 3-parameter law runs to a bound
    df = pd.DataFrame({"C": [1e11, 2e11, 4e11, 8e11, 1.6e12, 3.2e12],
                       "loss": [3.50, 3.49, 3.21, 3.22, 3.23, 2.90]})
    fit = fit_compute_law(df, n_bootstrap=50)
    assert fit.status == "degenerate"
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    assert degenerate_message(fit).startswith("compute fit is degenerate")


def test_healthy_fits_are_ok():
    assert fit_chinchilla(synthetic_runs(n=60), n_bootstrap=20).status == "ok"
    assert fit_isoflop(isoflop_runs(), n_bootstrap=20).status == "ok"


def test_selection_averages_seeds_keeps_best_lr_and_frontier():
    rows = []
    for n, d in [(1e8, 1e9), (1e8, 4e9), (4e8, 1e9), (4e8, 4e9)]:
        for lr, shift in ((3e-3, 0.0), (3e-5, 0.5)):
            for seed in (0, 1):
                rows.append({"N": n, "D": d, "C": 6 * n * d, "lr": lr, "seed": seed,
                             "loss": 3.0 - 0.1 * np.log10(n * d / 1e17) + shift + 0.01 * seed})
    df = pd.DataFrame(rows)
    pts, how = select_points(df, "chinchilla")
    assert len(pts) == 4 and "seeds averaged" in how and "best of 2 learning rates" in how
    assert np.allclose(pts["loss"] % 1, (3.0 - 0.1 * np.log10(pts["N"] * pts["D"] / 1e17)
                                         + 0.005) % 1)
    mixed, how = select_points(df, "chinchilla", lr="all")
    assert len(mixed) == 8 and "mixed" in how
    front, how = select_points(df, "compute")
    assert "compute frontier" in how and front["C"].is_monotonic_increasing


def test_isoflop_vertex_outside_sampled_sizes_is_left_out():
    df = isoflop_runs()
    n_star, _ = chinchilla_allocation(LAW, 1e21)
    c = 6 * df["N"] * df["D"]
    top = np.abs(np.log10(c) - 21.0) < 0.1
    # at the top budget keep only models larger than optimal: the vertex falls below them
    shifted = df[~top | (df["N"] > 1.3 * n_star)]
    minima = isoflop_minima(shifted)
    top_c = minima["C"].max()
    assert not minima.set_index("C").loc[top_c, "in_range"]
    assert minima[minima["C"] < top_c]["in_range"].all()
    fit = fit_isoflop(shifted, n_bootstrap=0)
    assert [b["C"] for b in fit.extra["out_of_range_budgets"]] == [top_c]
    assert top_c not in fit.selection["budgets"]
    kept = fit_isoflop(shifted, n_bootstrap=0, drop_out_of_range=False)
    assert top_c in kept.selection["budgets"]
    assert "snapped" in fit.extra["budget_snapping"]


def test_backtest_holdout_keys_and_coverage():
    rng = np.random.default_rng(5)
    df = compute_runs(rng, np.geomspace(1e18, 1e22, 60), 0.01)
    res = backtest(df, "compute", holdout_top=0.25, n_bootstrap=100)
    for key in ("n_train", "n_test", "mape", "coverage_prediction", "coverage_confidence"):
        assert key in res.summary
    assert res.summary["n_test"] == 15 and res.summary["mape"] < 0.03
    assert res.summary["coverage_prediction"] >= res.summary["coverage_confidence"]
    with pytest.raises(DataError, match="exactly one"):
        backtest(df, "compute")


def test_backtest_cli_json_keys(tmp_path):
    df = synthetic_runs(n=60)
    df["C"] = 6 * df["N"] * df["D"]
    path = tmp_path / "runs.csv"
    df[["N", "C", "loss"]].to_csv(path, index=False)  # no D column: derived, and said so
    res = CliRunner().invoke(app, ["backtest", "--csv", str(path), "--form", "chinchilla",
                                   "--holdout-top", "0.2", "--bootstrap", "20", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert {"n_train", "n_test", "mape", "coverage_prediction",
            "coverage_confidence"} <= set(out)
    assert out["n_test"] == 12 and out["n_train"] == 48
    assert "D = C/(6·N)" in res.stderr
    bad = CliRunner().invoke(app, ["backtest", "--csv", str(path), "--form", "chinchilla",
                                   "--holdout-top", "1.5"])
    assert bad.exit_code != 0 and bad.output.count("\n") == 1 and "holdout" in bad.output


def test_blocked_evaluation_matches_and_huge_inputs_are_refused(monkeypatch):
    df = synthetic_runs(n=50)
    whole = fit_chinchilla(df, n_bootstrap=10)
    monkeypatch.setattr(newton_mod, "CACHE_POINTS", 7)  # blocks of 3 rows x 7 points
    monkeypatch.setattr(newton_mod, "CACHE_ELEMENTS", 21)
    blocked = fit_chinchilla(df, n_bootstrap=10)
    for k in whole.params:
        assert blocked.params[k] == pytest.approx(whole.params[k], rel=1e-6)
    monkeypatch.setattr(chinchilla_mod, "MAX_POINTS", 40)
    with pytest.raises(DataError, match="at most 40 points"):
        fit_chinchilla(df, n_bootstrap=0)
