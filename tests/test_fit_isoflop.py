"""IsoFLOP profiles (approach 2), the compute-efficient envelope (approach 1), allocation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scaletrack.analysis import (
    compute_frontier,
    compute_optimal,
    fit_envelope,
    fit_isoflop,
    isoflop_minima,
    snap_budgets,
)
from scaletrack.analysis.isoflop import window_mask
from scaletrack.analysis.optimal import chinchilla_allocation
from scaletrack.errors import DataError

LAW = {"E": 1.7, "A": 400.0, "B": 1800.0, "alpha": 0.34, "beta": 0.36}


def chinchilla_loss(n, d):
    return LAW["E"] + LAW["A"] * n ** -LAW["alpha"] + LAW["B"] * d ** -LAW["beta"]


def isoflop_runs(seed: int = 0, noise: float = 0.002, jitter: float = 0.02) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for budget in [1e18, 3e18, 1e19, 3e19, 1e20, 3e20, 1e21]:
        n_star, _ = chinchilla_allocation(LAW, budget)
        for n in n_star * np.geomspace(0.25, 4, 9):
            c = budget * np.exp(rng.normal(0, jitter))  # real runs miss the budget slightly
            d = c / (6 * n)
            rows.append({"N": n, "D": d, "loss": chinchilla_loss(n, d) + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def test_snap_budgets_groups_nearby_compute():
    c = np.array([0.98e19, 1.02e19, 1.0e19, 2.9e20, 3.1e20, 3.0e20])
    assert list(snap_budgets(c)) == [1e19, 1e19, 1e19, 3e20, 3e20, 3e20]


def test_isoflop_recovers_allocation_exponent():
    df = isoflop_runs()
    minima = isoflop_minima(df)
    assert len(minima) == 7 and (minima["n_points"] == 9).all()
    fit = fit_isoflop(df, n_bootstrap=200)
    expected_a = LAW["beta"] / (LAW["alpha"] + LAW["beta"])
    assert fit.form == "isoflop"
    assert fit.params["a"] == pytest.approx(expected_a, abs=0.02)
    assert fit.params["a"] + fit.params["b"] == pytest.approx(1.0, abs=1e-9)
    lo, hi = fit.ci95["a"]
    assert lo <= expected_a <= hi
    opt = compute_optimal(fit, [1e22, 1e23])
    truth_n, _ = chinchilla_allocation(LAW, np.array([1e22, 1e23]))
    assert np.allclose(opt["N_opt"], truth_n, rtol=0.25)
    assert np.allclose(opt["tokens_per_param"], opt["D_opt"] / opt["N_opt"])


def test_isoflop_needs_two_budgets():
    df = isoflop_runs()
    one = df[np.isclose(snap_budgets(df["C"] if "C" in df else 6 * df.N * df.D), 1e19)]
    with pytest.raises(DataError, match="at least 2 budgets"):
        fit_isoflop(one, n_bootstrap=0)


def test_openathena_chinchilla_isoflops_give_half_exponent(shared_data):
    raw = pd.read_csv(shared_data / "openathena_isoflops.csv")
    sub = raw[raw["source"] == "epochai_chinchilla"]
    df = pd.DataFrame({"N": sub["params"], "D": sub["tokens"], "loss": sub["loss"],
                       "budget": sub["budget"]})
    fit = fit_isoflop(df, budget_col="budget", n_bootstrap=100)
    assert 0.45 < fit.params["a"] < 0.6
    assert 0.4 < fit.params["b"] < 0.55


def test_envelope_follows_the_frontier():
    rng = np.random.default_rng(1)
    rows = []
    for n in np.geomspace(1e7, 1e10, 10):  # training curves: loss at many token counts
        for d in np.geomspace(1e8, 1e12, 40):
            rows.append({"N": n, "D": d, "loss": chinchilla_loss(n, d) * (1 + rng.normal(0, 1e-4))})
    df = pd.DataFrame(rows)
    front = compute_frontier(df.assign(C=6 * df.N * df.D))
    assert (np.diff(front["loss"].to_numpy()) < 0).all()
    fit = fit_envelope(df, n_bins=40, n_bootstrap=50)
    expected_a = LAW["beta"] / (LAW["alpha"] + LAW["beta"])
    assert fit.form == "envelope"
    assert fit.params["a"] == pytest.approx(expected_a, abs=0.08)
    assert len(fit.extra["points"]) >= 5


def test_loss_laws_have_no_allocation():
    from scaletrack.analysis import fit_compute_law

    df = isoflop_runs()
    fit = fit_compute_law(df, n_bootstrap=0)
    with pytest.raises(DataError, match="loss only"):
        compute_optimal(fit, 1e21)


def test_default_fits_every_size_of_a_budget():
    df = isoflop_runs()
    minima = isoflop_minima(df)
    assert (minima["n_in_window"] == minima["n_points"]).all()
    fit = fit_isoflop(df, n_bootstrap=0)
    assert fit.selection["window"] is None and fit.selection["window_dex"] is None


def test_window_dex_keeps_sizes_within_decades_of_the_lowest_loss():
    logn = np.log(np.geomspace(1e6, 1e9, 13))  # 0.25 dex apart
    loss = (np.log10(np.exp(logn)) - 7.5) ** 2  # lowest at 10^7.5 (index 6)
    kept = window_mask(logn, loss, None, 0.5)
    assert list(np.flatnonzero(kept)) == [4, 5, 6, 7, 8]
    # fewer than 3 sizes inside: the 3 nearest by rank instead
    assert list(np.flatnonzero(window_mask(logn, loss, None, 0.1))) == [5, 6, 7]
    minima = isoflop_minima(isoflop_runs(), window_dex=0.35)  # sizes 0.15 dex apart
    assert (minima["n_in_window"] == 5).all() and (minima["n_points"] == 9).all()
    fit = fit_isoflop(isoflop_runs(), n_bootstrap=0, window_dex=0.5)
    assert fit.params["a"] == pytest.approx(LAW["beta"] / (LAW["alpha"] + LAW["beta"]),
                                            abs=0.03)
