"""Single-variable power laws L(x) = E + a·x^-alpha in C, N or D (Kaplan with E = 0)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scaletrack.analysis import fit_compute_law, fit_power_law


def compute_runs(seed: int = 3, n: int = 60, noise: float = 0.005) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    c = np.exp(rng.uniform(np.log(1e15), np.log(1e19), n))
    loss = (1.7 + 2e3 * c**-0.2) * np.exp(rng.normal(0, noise, n))
    return pd.DataFrame({"C": c, "loss": loss})


def test_compute_law_recovers_parameters_within_intervals():
    fit = fit_compute_law(compute_runs(), n_bootstrap=300, seed=0)
    assert fit.form == "compute"
    for name, true in {"E": 1.7, "a": 2e3, "alpha": 0.2}.items():
        lo, hi = fit.ci95[name]
        assert lo <= true <= hi, (name, lo, hi)
    assert fit.predict(np.array([1e20, 1e21])).shape == (2,)
    assert fit.predict(1e21) < fit.predict(1e20)
    assert fit.boot_params.shape == (300, len(fit.params))


def test_compute_law_defaults_c_to_6nd():
    df = pd.DataFrame({"N": [1e6, 1e7, 1e8, 1e9, 1e10], "D": [1e8, 1e9, 1e10, 1e11, 1e12]})
    df["loss"] = 1.5 + 30 * (6 * df["N"] * df["D"]) ** -0.1
    fit = fit_compute_law(df, n_bootstrap=0)
    assert fit.params["alpha"] == pytest.approx(0.1, rel=1e-4)


def test_kaplan_form_without_irreducible_term():
    rng = np.random.default_rng(0)
    n = np.exp(rng.uniform(np.log(1e6), np.log(1e9), 40))
    loss = (8.8e13 / n) ** 0.076 * np.exp(rng.normal(0, 0.003, 40))
    fit = fit_power_law(pd.DataFrame({"N": n, "loss": loss}), x="N", irreducible=False,
                        n_bootstrap=200)
    assert fit.form == "power_N" and fit.params["E"] == 0.0
    lo, hi = fit.ci95["alpha"]
    assert lo <= 0.076 <= hi
    assert fit.extra["x_c"] == pytest.approx(8.8e13, rel=0.5)


def test_power_law_in_tokens():
    d = np.geomspace(1e8, 1e11, 12)
    df = pd.DataFrame({"D": d, "loss": 1.9 + 410.0 * d**-0.28})
    fit = fit_power_law(df, x="D", n_bootstrap=0)
    assert fit.form == "power_D"
    assert fit.params["alpha"] == pytest.approx(0.28, rel=1e-4)
    assert fit.params["E"] == pytest.approx(1.9, rel=1e-4)
    assert np.allclose(fit.predict(df), df["loss"], rtol=1e-6)


def test_unknown_variable_rejected():
    with pytest.raises(ValueError, match="x must be"):
        fit_power_law(compute_runs(), x="loss")
