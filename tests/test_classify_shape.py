"""The trajectory-shape features, the bootstrap probability of a near crossing, and the
shape rule of the emergence classifier."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import expit, logit

from scaletrack.analysis import emergence_shape as es
from scaletrack.analysis.classify import NEAR_TAU, classify_task


def _line(x: np.ndarray, z0: float, slope: float) -> np.ndarray:
    """Progress that is a straight line in logit space: z = z0 + slope (log10 x - 20)."""
    return np.asarray(expit(z0 + slope * (np.log10(x) - 20.0)))


def test_features_of_a_straight_logit_line_are_its_own_numbers() -> None:
    x = np.logspace(20, 22.5, 6)
    p = _line(x, -3.0, 0.6)
    f = dict(zip(es.FEATURE_NAMES, es.shape_features(x, p, 0.25), strict=True))
    z_max, goal = -3.0 + 0.6 * 2.5, float(logit(0.25))
    assert f["slope"] == pytest.approx(0.6)
    assert f["slope_last_decade"] == pytest.approx(0.6)
    assert f["gap"] == pytest.approx(goal - z_max)
    assert f["curvature"] == pytest.approx(0.0, abs=1e-9)
    assert f["noise"] == pytest.approx(0.0, abs=1e-9)
    assert f["log_trend_ratio"] == pytest.approx((goal - z_max) / 0.6)
    assert f["log_line2_ratio"] == pytest.approx((goal - z_max) / 0.6)
    assert f["decades_seen"] == pytest.approx(2.5)


def test_features_see_a_bend_and_a_flat_trend_reads_as_no_rise() -> None:
    x = np.logspace(20, 22.5, 6)
    lx = np.log10(x) - 20.0
    bending_up = np.asarray(expit(-4.0 + 0.2 * lx + 0.4 * lx**2))
    assert dict(zip(es.FEATURE_NAMES, es.shape_features(x, bending_up, 0.25),
                    strict=True))["curvature"] > 0.5
    flat = np.full(x.size, 0.02)
    f = dict(zip(es.FEATURE_NAMES, es.shape_features(x, flat, 0.25), strict=True))
    assert f["log_trend_ratio"] == es.RATIO_CLIP[1] and f["log_line2_ratio"] == es.RATIO_CLIP[1]


def test_bootstrap_probability_is_sure_only_where_the_trend_is() -> None:
    x = np.logspace(20, 22.5, 6)
    rng = np.random.default_rng(3)
    soon = _line(x, -3.0, 0.6)  # noiseless: crosses 0.25 about 0.7 decade past x_max
    assert es.trend_near_probability(x, soon, 0.25) == 1.0
    assert es.trend_near_probability(x, np.full(x.size, 0.05), 0.25) == 0.0
    noisy = np.clip(_line(x, -3.0, 0.6) + rng.normal(0, 0.05, x.size), 0.0, 1.0)
    p = es.trend_near_probability(x, noisy, 0.25, n_bootstrap=400)
    assert 0.0 < p < 1.0
    assert math.isnan(es.trend_near_probability(x[:2], soon[:2], 0.25))


def test_logistic_fit_finds_the_separating_direction() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    near = X[:, 0] - 0.5 * X[:, 2] + rng.normal(0, 0.3, 400) > 0
    model = es.fit_shape_logistic(X, near, np.ones(400))
    coef = model[2]
    assert coef[0] > 1.0 and coef[2] < -0.3 and abs(coef[1]) < 0.3
    p = es.shape_near_probability(X, model)
    assert ((p >= 0.5) == near).mean() > 0.9


def test_classifier_calls_near_from_the_shape_and_says_so() -> None:
    x = np.logspace(20, 22.5, 6)
    rising = 0.25 + 0.75 * _line(x, -3.0, 0.6)  # bar 0.4375 crossed ~5x past x_max
    r = classify_task(x, rising, chance=0.25, threshold=0.4375, n_bootstrap=0)
    assert r.label == "near" and r.near_probability >= NEAR_TAU
    assert "trajectory shape" in r.reason
    flat = 0.25 + 0.75 * np.full(x.size, 0.01)
    f = classify_task(x, flat, chance=0.25, threshold=0.4375, n_bootstrap=0)
    assert f.label == "far" and f.near_probability < NEAR_TAU
    old = classify_task(x, rising, chance=0.25, threshold=0.4375, n_bootstrap=0,
                        near_rule="trend")
    assert math.isnan(old.near_probability) and old.reason.startswith("rising trend")
    other_reach = classify_task(x, rising, chance=0.25, threshold=0.4375, n_bootstrap=0,
                                near_factor=3.0)  # the model knows only 10x: trend rule
    assert math.isnan(other_reach.near_probability)
    with pytest.raises(ValueError, match="near rule"):
        classify_task(x, rising, chance=0.25, threshold=0.4375, near_rule="guess")


def test_the_rule_is_one_option_from_task_to_table() -> None:
    import pandas as pd

    from scaletrack.analysis.classify import classify_tasks

    x = np.logspace(20, 22.5, 6)
    df = pd.DataFrame({"task": "t", "metric": "acc", "C": x,
                       "value": 0.25 + 0.75 * _line(x, -3.0, 0.6)})
    shape = classify_tasks(df, chance=0.25, threshold=0.4375, n_bootstrap=0)
    trend = classify_tasks(df, chance=0.25, threshold=0.4375, n_bootstrap=0,
                           near_rule="trend")
    assert shape.loc[0, "near_probability"] >= NEAR_TAU
    assert math.isnan(trend.loc[0, "near_probability"])
