"""Sort tasks into past / near / far of their transition, with the predicted crossing scale.

Rules, in this order:
- past: the threshold is already reached at some scale tried; without a threshold, the metric
  has risen off its floor and the largest scale is beyond the fitted sigmoid's upper knee.
  A task that never left its floor (chance) is never `past`.
- with a threshold (the bar to clear), near vs far comes from the *trend* of the continuous
  progress towards it: progress p = (value - chance) / (ceiling - chance), clipped to
  [0.01, 0.99] (1 % of the range: the noise floor); a line through the last `trend_points`
  (6) points of logit progress against log10 scale (where a sigmoid rise is a straight
  line) is extrapolated to the bar (`trend_space` "raw": progress itself).
  Rule "shape" (the default, `near_rule`): a logistic model on the trajectory's shape
  (the gap to the bar, the trend's slope, the last decade's slope, its bend, its noise,
  the trend's and the last two points' crossings, the decades seen; analysis.emergence_shape)
  gives P(the bar is crossed within 10x); near when P >= NEAR_TAU (0.7). It applies with
  near_factor 10 and 3 or more scales; otherwise, and with near_rule "trend": near when the
  trend crosses within `near_factor` (10x) of the largest scale tried, far when later or
  when it does not rise. Either way the trend's crossing and interval are reported. This
  reads the small but steady gains of a task still near chance, which the accuracy sigmoid
  calls "no rise yet". The sigmoid fit is still reported (crossing, interval, suddenness).
- without a threshold, the sigmoid midpoint is the bar: near when the predicted crossing is
  within `near_factor`, far when beyond, or when the metric has not risen off its floor.

The truncation back-tests in bench/bench_emergence_sources.py (five published sources,
each scored apart against two trivial rules) and bench/bench_emergence_backtest.py measure
these rules. The metric's direction comes from its name (analysis.metric_direction).

Scale is compute C in FLOPs (or parameters N; the column is named by the caller).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaletrack.analysis.emergence import (
    N_BOOTSTRAP,
    EmergenceProfile,
    SigmoidFit,
    emergence_profile,
    fit_floored_sigmoid,
)
from scaletrack.analysis.emergence_shape import shape_features, shape_near_probability
from scaletrack.analysis.emergence_trend import (
    PROGRESS_FLOOR,
    TREND_POINTS,
    TREND_SPACE,
    trend_crossing_ci95,
    trend_label,
)
from scaletrack.analysis.metric_direction import metric_direction
from scaletrack.errors import DataError

LABELS = ("past", "near", "far")
# The near/far rule for a task below its bar: "shape" (a logistic model on the trajectory's
# shape, analysis.emergence_shape, near when P(near) >= NEAR_TAU) or "trend" (the trend
# line's crossing). "shape" with tau 0.7 was chosen in round 3 of
# bench/bench_emergence_sources.py on the selection halves (mean primary margin +6.5 points
# against +2.8 for the trend); "bootstrap" (the share of trend refits crossing within reach)
# was a candidate there and lost.
NEAR_RULES = ("shape", "trend")
NEAR_RULE = "shape"
NEAR_TAU = 0.7
NEAR_BOOTSTRAP_POINTS = 6


@dataclass(frozen=True)
class TaskClassification:
    """Where one task stands relative to its transition.

    crossing / crossing_ci95: scale (units of x) at which the fitted curve reaches
    `threshold` (inf: never on the fitted curve; 0: at every scale). ratio_to_max:
    crossing / x_max; below a user's threshold both come from the progress trend (its
    residual bootstrap), else from the sigmoid. suddenness: the sigmoid's steepness k in
    decades^-1 (the rise goes from ~21% to ~79% in 2.63/k decades); max_slope_per_decade in
    metric units.
    """

    task: str
    metric: str
    label: str
    reason: str
    threshold: float
    threshold_source: str  # "user" | "midpoint"
    x_max: float
    best_value: float
    crossing: float
    crossing_ci95: tuple[float, float]
    ratio_to_max: float
    suddenness: float
    max_slope_per_decade: float
    emergent: bool
    decades_at_chance: float
    fit: SigmoidFit | None
    profile: EmergenceProfile
    shot: int | None = None  # few-shot examples in the prompt, when the group has one
    lower_is_better: bool = False  # classified inverted: the metric improves by falling
    near_probability: float = math.nan  # P(bar crossed within 10x) of the shape rule

    @property
    def group(self) -> tuple[str, str, int | None]:
        """(task, metric, shot): the curve this classification is of."""
        return (self.task, self.metric, self.shot)

    @property
    def title(self) -> str:
        """'task · metric · k-shot' (the shot part only when known)."""
        shot = "" if self.shot is None else f" · {self.shot}-shot"
        return f"{self.task} · {self.metric}{shot}"

    def to_row(self) -> dict[str, object]:
        """A flat dict for a DataFrame row (fit parameters spread into columns)."""
        row: dict[str, object] = {
            "task": self.task,
            "metric": self.metric,
            "shot": self.shot,
            "label": self.label,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "x_max": self.x_max,
            "best_value": self.best_value,
            "crossing": self.crossing,
            "crossing_lo": self.crossing_ci95[0],
            "crossing_hi": self.crossing_ci95[1],
            "ratio_to_max": self.ratio_to_max,
            "suddenness": self.suddenness,
            "max_slope_per_decade": self.max_slope_per_decade,
            "emergent": self.emergent,
            "decades_at_chance": self.decades_at_chance,
            "reason": self.reason,
            "lower_is_better": self.lower_is_better,
            "near_probability": self.near_probability,
        }
        if self.fit is not None:
            row.update({f"fit_{k}": v for k, v in self.fit.params.items()})
            row["fit_rmse"] = self.fit.rmse
        return row


def classify_task(
    x: np.ndarray | list[float],
    y: np.ndarray | list[float],
    *,
    task: str = "task",
    metric: str = "value",
    chance: float | None = None,
    threshold: float | None = None,
    increasing: bool = True,
    ceil_limit: float | None = None,
    near_factor: float = 10.0,
    min_rise: float = 0.05,
    min_sharpness: float = 1.5,
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
    x_name: str = "C",
    trend_points: int = TREND_POINTS,
    progress_floor: float = PROGRESS_FLOOR,
    trend_space: str = TREND_SPACE,
    near_rule: str = NEAR_RULE,
) -> TaskClassification:
    """Classify one task from its (scale, metric) points.

    chance: the metric's floor (fixed in the fit when given; otherwise fitted and the lowest
    observed value is used for the flat-start profile). threshold: the bar to clear (in
    metric units, reached from below if increasing); default: the fitted sigmoid midpoint.
    min_rise: fraction of the usable range (ceil_limit - chance) the metric must climb
    above its floor to count as having risen at all. A task is `emergent` when it stays near
    its floor for at least a decade of scale, then rises by at least twice `min_rise`, with
    sigmoid steepness k of at least `min_sharpness` per decade (the bulk of the rise within
    ~1.75 decades). near_rule: how a task below a given threshold is called near or far,
    "shape" (P(near) from the trajectory's shape >= NEAR_TAU; reach 10x and 3+ scales only,
    the trend rule otherwise) or "trend" (the trend line crosses within near_factor).
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    keep = np.isfinite(xa) & np.isfinite(ya) & (xa > 0)
    xa, ya = xa[keep], ya[keep]
    if xa.size == 0:
        raise DataError(f"task {task!r}: no points with finite value and positive {x_name}")
    order = np.argsort(xa, kind="stable")
    xa, ya = xa[order], ya[order]
    if ceil_limit is None:
        ceil_limit = 1.0 if increasing else 0.0
    sign = 1.0 if increasing else -1.0
    if chance is not None:
        if not (isinstance(chance, (int, float, np.floating)) and math.isfinite(chance)):
            raise DataError(f"task {task!r}: chance must be a finite number, got {chance!r}")
        if sign * (ceil_limit - chance) <= 0:
            raise DataError(f"task {task!r}: chance {chance:g} must lie below the ceiling "
                            f"{ceil_limit:g} in the improving direction")
        if threshold is not None and sign * (threshold - chance) <= 0:
            raise DataError(f"task {task!r}: threshold {threshold:g} is not beyond chance "
                            f"{chance:g}; a bar at chance says nothing")
    if threshold is not None and not math.isfinite(threshold):
        raise DataError(f"task {task!r}: threshold must be a finite number, got {threshold!r}")
    floor_for_profile = chance if chance is not None else float(
        ya.min() if increasing else ya.max()
    )
    scale_range = abs(ceil_limit - floor_for_profile) or 1.0
    profile = emergence_profile(
        xa, ya, floor=floor_for_profile, increasing=increasing, min_rise=min_rise,
        scale_range=scale_range,
    )
    x_max = float(xa.max())
    best = float(ya.max() if increasing else ya.min())
    fit: SigmoidFit | None = None
    try:
        fit = fit_floored_sigmoid(
            xa, ya, floor=chance, ceil_limit=ceil_limit, increasing=increasing,
            n_bootstrap=n_bootstrap, seed=seed, x_name=x_name,
        )
    except DataError:
        fit = None

    if near_rule not in NEAR_RULES:
        raise ValueError(f"near rule must be one of {', '.join(NEAR_RULES)}, got {near_rule!r}")
    near_p = math.nan

    def by_trend() -> tuple[str, str, float]:  # called only when a threshold is given
        nonlocal near_p
        bar = float(threshold) if threshold is not None else math.nan
        label, reason, cross = trend_label(
            xa, ya, threshold=bar, chance=chance, ceil_limit=ceil_limit,
            near_factor=near_factor, trend_points=trend_points,
            progress_floor=progress_floor, trend_space=trend_space)
        floor = chance if chance is not None else float(ya[0])
        span = ceil_limit - floor
        # the shape model was fitted for reach 10x and needs 3 scales
        if near_rule == "shape" and near_factor == 10.0 and span and np.unique(xa).size >= 3:
            near_p = float(shape_near_probability(shape_features(
                xa, (ya - floor) / span, (bar - floor) / span))[0])
            label = "near" if near_p >= NEAR_TAU else "far"
            reason = (f"trajectory shape gives P(crossing within 10x) = {near_p:.2f} "
                      f"({'>=' if label == 'near' else '<'} {NEAR_TAU:g}); {reason}")
        return label, reason, cross

    if fit is None:
        thr = threshold if threshold is not None else math.nan
        crossed = threshold is not None and sign * (best - threshold) >= 0
        label, reason, crossing = "far", "too few points to fit; no threshold", math.nan
        if crossed:
            label, reason = "past", "threshold already reached at a scale tried"
            crossing = float(xa[np.argmax(sign * (ya - float(thr)) >= 0)])  # thr: the one given
        elif threshold is not None and xa.size >= 2:
            label, reason, crossing = by_trend()
        return TaskClassification(
            task=task, metric=metric, label=label, reason=reason,
            threshold=thr, threshold_source="user" if threshold is not None else "midpoint",
            x_max=x_max, best_value=best, crossing=crossing, crossing_ci95=(math.nan, math.nan),
            ratio_to_max=crossing / x_max, suddenness=math.nan, max_slope_per_decade=math.nan,
            emergent=profile.emergent, decades_at_chance=profile.decades_at_chance,
            fit=None, profile=profile, lower_is_better=not increasing,
            near_probability=near_p,
        )

    thr_source = "user" if threshold is not None else "midpoint"
    thr = float(threshold) if threshold is not None else fit.midpoint_value
    crossing = fit.crossing(thr)
    ci = fit.crossing_ci95(thr)
    risen = profile.rise >= min_rise * scale_range
    beyond_knee = x_max >= fit.upper_knee
    reached = threshold is not None and sign * (best - threshold) >= 0
    if reached:
        label, reason = "past", "threshold already reached at a scale tried"
        # a bar already cleared is crossed at or before the first scale that cleared it,
        # never later, whatever the fitted curve says
        first = float(xa[np.argmax(sign * (ya - float(thr)) >= 0)])  # thr: the one given
        crossing = min(crossing, first) if math.isfinite(crossing) else first
        ci = (ci[0] if math.isnan(ci[0]) else min(ci[0], first),
              ci[1] if math.isnan(ci[1]) else min(ci[1], first))
    elif threshold is not None:
        label, reason, crossing = by_trend()
        floor = chance if chance is not None else float(ya[0])
        span = ceil_limit - floor
        if span:  # the interval of the estimate the label rests on: the trend's
            ci = trend_crossing_ci95(xa, (ya - floor) / span, (float(threshold) - floor) / span,
                                     trend_points, progress_floor, trend_space, n_bootstrap,
                                     seed)
    elif not risen:  # the midpoint of a curve that has not left its floor says nothing
        label, reason = "far", "no rise off the floor yet"
        crossing, ci = math.nan, (math.nan, math.nan)
    elif beyond_knee:
        label, reason = "past", "largest scale beyond the upper knee of the fitted sigmoid"
    elif crossing <= near_factor * x_max:
        label = "near"
        reason = f"predicted crossing within {near_factor:g}x of the largest scale"
    else:
        label = "far"
        reason = f"predicted crossing beyond {near_factor:g}x of the largest scale"
    ratio = crossing / x_max if x_max > 0 else math.nan
    return TaskClassification(
        task=task, metric=metric, label=label, reason=reason, threshold=thr,
        threshold_source=thr_source, x_max=x_max, best_value=best, crossing=crossing,
        crossing_ci95=ci, ratio_to_max=ratio, suddenness=fit.params["k"],
        max_slope_per_decade=fit.max_slope_per_decade,
        emergent=profile.emergent
        and fit.params["k"] >= min_sharpness
        and profile.rise >= 2.0 * min_rise * scale_range,
        decades_at_chance=profile.decades_at_chance, fit=fit, profile=profile,
        lower_is_better=not increasing, near_probability=near_p,
    )


class GroupClassifications(dict[tuple, TaskClassification]):
    """{(task, metric): TaskClassification}, or {(task, metric, shot): ...} when grouped by a
    shot column too; plus `left_out`: the groups not classified because their metric is a
    loss or two-sided (sorted), with the reason for each in `left_out_reasons`, and
    `inverted`: the metrics classified as lower-is-better (sorted)."""

    def __init__(self, items: Mapping[tuple, TaskClassification] | None = None,
                 left_out: list[tuple] | None = None,
                 left_out_reasons: Mapping[tuple, str] | None = None,
                 inverted: list[str] | None = None) -> None:
        super().__init__(items or {})
        self.left_out: list[tuple] = sorted(left_out or [], key=lambda k: tuple(map(str, k)))
        self.left_out_reasons: dict[tuple, str] = dict(left_out_reasons or {})
        self.inverted: list[str] = sorted(set(inverted or []))

    def direction_note(self) -> str:
        """One line: which metrics were classified inverted (lower is better) and which
        were left out and why; empty when neither happened."""
        parts = []
        if self.inverted:
            parts.append("classified as lower-is-better: " + ", ".join(self.inverted))
        reasons: dict[str, set[str]] = {}
        for key in self.left_out:
            reasons.setdefault(self.left_out_reasons.get(key, "a loss"), set()).add(str(key[1]))
        for why, metrics in sorted(reasons.items()):
            parts.append(f"left out ({why}): " + ", ".join(sorted(metrics)))
        return "; ".join(parts)


class Cancelled(Exception):  # noqa: N818 - the reason, not an error
    """Raised by a `progress` callback to stop `classify_groups` between groups."""


def _shot(value: object) -> int | None:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return int(f) if math.isfinite(f) else None


def classify_groups(
    df: pd.DataFrame,
    *,
    task_col: str = "task",
    metric_col: str | None = "metric",
    x_col: str = "C",
    value_col: str = "value",
    chance: float | Mapping[str, float] | None = None,
    chance_col: str | None = None,
    threshold: float | Mapping[str, float] | None = None,
    lower_is_better: Mapping[str, bool] | None = None,
    ceil_limit: float | Mapping[str, float] | None = None,
    near_factor: float = 10.0,
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
    shot_col: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    near_rule: str = NEAR_RULE,
) -> GroupClassifications:
    """Classify every (task, metric) group of a long DataFrame (arguments: `classify_tasks`).

    shot_col: a column of few-shot counts (lm-eval's n_shot); then every (task, metric, shot)
    is its own curve, keyed by that triple (rows without a count form their own group).
    progress(done, total) is called before the first group and after each one; it may raise
    `Cancelled` to stop. near_rule: "shape" (default) or "trend", as in `classify_task`.

    Returns {(task, metric): TaskClassification}, keeping the fits (for plots). A metric that
    looks like a loss (loss, bpb, ppl, ...) is not a capability, nor is a two-sided score
    (pct_stereotype, best at 0.5): unless `lower_is_better` names it, its group is left out
    of the result and listed in the result's `left_out`, and a table holding nothing else is
    refused. Known lower-is-better scores (likelihood_difference, ter, wer, cer,
    brier_score, edit_distance; analysis.metric_direction) are classified inverted, falling
    towards their ideal, and listed in `inverted`; `direction_note()` says both in a line.
    lower_is_better {metric: False} forces higher-is-better."""
    for col in (task_col, x_col, value_col):
        if col not in df.columns:
            raise DataError(f"column {col!r} not in the table (have: {', '.join(df.columns)})")
    if chance_col is not None and chance_col not in df.columns:
        raise DataError(f"chance column {chance_col!r} not in the table")
    if shot_col is not None and shot_col not in df.columns:
        raise DataError(f"shot column {shot_col!r} not in the table")
    has_metric = bool(metric_col) and metric_col in df.columns
    keys = [task_col] + ([metric_col] if has_metric else [])
    if shot_col is not None:
        df = df.assign(_shot=pd.to_numeric(df[shot_col], errors="coerce").fillna(-1))
        keys.append("_shot")
    out: dict[tuple, TaskClassification] = {}
    left_out: list[tuple] = []
    reasons: dict[tuple, str] = {}
    inverted: list[str] = []
    groups = df.groupby(keys, sort=True)
    total = groups.ngroups
    if progress is not None:
        progress(0, total)
    for done, (key, g) in enumerate(groups, start=1):
        key_t = key if isinstance(key, tuple) else (key,)
        task = str(key_t[0])
        metric = str(key_t[1]) if has_metric else value_col
        shot = _shot(key_t[-1]) if shot_col is not None else None
        shot = None if shot is not None and shot < 0 else shot
        group_key = (task, metric, shot) if shot_col is not None else (task, metric)
        direction = metric_direction(metric, lower_is_better)
        if direction.kind in ("loss", "two_sided") and not direction.overridden:
            left_out.append(group_key)
            reasons[group_key] = _LEFT_OUT_REASON[direction.kind]
            if progress is not None:
                progress(done, total)
            continue
        lower = direction.lower_is_better
        if lower:
            inverted.append(metric)
        ch = _pick(chance, task)
        if chance_col is not None:
            vals = g[chance_col].dropna()
            ch = float(vals.iloc[0]) if len(vals) else ch
        cl = _pick(ceil_limit, task)
        if cl is None and lower and direction.ideal is not None:
            cl = direction.ideal
        if cl is None and not lower and _looks_percent(g[value_col]):
            cl = 100.0
        result = classify_task(
            pd.to_numeric(g[x_col], errors="coerce").to_numpy(dtype=float),
            pd.to_numeric(g[value_col], errors="coerce").to_numpy(dtype=float),
            task=task, metric=metric, chance=ch, threshold=_pick(threshold, task),
            increasing=not lower, ceil_limit=cl, near_factor=near_factor,
            n_bootstrap=n_bootstrap, seed=seed, x_name=x_col, near_rule=near_rule,
        )
        out[group_key] = dataclasses.replace(result, shot=shot) if shot is not None else result
        if progress is not None:
            progress(done, total)
    if not out and left_out:
        task, metric = left_out[0][:2]
        raise DataError(
            f"metric {metric!r} of task {task!r} {reasons[left_out[0]]}, not a capability "
            f"with one direction; invert it explicitly (lower_is_better={{{metric!r}: True}}; "
            f"CLI: --lower-is-better {metric}) or leave it out"
        )
    return GroupClassifications(out, left_out, reasons, inverted)


def eval_points(evals: pd.DataFrame) -> pd.DataFrame:
    """A store's eval rows (`Store.evals()`) as the points of emergence curves: columns task,
    metric, n_shot, C (the checkpoint's FLOPs, or 6·N·tokens where none was recorded), value,
    run_key, N, tokens; rows without a positive C or a finite value are dropped. Group them by
    (task, metric, n_shot): `classify_groups(..., shot_col="n_shot")`."""
    if evals.empty:
        return pd.DataFrame(columns=["task", "metric", "n_shot", "C", "value", "run_key",
                                     "N", "tokens"])
    n = pd.to_numeric(evals["N"], errors="coerce").to_numpy(dtype=float)
    tokens = pd.to_numeric(evals["tokens"], errors="coerce").to_numpy(dtype=float)
    flops = pd.to_numeric(evals["flops"], errors="coerce").to_numpy(dtype=float)
    c = np.where(np.isfinite(flops) & (flops > 0), flops, 6.0 * n * tokens)
    value = pd.to_numeric(evals["value"], errors="coerce").to_numpy(dtype=float)
    frame = pd.DataFrame({
        "task": evals["task"].astype(str).to_numpy(), "metric": evals["metric"].astype(str)
        .to_numpy(), "n_shot": pd.to_numeric(evals["n_shot"], errors="coerce").to_numpy(),
        "C": c, "value": value, "run_key": evals["run_key"].to_numpy(), "N": n,
        "tokens": tokens,
    })
    keep = np.isfinite(c) & (c > 0) & np.isfinite(value)
    return frame[keep].reset_index(drop=True)


def classify_tasks(
    df: pd.DataFrame,
    *,
    task_col: str = "task",
    metric_col: str | None = "metric",
    x_col: str = "C",
    value_col: str = "value",
    chance: float | Mapping[str, float] | None = None,
    chance_col: str | None = None,
    threshold: float | Mapping[str, float] | None = None,
    lower_is_better: Mapping[str, bool] | None = None,
    ceil_limit: float | Mapping[str, float] | None = None,
    near_factor: float = 10.0,
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
    shot_col: str | None = None,
    near_rule: str = NEAR_RULE,
) -> pd.DataFrame:
    """Classify every (task, metric) group of a long DataFrame; one row per group (per
    (task, metric, shot) with `shot_col`).

    x_col: scale (FLOPs, or N). metric_col None: group by task only. chance / threshold /
    ceil_limit: one value for all, or a mapping task -> value; chance_col: a column holding
    each row's chance level. lower_is_better: metric -> True / False, overriding the
    direction read from the metric's name (analysis.metric_direction: losses named like
    loss/bpb/ppl/perplexity/nll/bits are left out, known bias and error scores such as
    likelihood_difference are inverted); values above 1 get ceil_limit 100.
    Columns: task, metric, shot, label, threshold, threshold_source, x_max, best_value, crossing,
    crossing_lo, crossing_hi, ratio_to_max, suddenness, max_slope_per_decade, emergent,
    decades_at_chance, reason, lower_is_better, near_probability, fit_floor, fit_ceil, fit_k,
    fit_log10_mid, fit_rmse. near_rule: "shape" (default) or "trend", as in `classify_task`.
    """
    results = classify_groups(
        df, task_col=task_col, metric_col=metric_col, x_col=x_col, value_col=value_col,
        chance=chance, chance_col=chance_col, threshold=threshold,
        lower_is_better=lower_is_better, ceil_limit=ceil_limit, near_factor=near_factor,
        n_bootstrap=n_bootstrap, seed=seed, shot_col=shot_col, near_rule=near_rule,
    )
    return pd.DataFrame([r.to_row() for r in results.values()])


def _pick(value: float | Mapping[str, float] | None, task: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        v = value.get(task)
        return None if v is None else float(v)
    return float(value)


_LEFT_OUT_REASON = {"loss": "looks like a loss",
                    "two_sided": "is two-sided (best at an interior value)"}


def _looks_percent(values: pd.Series) -> bool:
    v = pd.to_numeric(values, errors="coerce").dropna()
    return bool(len(v)) and float(v.max()) > 1.0 and float(v.min()) >= 0.0
