"""The "frontier" residual models: drift and spread of the form's extrapolation error learnt
from grow-the-frontier inner back-tests, per direction (decades of compute and of N)."""

from __future__ import annotations

import numpy as np
from test_fit_chinchilla import synthetic_runs

from scaletrack.analysis import FitResult, fit_chinchilla
from scaletrack.analysis.calibration import use_residual_model
from scaletrack.analysis.extrapolation import fit_frontier_model

PARAMS = {"E": 1.7, "A": 400.0, "B": 1800.0, "alpha": 0.34, "beta": 0.36}


def pairs(b_n: float, rng: np.random.Generator, mixed_c: bool = True) -> dict[str, list]:
    """Inner residuals: N splits drift by b_n per decade of N; C splits alternate in sign."""
    out: dict[str, list] = {"r": [], "d": [], "d_n": [], "split": []}
    for i, split in enumerate(("C0.1", "C0.2", "C0.3", "N0.1", "N0.2", "N0.3")):
        d_c = rng.uniform(0.1, 1.0, 30)
        d_n = rng.uniform(0.05, 0.4, 30) if split.startswith("N") else np.zeros(30)
        shift = (0.004 if i % 2 else -0.004) if mixed_c and split.startswith("C") else 0.0
        out["r"] += (b_n * d_n + shift + rng.normal(0, 0.003, 30)).tolist()
        out["d"] += (d_c if split.startswith("C") else np.zeros(30)).tolist()
        out["d_n"] += d_n.tolist()
        out["split"] += [split] * 30
    return out


def law_with(model: dict) -> FitResult:
    """A Chinchilla law without refits, trained up to N = 1e9 and 6·N·D = 1e20 FLOPs."""
    return FitResult(form="chinchilla", params=PARAMS, ci={}, residuals=(0.01, -0.01) * 10,
                     selection={}, n_points=20,
                     extra={"scatter_model": model, "log10_scale_max": 20.0,
                            "log10_N_max": 9.0})


def test_drift_kept_only_in_the_direction_whose_splits_agree():
    model = fit_frontier_model(pairs(-0.05, np.random.default_rng(0)))
    assert model["drift_N"] and not model["drift_C"]
    assert model["b_C"] == 0.0
    assert -0.07 < model["b_N"] < -0.03


def test_agreed_drift_makes_the_band_asymmetric_and_wider_with_reach():
    fit = law_with(fit_frontier_model(pairs(-0.05, np.random.default_rng(1))))
    d = np.array([1e10, 1e10, 1e10])
    band = fit.predict_interval(N=np.array([1e9, 1e10, 1e11]), D=d)
    up = (band["hi"] - band["pred"]).to_numpy()
    down = (band["pred"] - band["lo"]).to_numpy()
    assert up[2] > 1.5 * down[2]  # under-predicts far out: the band reaches higher
    width = ((band["hi"] - band["lo"]) / band["pred"]).to_numpy()
    assert width[0] < width[1] < width[2]


def test_hedged_drift_widens_the_band_on_its_side():
    model = fit_frontier_model(pairs(-0.05, np.random.default_rng(2)))
    hedged = {**model, "name": "frontier_hedged"}
    at = {"N": np.array([1e11]), "D": np.array([1e10])}
    plain = law_with(model).predict_interval(**at)
    wide = law_with(hedged).predict_interval(**at)
    assert float(wide["hi"].iloc[0]) > float(plain["hi"].iloc[0])
    assert float(wide["lo"].iloc[0]) <= float(plain["lo"].iloc[0])


def test_hedged_band_keeps_the_law_inside_however_strong_the_drift():
    model = fit_frontier_model(pairs(-0.2, np.random.default_rng(3)))  # steep drift
    at = {"N": np.array([1e10, 1e11, 1e12]), "D": np.array([1e10] * 3)}
    plain = law_with(model).predict_interval(**at)
    assert float(plain["lo"].iloc[2]) > float(plain["pred"].iloc[2])  # a fitted drift excludes it
    hedged = law_with({**model, "name": "frontier_hedged"}).predict_interval(**at)
    assert (hedged["lo"] <= hedged["pred"]).all() and (hedged["pred"] <= hedged["hi"]).all()
    assert float(hedged["hi"].iloc[2]) >= float(plain["hi"].iloc[2])


def test_calibrated_fit_keeps_its_point_estimates_and_uses_the_frontier_band():
    df = synthetic_runs(n=120)
    plain = fit_chinchilla(df, n_bootstrap=40, calibrate=False)
    cal = use_residual_model(fit_chinchilla(df, n_bootstrap=40), "frontier")
    assert dict(cal.params) == dict(plain.params)
    assert cal.extra["scatter_model"]["name"] == "frontier"
    n_far = 10 ** (cal.extra["log10_N_max"] + 1.0)
    near = cal.predict_interval(N=[1e8], D=[2e9])
    far = cal.predict_interval(N=[n_far], D=[2e9])
    assert ((far["hi"] - far["lo"]) / far["pred"]).iloc[0] \
        > ((near["hi"] - near["lo"]) / near["pred"]).iloc[0]


def test_hedged_prediction_band_holds_the_confidence_band_and_the_band_without_drift():
    """A drift of uncertain size, down to none: far out, where the drift moves every draw one
    way, the prediction band must still hold where the law itself may lie (the confidence
    band) and the scatter around it, not end at the law's value."""
    df = synthetic_runs(n=120)
    fit = fit_chinchilla(df, n_bootstrap=60)
    model = fit_frontier_model(pairs(0.2, np.random.default_rng(4)))  # over-predicts far out
    hedged = FitResult(**{**fit.__dict__, "extra": {
        **fit.extra, "scatter_model": {**model, "name": "frontier_hedged"}}})
    no_drift = FitResult(**{**fit.__dict__, "extra": {
        **fit.extra, "scatter_model": {**model, "name": "frontier_hedged", "b_C": 0.0,
                                       "b_N": 0.0}}})
    n_max = float(df["N"].max())
    at = {"N": np.array([n_max * 10, n_max * 100]), "D": np.array([n_max * 200, n_max * 2000])}
    band = hedged.predict_interval(**at)
    conf = hedged.predict_interval(**at, kind="confidence")
    plain = no_drift.predict_interval(**at)
    assert (band["lo"] <= conf["lo"]).all() and (band["hi"] >= conf["hi"]).all()
    assert (band["lo"] <= plain["lo"] + 1e-12).all() and (band["hi"] >= plain["hi"] - 1e-12).all()
    assert (band["hi"] > band["pred"]).all()  # the side away from the drift keeps its scatter
