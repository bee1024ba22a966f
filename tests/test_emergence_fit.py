"""Floored sigmoid fits: recovery of a known curve, intervals, losses, serialisation, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scaletrack.analysis.emergence import (
    SigmoidFit,
    emergence_profile,
    fit_floored_sigmoid,
    sigmoid_value,
)
from scaletrack.errors import DataError

TRUE = {"floor": 0.25, "ceil": 0.9, "k": 2.0, "log10_mid": 20.5}


def _synthetic(
    seed: int = 1, noise: float = 0.015, lo: float = 18.0, hi: float = 23.0, n: int = 16
):
    rng = np.random.default_rng(seed)
    x = np.logspace(lo, hi, n)
    y = sigmoid_value(x, **TRUE) + rng.normal(0.0, noise, size=n)
    return x, y


def test_known_midpoint_recovered_within_its_interval() -> None:
    x, y = _synthetic()
    fit = fit_floored_sigmoid(x, y, floor=0.25, n_bootstrap=150, seed=0)
    lo, hi = fit.ci95["log10_mid"]
    assert lo <= TRUE["log10_mid"] <= hi
    assert hi - lo < 0.5  # a well-sampled transition is pinned to within half a decade
    assert abs(fit.params["ceil"] - TRUE["ceil"]) < 0.05
    assert fit.params["floor"] == 0.25
    # crossing of the true midpoint value and its interval
    thr = 0.5 * (TRUE["floor"] + TRUE["ceil"])
    c_lo, c_hi = fit.crossing_ci95(thr)
    assert c_lo <= 10 ** TRUE["log10_mid"] <= c_hi
    assert math.isclose(math.log10(fit.crossing(thr)), TRUE["log10_mid"], abs_tol=0.2)


def test_fitted_floor_and_unreachable_threshold() -> None:
    x, y = _synthetic(seed=3)
    fit = fit_floored_sigmoid(x, y, floor=None, n_bootstrap=0)
    assert abs(fit.params["floor"] - 0.25) < 0.05
    assert fit.crossing(0.99) == math.inf  # above the fitted ceiling
    assert fit.crossing(0.1) == 0.0  # below the floor: reached at every scale
    assert fit.lower_knee < fit.midpoint < fit.upper_knee


def test_decreasing_metric_such_as_bits_per_byte() -> None:
    rng = np.random.default_rng(0)
    x = np.logspace(19, 24, 14)
    y = sigmoid_value(x, 2.0, 0.6, 1.5, 21.5) + rng.normal(0, 0.01, size=x.size)
    fit = fit_floored_sigmoid(x, y, increasing=False, n_bootstrap=50)
    assert fit.params["ceil"] < fit.params["floor"]
    assert abs(fit.params["log10_mid"] - 21.5) < 0.3
    assert 1e21 < fit.crossing(1.3) < 1e22


def test_round_trip_json() -> None:
    x, y = _synthetic()
    fit = fit_floored_sigmoid(x, y, floor=0.25, n_bootstrap=20)
    back = SigmoidFit.from_json(fit.to_json())
    assert back.params == fit.params
    assert back.crossing_ci95(0.6) == fit.crossing_ci95(0.6)
    np.testing.assert_allclose(back.predict(x), fit.predict(x))


def test_errors_name_the_problem() -> None:
    with pytest.raises(DataError, match="at least 3 points"):
        fit_floored_sigmoid([1e20, 1e21], [0.3, 0.4], floor=0.25)
    with pytest.raises(DataError, match="share one"):
        fit_floored_sigmoid([1e20] * 5, [0.3, 0.4, 0.5, 0.4, 0.3], floor=0.25)
    with pytest.raises(DataError, match="same length"):
        fit_floored_sigmoid([1e20, 1e21, 1e22], [0.3, 0.4], floor=0.25)


def test_profile_sees_a_flat_start_then_a_rise() -> None:
    x = np.logspace(19, 24, 11)
    sudden = sigmoid_value(x, 0.0, 0.9, 4.0, 22.8)
    smooth = np.linspace(0.3, 0.8, x.size)
    p1 = emergence_profile(x, sudden, floor=0.0)
    p2 = emergence_profile(x, smooth, floor=0.0)
    assert p1.emergent and p1.decades_at_chance >= 2.5
    assert not p2.emergent and p2.at_chance_until is None
