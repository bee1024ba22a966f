"""The shape of a task's trajectory towards its bar, and the probability it is crossed soon.

Progress p = (value - chance) / (ceiling - chance) is read in logit space, z = logit(p)
with p clipped to [0.01, 0.99], against log10 of scale x (FLOPs or parameters), where a
sigmoid rise is a straight line. Two estimates of P(the bar is crossed within
`near_factor` x of the largest scale tried):

- `trend_near_probability`: the share of residual-bootstrap refits of the straight trend
  through the last points whose crossing lies within reach.
- `shape_near_probability`: a logistic model on `shape_features` (how far the bar is, how
  fast and how steadily the trend rises, whether it bends up or down, how much history
  there is), with coefficients fitted in bench/bench_emergence_sources.py on the selection
  halves of five published sources (`fit_shape_logistic`) and frozen below.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logit

from scaletrack.analysis.emergence_trend import PROGRESS_FLOOR

SHAPE_POINTS = 6  # points in the trend line the features read
RATIO_CLIP = (-1.0, 3.0)  # log10(crossing / x_max) is clipped here; no rise reads as 3
FEATURE_NAMES = ("gap", "slope", "slope_last_decade", "curvature", "noise",
                 "log_trend_ratio", "log_line2_ratio", "decades_seen")


def _z(progress: np.ndarray) -> np.ndarray:
    return np.asarray(logit(np.clip(progress, PROGRESS_FLOOR, 1.0 - PROGRESS_FLOOR)), float)


def _goal(target: float) -> float:
    return float(logit(min(max(target, PROGRESS_FLOOR), 1.0 - PROGRESS_FLOOR)))


def _slope(lx: np.ndarray, z: np.ndarray) -> float:
    if lx.size < 2 or np.ptp(lx) == 0:
        return 0.0
    return float(np.polyfit(lx, z, 1)[0])


def _log_ratio(slope: float, z_at_max: float, goal: float) -> float:
    """log10(crossing / x_max) of a line with `slope` through z_at_max at x_max, clipped."""
    lo, hi = RATIO_CLIP
    if not slope > 0:
        return hi
    return float(min(max((goal - z_at_max) / slope, lo), hi))


def shape_features(x: np.ndarray, progress: np.ndarray, target: float,
                   points: int = SHAPE_POINTS) -> np.ndarray:
    """The features named in FEATURE_NAMES for points sorted by x ascending (x > 0, at
    least 2 distinct) and the bar `target` in progress units. Units: z per decade of x for
    slopes, z for gap and noise, decades for ratios and history."""
    lx, z = np.log10(np.asarray(x, float)), _z(np.asarray(progress, float))
    goal = _goal(target)
    m = min(points, lx.size)
    tx, tz = lx[-m:], z[-m:]
    if np.ptp(tx) > 0:
        slope, intercept = np.polyfit(tx, tz, 1)
        resid = tz - (slope * tx + intercept)
    else:
        slope, intercept, resid = 0.0, float(tz.mean()), tz - tz.mean()
    at_max = float(slope * lx[-1] + intercept)
    last = lx >= lx[-1] - 1.0
    if last.sum() < 2:
        last[-2:] = True
    half = max(m // 2, 2)
    curvature = _slope(tx[-half:], tz[-half:]) - _slope(tx[:half], tz[:half])
    slope2 = _slope(lx[-2:], z[-2:])
    return np.array([
        goal - at_max, float(slope), _slope(lx[last], z[last]), curvature,
        float(np.sqrt(np.mean(resid**2))), _log_ratio(float(slope), at_max, goal),
        _log_ratio(slope2, float(z[-1]), goal), float(lx[-1] - lx[0]),
    ])


def trend_near_probability(x: np.ndarray, progress: np.ndarray, target: float,
                           points: int = SHAPE_POINTS, near_factor: float = 10.0,
                           n_bootstrap: int = 200, seed: int = 0) -> float:
    """Share of residual-bootstrap refits of the logit trend through the last `points`
    points (x sorted ascending) that reach `target` progress within near_factor x max(x);
    nan with fewer than 3 points or one distinct x."""
    m = min(points, np.asarray(x).size)
    lx, z = np.log10(np.asarray(x, float)[-m:]), _z(np.asarray(progress, float)[-m:])
    if m < 3 or np.ptp(lx) == 0:
        return math.nan
    coef = np.polyfit(lx, z, 1)
    fitted = np.polyval(coef, lx)
    resid = z - fitted
    rng = np.random.default_rng(seed)
    draws = fitted[:, None] + rng.choice(resid - resid.mean(), size=(m, n_bootstrap))
    slopes, intercepts = np.polyfit(lx, draws, 1)
    reach = lx[-1] + math.log10(near_factor)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = (_goal(target) - intercepts) / slopes
    return float(np.mean((slopes > 0) & (cross <= reach)))


# Fitted by `fit_shape_logistic` in bench/bench_emergence_sources.py (round 3) on the
# selection halves only (crc32 parity of the series name) of five published sources, each
# source and each class (near / far) weighted to equal total weight; printed there to 4
# decimals and frozen here. Order: FEATURE_NAMES.
SHAPE_MEAN: tuple[float, ...] | None = (2.8595, 0.1783, 0.2211, 0.0668, 0.1763, 2.7283,
                                        2.5335, 2.0770)
SHAPE_SCALE: tuple[float, ...] | None = (0.9273, 0.6529, 1.0236, 1.7591, 0.2381, 0.7270,
                                         0.9382, 1.0669)
SHAPE_COEF: tuple[float, ...] | None = (-0.4910, -0.4207, -0.0963, 0.0853, -0.0844, -0.7203,
                                        -0.3370, 0.4575)
SHAPE_INTERCEPT: float | None = -0.8400
# near when P >= SHAPE_TAU: chosen with the model on the same selection halves (objective:
# the mean over sources of the primary margin over the better trivial rule)
SHAPE_TAU = 0.7


def shape_near_probability(features: np.ndarray,
                           model: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None
                           ) -> np.ndarray:
    """P(near) of rows of `shape_features` under `model` (mean, scale, coef, intercept;
    default the frozen library model)."""
    if model is None:
        if SHAPE_COEF is None or SHAPE_MEAN is None or SHAPE_SCALE is None \
                or SHAPE_INTERCEPT is None:
            raise RuntimeError("the shape model has not been fitted")
        model = (np.array(SHAPE_MEAN), np.array(SHAPE_SCALE), np.array(SHAPE_COEF),
                 SHAPE_INTERCEPT)
    mean, scale, coef, intercept = model
    f = (np.atleast_2d(features) - mean) / scale
    return np.asarray(expit(f @ coef + intercept), float)


def fit_shape_logistic(features: np.ndarray, near: np.ndarray, weights: np.ndarray,
                       l2: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Weighted logistic regression of `near` (bool) on standardised `features` with an L2
    penalty `l2` on the coefficients (not the intercept); weights are normalised to sum to
    the number of rows. Returns (mean, scale, coef, intercept)."""
    X = np.asarray(features, float)
    t = np.asarray(near, float)
    w = np.asarray(weights, float)
    w = w * (w.size / w.sum())
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    Z = (X - mean) / scale

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = Z @ theta[:-1] + theta[-1]
        p = expit(eta)
        nll = np.sum(w * (np.logaddexp(0.0, eta) - t * eta))
        g = w * (p - t)
        grad = np.append(Z.T @ g + l2 * theta[:-1], g.sum())
        return float(nll + 0.5 * l2 * theta[:-1] @ theta[:-1]), grad

    res = minimize(loss, np.zeros(Z.shape[1] + 1), jac=True, method="L-BFGS-B")
    return mean, scale, res.x[:-1], float(res.x[-1])
