"""Residual models of prediction bands: pooled, distance, distance_signed, reach, frontier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scaletrack.analysis import FitResult, backtest, fit_compute_law
from scaletrack.analysis.backtesting import rescore
from scaletrack.analysis.calibration import (
    DEFAULT_RESIDUAL_MODEL,
    RESIDUAL_MODELS,
    calibrate_scatter,
    check_residual_model,
    fit_residual_model,
    use_residual_model,
)
from scaletrack.errors import ConfigError, DataError

LAW = {"E": 1.8, "a": 2.0e3, "alpha": 0.16}


def runs(rng: np.random.Generator, c: np.ndarray, noise: float) -> pd.DataFrame:
    loss = LAW["E"] + LAW["a"] * c ** -LAW["alpha"]
    return pd.DataFrame({"C": c, "loss": loss * np.exp(rng.normal(0, noise, c.size))})


def growing_pairs(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Residuals whose sd is 0.005 at the edge and grows by 0.02 per decade."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(0.0, 1.0, n)
    return rng.normal(0.0, np.sqrt(0.005**2 + (0.02 * d) ** 2)), d


def law_with(model: dict, x_max: float = 21.0) -> FitResult:
    """A compute law without bootstrap refits, trained up to 10^x_max FLOPs."""
    return FitResult(form="compute", params=LAW, ci={}, residuals=(0.01, -0.01) * 10,
                     selection={}, n_points=20,
                     extra={"scatter_model": model, "log10_scale_max": x_max})


def rel_width(fit: FitResult, c: list[float]) -> np.ndarray:
    band = fit.predict_interval(np.asarray(c), kind="prediction")
    return ((band["hi"] - band["lo"]) / band["pred"]).to_numpy()


def test_distance_model_recovers_growth_pooled_ignores_it():
    r, d = growing_pairs()
    dist = fit_residual_model("distance", r, d)
    assert dist["s0"] == pytest.approx(0.005, rel=0.4)
    assert dist["k"] == pytest.approx(0.02, rel=0.25)
    assert dist["m"] == 0.0
    pooled = fit_residual_model("pooled", r, d)
    assert pooled["k"] == 0.0 and pooled["s0"] == pytest.approx(np.sqrt(np.mean(r * r)))
    assert len(pooled["z"]) == len(dist["z"]) == 2 * r.size  # symmetrised


def test_distance_band_widens_with_distance_pooled_does_not():
    r, d = growing_pairs()
    c = [1e20, 1e21, 1e22, 1e23]  # the last two lie 1 and 2 decades beyond training
    dist = rel_width(law_with(fit_residual_model("distance", r, d)), c)
    pooled = rel_width(law_with(fit_residual_model("pooled", r, d)), c)
    assert dist[0] == pytest.approx(dist[1], rel=1e-9)  # inside the training range: d = 0
    assert dist[1] < dist[2] < dist[3]
    assert dist[3] > 3 * dist[1]
    assert np.ptp(pooled) < 1e-3 * pooled.mean()


def test_signed_model_shifts_the_band_with_distance():
    rng = np.random.default_rng(1)
    d = rng.uniform(0.0, 1.0, 300)
    r = 0.03 * d + rng.normal(0.0, 0.004, d.size)  # the law over-predicts further out
    model = fit_residual_model("distance_signed", r, d)
    assert model["m"] == pytest.approx(0.03, rel=0.15)
    fit = law_with(model)
    band = fit.predict_interval(np.array([1e21, 1e23]), kind="prediction")
    mid = np.sqrt(band["lo"] * band["hi"]) / band["pred"]
    assert mid[0] == pytest.approx(1.0, abs=0.003)
    assert mid[1] == pytest.approx(np.exp(-0.06), abs=0.01)  # two decades out: m·d = 0.06
    unsigned = law_with(fit_residual_model("distance", r, d))
    assert fit.extrapolation_distance([1e20, 1e23]).tolist() == pytest.approx([0.0, 2.0])
    assert unsigned.predict_interval([1e23])["pred"].iloc[0] == band["pred"].iloc[1]


def test_bad_model_name_is_one_clear_line():
    with pytest.raises(ConfigError, match="residual model must be one of") as err:
        check_residual_model("gaussian")
    assert "\n" not in str(err.value) and "'gaussian'" in str(err.value)
    df = runs(np.random.default_rng(0), np.geomspace(1e18, 1e22, 30), 0.01)
    with pytest.raises(ConfigError, match="residual model"):
        backtest(df, "compute", holdout_top=0.2, n_bootstrap=0, residual_model="nope")
    with pytest.raises(DataError, match="at least 5"):
        fit_residual_model("distance", np.zeros(3), np.zeros(3))


def test_calibration_keeps_pairs_and_models_switch_without_refit():
    rng = np.random.default_rng(2)
    train = runs(rng, np.geomspace(1e18, 1e21, 40), 0.01)
    fit = fit_compute_law(train, n_bootstrap=30)
    cal = calibrate_scatter(fit, train, lambda d: fit_compute_law(d, n_bootstrap=0),
                            residual_model="distance")
    pairs = cal.extra["inner_holdout"]
    assert len(pairs["r"]) == len(pairs["d"]) > 5 and min(pairs["d"]) >= 0.0
    assert cal.extra["log10_scale_max"] == pytest.approx(21.0)
    assert cal.extra["scatter_model"]["name"] == "distance"
    back = FitResult.from_json(cal.to_json())
    assert back.predict_interval([1e22]).equals(cal.predict_interval([1e22]))
    pooled = use_residual_model(cal, "pooled")
    assert dict(pooled.params) == dict(cal.params)
    assert pooled.extra["scatter_model"]["name"] == "pooled"
    with pytest.raises(DataError, match="calibrate_scatter first"):
        use_residual_model(fit_compute_law(train, n_bootstrap=30, calibrate=False), "pooled")
    assert fit.extra["scatter_model"]["name"] == DEFAULT_RESIDUAL_MODEL  # the API calibrates


def test_backtest_reports_widths_and_rescore_keeps_the_fit():
    df = runs(np.random.default_rng(3), np.geomspace(1e18, 1e22, 60), 0.01)
    res = backtest(df, "compute", holdout_top=0.25, n_bootstrap=60)
    s = res.summary
    assert s["residual_model"] == DEFAULT_RESIDUAL_MODEL
    assert 0 < s["width_confidence"] < s["width_prediction"] < 0.5
    hi, lo = res.frame["pred_hi"], res.frame["pred_lo"]
    assert s["width_prediction"] == pytest.approx(((hi - lo) / res.frame["predicted"]).mean())
    other = rescore(res, "pooled")
    assert other.summary["residual_model"] == "pooled"
    assert other.summary["n_train"] == s["n_train"] and other.summary["mape"] == s["mape"]
    assert other.frame["conf_lo"].equals(res.frame["conf_lo"])
    assert list(other.frame.columns) == list(res.frame.columns)


def test_each_model_covers_simulated_new_runs():
    """Known truth with constant noise: every model's 95% band should hold most new runs."""
    inside = {m: 0 for m in RESIDUAL_MODELS}
    total = 0
    for rep in range(6):
        rng = np.random.default_rng(10 + rep)
        df = runs(rng, np.geomspace(1e18, 1e22, 60), 0.01)
        base = backtest(df, "compute", holdout_top=0.3, n_bootstrap=100, seed=rep)
        total += base.summary["n_test"]
        for m in RESIDUAL_MODELS:
            inside[m] += round(rescore(base, m).summary["coverage_prediction"]
                               * base.summary["n_test"])
    for m in RESIDUAL_MODELS:
        assert 0.85 <= inside[m] / total <= 1.0, (m, inside[m] / total)


def test_an_uncalibrated_band_says_how_many_inner_residuals_it_had() -> None:
    import numpy as np

    import scaletrack as st

    compute = np.logspace(15, 18, 5)
    fit = st.fit_compute_law(pd.DataFrame({"C": compute, "loss": 2 + 50 * compute ** -0.1}))
    note = fit.extra["scatter_calibration"]
    assert note.startswith("in-sample residuals") and "gave 0 residuals, 5 are needed" in note
