"""The straight trend of progress towards a bar, in logit progress against log10 scale.

Progress p = (value - chance) / (ceiling - chance) is clipped to [PROGRESS_FLOOR,
1 - PROGRESS_FLOOR] (1 % of the range: the noise floor) and read in logit space, where a
sigmoid rise is a straight line; a least-squares line through the last `points` points is
extrapolated to the bar. Scale x is FLOPs or parameters (x > 0, sorted ascending).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logit

from scaletrack.analysis.emergence import N_BOOTSTRAP

# Chosen in bench/bench_emergence_sources.py on the selection halves (crc32 parity of the
# series name) of five published sources. Round 1 (accuracy margin over the better trivial
# rule): 6 points in logit progress. Round 2 (mean over sources of the lower of the accuracy
# and balanced-accuracy margins, with a decision ratio) picked 4 points in raw progress
# (+2.0 points against +1.6 here), which was not adopted: a straight line in raw progress
# misses a multiplicative rise near chance and gives crossing intervals that do not cover a
# sigmoid's crossing, and it scores 77 % right / 40 % near recall in
# bench/bench_emergence_backtest.py. Among the logit candidates 6 points, ratio 1 was best.
# The scored halves never entered either choice.
TREND_POINTS = 6
PROGRESS_FLOOR = 0.01  # progress clipped to [PROGRESS_FLOOR, 1 - PROGRESS_FLOOR] before logit
TREND_SPACES = ("logit", "raw")  # the trend line in logit progress, or in progress itself
TREND_SPACE = "logit"
# Near when the trend's crossing lies within DECISION_RATIO x near_factor of the largest
# scale. Ratios 2, 3, 5, 10 (calling near on later trend crossings) lowered the logit trend's
# score on the selection halves of bench/bench_emergence_sources.py, so it stays 1.
DECISION_RATIO = 1.0


def trend_crossing(
    x: np.ndarray, progress: np.ndarray, target: float, points: int = TREND_POINTS,
    progress_floor: float = PROGRESS_FLOOR, space: str = TREND_SPACE,
) -> float:
    """Scale where a least-squares line through the last `points` (log10 x, logit progress)
    meets `target` progress; inf when the trend does not rise. x sorted ascending; progress
    clipped to [progress_floor, 1 - progress_floor] first. space "raw": the line is in
    (log10 x, progress) instead."""
    if space not in TREND_SPACES:
        raise ValueError(f"trend space must be one of {', '.join(TREND_SPACES)}, got {space!r}")
    if space == "logit":
        p = np.clip(progress, progress_floor, 1.0 - progress_floor)
        lx, ly = np.log10(x[-points:]), logit(p[-points:])
        target = min(max(target, progress_floor), 1.0 - progress_floor)
        goal = float(logit(target))
    else:
        lx, ly, goal = np.log10(x[-points:]), np.asarray(progress[-points:], float), target
    if np.unique(lx).size < 2:
        return math.inf
    slope, intercept = np.polyfit(lx, ly, 1)
    return _line_crossing(float(slope), float(intercept), goal)


def _line_crossing(slope: float, intercept: float, goal: float) -> float:
    if not slope > 0:
        return math.inf
    log10_cross = (goal - intercept) / slope
    return float(10.0**log10_cross) if log10_cross < 300 else math.inf


def trend_crossing_ci95(
    x: np.ndarray, progress: np.ndarray, target: float, points: int = TREND_POINTS,
    progress_floor: float = PROGRESS_FLOOR, space: str = TREND_SPACE,
    n_bootstrap: int = N_BOOTSTRAP, seed: int = 0,
) -> tuple[float, float]:
    """95% residual-bootstrap interval of `trend_crossing` (the line refitted on its fitted
    values plus resampled residuals); (nan, nan) without refits or with under 3 points."""
    points = min(points, x.size)
    if n_bootstrap <= 0 or points < 3:
        return (math.nan, math.nan)
    if space == "logit":
        p = np.clip(progress, progress_floor, 1.0 - progress_floor)
        lx, ly = np.log10(x[-points:]), logit(p[-points:])
        goal = float(logit(min(max(target, progress_floor), 1.0 - progress_floor)))
    else:
        lx, ly, goal = np.log10(x[-points:]), np.asarray(progress[-points:], float), target
    if np.unique(lx).size < 2:
        return (math.nan, math.nan)
    coef = np.polyfit(lx, ly, 1)
    fitted = np.polyval(coef, lx)
    resid = ly - fitted
    rng = np.random.default_rng(seed)
    draws = fitted[:, None] + rng.choice(resid - resid.mean(), size=(lx.size, n_bootstrap))
    slopes, intercepts = np.polyfit(lx, draws, 1)
    samples = np.sort([_line_crossing(float(a), float(b), goal)
                       for a, b in zip(slopes, intercepts, strict=True)])
    lo = samples[int(math.floor(0.025 * (samples.size - 1)))]  # order statistics: inf-safe
    hi = samples[int(math.ceil(0.975 * (samples.size - 1)))]
    return (float(lo), float(hi))


def trend_label(
    x: np.ndarray, y: np.ndarray, *, threshold: float, chance: float | None = None,
    ceil_limit: float = 1.0, near_factor: float = 10.0, trend_points: int = TREND_POINTS,
    progress_floor: float = PROGRESS_FLOOR, trend_space: str = TREND_SPACE,
    decision_ratio: float = DECISION_RATIO,
) -> tuple[str, str, float]:
    """(label near | far, reason, crossing scale) from the trend of progress towards
    `threshold` (metric units) of points sorted by x (scale, e.g. FLOPs). chance None: the
    first point is the floor. near: the trend crosses within decision_ratio x near_factor of
    the largest scale (the crossing returned is the trend's own). Does not check whether the
    threshold is already reached."""
    floor = chance if chance is not None else float(y[0])
    span = ceil_limit - floor
    progress = (y - floor) / span if span else np.zeros_like(y)
    cross = trend_crossing(x, progress, (threshold - floor) / span if span else 1.0,
                           min(trend_points, x.size), progress_floor, trend_space)
    if math.isinf(cross):
        return "far", "no rising trend towards the threshold", cross
    reach = decision_ratio * near_factor
    if cross <= reach * float(x.max()):
        return "near", f"rising trend crosses the threshold within {reach:g}x", cross
    return "far", f"rising trend crosses the threshold beyond {reach:g}x", cross
