"""The "split_drift" residual models: each inner split's drift per decade of its own direction
is one draw of how the form errs beyond its training runs; signed where a direction's splits
agree, symmetrised otherwise."""

from __future__ import annotations

import numpy as np
from test_calibration_frontier import law_with, pairs
from test_fit_chinchilla import synthetic_runs

from scaletrack.analysis import fit_chinchilla
from scaletrack.analysis.calibration import RESIDUAL_MODELS, use_residual_model
from scaletrack.analysis.extrapolation import fit_split_drift_model


def test_each_split_gives_one_drift_per_decade_of_its_own_direction():
    model = fit_split_drift_model(pairs(-0.05, np.random.default_rng(0)))
    assert model["drift_N"] and not model["drift_C"]
    assert len(model["drifts_N"]) == 3  # agreed: the three N splits' drifts as they are
    assert all(-0.07 < b < -0.03 for b in model["drifts_N"])
    drifts_c = np.asarray(model["drifts_C"])
    assert drifts_c.size == 6 and np.allclose(np.sort(drifts_c), np.sort(-drifts_c))
    assert 0.001 < model["s0"] < 0.01  # the residuals less their split's drift


def test_agreed_drift_makes_the_band_asymmetric_and_the_symmetric_variant_does_not():
    rng = np.random.default_rng(1)
    signed = law_with(fit_split_drift_model(pairs(-0.05, rng)))
    sym = law_with(fit_split_drift_model(pairs(-0.05, np.random.default_rng(1)),
                                         symmetric=True))
    at = {"N": np.array([1e9, 1e10, 1e11]), "D": np.array([1e10, 1e10, 1e10])}
    band = signed.predict_interval(**at)
    up = (band["hi"] - band["pred"]).to_numpy()
    down = (band["pred"] - band["lo"]).to_numpy()
    assert up[2] > 2.0 * down[2]  # under-predicts far out: the band reaches higher
    width = ((band["hi"] - band["lo"]) / band["pred"]).to_numpy()
    assert width[0] < width[1] < width[2]
    even = sym.predict_interval(**at)
    up_s = float(np.log(even["hi"].iloc[2] / even["pred"].iloc[2]))
    down_s = float(np.log(even["pred"].iloc[2] / even["lo"].iloc[2]))
    assert abs(up_s - down_s) < 0.15 * (up_s + down_s)


def test_disagreeing_splits_widen_the_band_without_shifting_it():
    model = fit_split_drift_model(pairs(0.0, np.random.default_rng(3)))
    assert not model["drift_C"]
    fit = law_with(model)
    band = fit.predict_interval(N=[1e9], D=[1e12])  # 6·N·D = 6e21: 1.8 decades of compute
    up = float(np.log(band["hi"].iloc[0] / band["pred"].iloc[0]))
    down = float(np.log(band["pred"].iloc[0] / band["lo"].iloc[0]))
    assert up > 0.004 and down > 0.004
    assert abs(up - down) < 0.2 * (up + down)


def test_calibrated_fit_uses_the_split_drift_band_by_name():
    df = synthetic_runs(n=120)
    assert "split_drift" in RESIDUAL_MODELS
    cal = use_residual_model(fit_chinchilla(df, n_bootstrap=40), "split_drift")
    assert cal.extra["scatter_model"]["name"] == "split_drift"
    n_far = 10 ** (cal.extra["log10_N_max"] + 1.0)
    near = cal.predict_interval(N=[1e8], D=[2e9])
    far = cal.predict_interval(N=[n_far], D=[2e9])
    assert ((far["hi"] - far["lo"]) / far["pred"]).iloc[0] \
        > ((near["hi"] - near["lo"]) / near["pred"]).iloc[0]
