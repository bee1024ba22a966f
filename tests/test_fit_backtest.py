"""Back-test: fit below a compute threshold, predict the larger runs."""

from __future__ import annotations

import numpy as np
from test_fit_chinchilla import synthetic_runs

from scaletrack.analysis import backtest


def test_chinchilla_backtest_predicts_larger_runs():
    df = synthetic_runs(n=200, noise=0.005)
    df["C"] = 6 * df["N"] * df["D"]
    threshold = float(np.quantile(df["C"], 0.8))
    result = backtest(df, "chinchilla", threshold)
    s = result.summary
    assert s["n_train"] + s["n_test"] == len(df)
    assert s["n_test"] == int((df["C"] >= threshold).sum())
    assert (result.frame["C"] >= threshold).all()
    assert s["mean_abs_rel_error"] < 0.02
    assert np.allclose(
        result.frame["rel_error"],
        (result.frame["predicted"] - result.frame["loss"]) / result.frame["loss"],
    )
    assert result.fit.n_points == s["n_train"]


def test_compute_law_backtest_on_frontier_like_data():
    c = np.geomspace(1e17, 1e21, 30)
    df = synthetic_runs(n=30).assign(C=c, loss=1.8 + 900 * c**-0.16)
    result = backtest(df, "compute", 1e20)
    assert result.summary["max_abs_rel_error"] < 1e-4
