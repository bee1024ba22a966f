"""The "reach" residual model: the form's extrapolation error from nested back-tests by
compute and by model size, biased only where the inner splits agree on the sign."""

from __future__ import annotations

import numpy as np
from test_fit_chinchilla import synthetic_runs

from scaletrack.analysis import fit_chinchilla
from scaletrack.analysis.calibration import fit_reach_model, use_residual_model


def pairs(bias: float, rng: np.random.Generator) -> dict[str, list]:
    out: dict[str, list] = {"r": [], "d": [], "d_n": [], "split": []}
    for split in ("C0.1", "C0.2", "C0.3", "N0.1", "N0.2"):
        d = rng.uniform(0.05, 0.6, 20)
        out["r"] += (bias * d + rng.normal(0, 0.01, 20)).tolist()
        out["d"] += d.tolist()
        out["d_n"] += (d / 2).tolist()
        out["split"] += [split] * 20
    return out


def test_bias_only_where_the_splits_agree():
    rng = np.random.default_rng(0)
    biased = fit_reach_model(pairs(-0.05, rng))
    assert biased["bias_sign_agreed"] and biased["m"] < -0.02
    mixed = pairs(0.0, rng)
    mixed["r"] = [abs(r) if s.startswith("C") else -abs(r)
                  for r, s in zip(mixed["r"], mixed["split"], strict=True)]
    plain = fit_reach_model(mixed)
    assert not plain["bias_sign_agreed"] and plain["m"] == 0.0


def test_reach_band_grows_with_model_size_beyond_the_runs():
    df = synthetic_runs(n=120)
    fit = use_residual_model(fit_chinchilla(df, n_bootstrap=50), "reach")
    assert fit.extra["scatter_model"]["name"] == "reach"
    assert set(fit.extra["inner_reach"]["split"]) >= {"C0.1", "N0.1"}
    d_near = fit.extrapolation_distance(N=[1e9], D=[1e10])
    d_far = fit.extrapolation_distance(N=[2e11], D=[1e10])  # 1 decade beyond the largest N
    assert d_near[0] == 0.0 and d_far[0] > 0.9
