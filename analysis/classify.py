"""Sort tasks into past / near / far of their transition, with the predicted crossing scale.

- past: the largest scale tried is beyond the fitted sigmoid's upper knee (incremental
  gains only), or the threshold is already reached there.
- near: the predicted crossing of the threshold (default: the sigmoid midpoint) lies within
  `near_factor` (10x) of the largest scale tried.
- far: the crossing lies beyond that, or the metric has not risen off its floor yet.

Scale is compute C in FLOPs (or parameters N; the column is named by the caller).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaletrack.analysis.emergence import (
    EmergenceProfile,
    SigmoidFit,
    emergence_profile,
    fit_floored_sigmoid,
)
from scaletrack.errors import DataError

LABELS = ("past", "near", "far")


@dataclass(frozen=True)
class TaskClassification:
    """Where one task stands relative to its transition.

    crossing / crossing_ci95: scale (units of x) at which the fitted curve reaches
    `threshold` (inf: never on the fitted curve; 0: at every scale). ratio_to_max:
    crossing / x_max. suddenness: the sigmoid's steepness k in decades^-1 (the rise goes
    from ~21% to ~79% in 2.63/k decades); max_slope_per_decade in metric units.
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

    def to_row(self) -> dict[str, object]:
        """A flat dict for a DataFrame row (fit parameters spread into columns)."""
        row: dict[str, object] = {
            "task": self.task,
            "metric": self.metric,
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
    n_bootstrap: int = 200,
    seed: int = 0,
    x_name: str = "C",
) -> TaskClassification:
    """Classify one task from its (scale, metric) points.

    chance: the metric's floor (fixed in the fit when given; otherwise fitted and the lowest
    observed value is used for the flat-start profile). threshold: the bar to clear (in
    metric units, reached from below if increasing); default: the fitted sigmoid midpoint.
    min_rise: fraction of the usable range (ceil_limit - chance) the metric must climb
    above its floor to count as having risen at all. A task is `emergent` when it stays near
    its floor for at least a decade of scale, then rises by at least twice `min_rise`, with
    sigmoid steepness k of at least `min_sharpness` per decade (the bulk of the rise within
    ~1.75 decades).
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    keep = np.isfinite(xa) & np.isfinite(ya) & (xa > 0)
    xa, ya = xa[keep], ya[keep]
    if xa.size == 0:
        raise DataError(f"task {task!r}: no points with finite value and positive {x_name}")
    if ceil_limit is None:
        ceil_limit = 1.0 if increasing else 0.0
    sign = 1.0 if increasing else -1.0
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

    if fit is None:
        thr = threshold if threshold is not None else math.nan
        crossed = threshold is not None and sign * (best - threshold) >= 0
        return TaskClassification(
            task=task, metric=metric, label="past" if crossed else "far",
            reason="too few points to fit; " + ("threshold reached" if crossed else "no fit"),
            threshold=thr, threshold_source="user" if threshold is not None else "midpoint",
            x_max=x_max, best_value=best, crossing=math.nan, crossing_ci95=(math.nan, math.nan),
            ratio_to_max=math.nan, suddenness=math.nan, max_slope_per_decade=math.nan,
            emergent=profile.emergent, decades_at_chance=profile.decades_at_chance,
            fit=None, profile=profile,
        )

    thr_source = "user" if threshold is not None else "midpoint"
    thr = float(threshold) if threshold is not None else fit.midpoint_value
    crossing = fit.crossing(thr)
    ci = fit.crossing_ci95(thr)
    ratio = crossing / x_max if x_max > 0 else math.nan
    risen = profile.rise >= min_rise * scale_range
    beyond_knee = x_max >= fit.upper_knee
    reached = threshold is not None and sign * (best - threshold) >= 0
    if not risen:
        label, reason = "far", "no rise off the floor yet"
    elif reached:
        label, reason = "past", "threshold already reached at the largest scale"
    elif beyond_knee and threshold is None:
        label, reason = "past", "largest scale beyond the upper knee of the fitted sigmoid"
    elif beyond_knee and math.isinf(crossing):
        label, reason = "far", "curve has saturated below the threshold"
    elif crossing <= near_factor * x_max:
        label = "near"
        reason = f"predicted crossing within {near_factor:g}x of the largest scale"
    else:
        label = "far"
        reason = f"predicted crossing beyond {near_factor:g}x of the largest scale"
    return TaskClassification(
        task=task, metric=metric, label=label, reason=reason, threshold=thr,
        threshold_source=thr_source, x_max=x_max, best_value=best, crossing=crossing,
        crossing_ci95=ci, ratio_to_max=ratio, suddenness=fit.params["k"],
        max_slope_per_decade=fit.max_slope_per_decade,
        emergent=profile.emergent
        and fit.params["k"] >= min_sharpness
        and profile.rise >= 2.0 * min_rise * scale_range,
        decades_at_chance=profile.decades_at_chance, fit=fit, profile=profile,
    )


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
    n_bootstrap: int = 200,
    seed: int = 0,
) -> dict[tuple[str, str], TaskClassification]:
    """Classify every (task, metric) group of a long DataFrame (arguments: `classify_tasks`).

    Returns {(task, metric): TaskClassification}, keeping the fits (for plots)."""
    for col in (task_col, x_col, value_col):
        if col not in df.columns:
            raise DataError(f"column {col!r} not in the table (have: {', '.join(df.columns)})")
    if chance_col is not None and chance_col not in df.columns:
        raise DataError(f"chance column {chance_col!r} not in the table")
    keys = [task_col] + ([metric_col] if metric_col and metric_col in df.columns else [])
    out: dict[tuple[str, str], TaskClassification] = {}
    for key, g in df.groupby(keys, sort=True):
        key_t = key if isinstance(key, tuple) else (key,)
        task = str(key_t[0])
        metric = str(key_t[1]) if len(key_t) > 1 else value_col
        lower = _is_lower_better(metric, lower_is_better)
        ch = _pick(chance, task)
        if chance_col is not None:
            vals = g[chance_col].dropna()
            ch = float(vals.iloc[0]) if len(vals) else ch
        cl = _pick(ceil_limit, task)
        if cl is None and not lower and _looks_percent(g[value_col]):
            cl = 100.0
        out[(task, metric)] = classify_task(
            pd.to_numeric(g[x_col], errors="coerce").to_numpy(dtype=float),
            pd.to_numeric(g[value_col], errors="coerce").to_numpy(dtype=float),
            task=task, metric=metric, chance=ch, threshold=_pick(threshold, task),
            increasing=not lower, ceil_limit=cl, near_factor=near_factor,
            n_bootstrap=n_bootstrap, seed=seed, x_name=x_col,
        )
    return out


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
    n_bootstrap: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """Classify every (task, metric) group of a long DataFrame; one row per group.

    x_col: scale (FLOPs, or N). metric_col None: group by task only. chance / threshold /
    ceil_limit: one value for all, or a mapping task -> value; chance_col: a column holding
    each row's chance level. lower_is_better: metric -> True for losses (default: metrics
    named like loss/bpb/ppl/perplexity/nll/bits); values above 1 get ceil_limit 100.
    Columns: task, metric, label, threshold, threshold_source, x_max, best_value, crossing,
    crossing_lo, crossing_hi, ratio_to_max, suddenness, max_slope_per_decade, emergent,
    decades_at_chance, reason, fit_floor, fit_ceil, fit_k, fit_log10_mid, fit_rmse.
    """
    results = classify_groups(
        df, task_col=task_col, metric_col=metric_col, x_col=x_col, value_col=value_col,
        chance=chance, chance_col=chance_col, threshold=threshold,
        lower_is_better=lower_is_better, ceil_limit=ceil_limit, near_factor=near_factor,
        n_bootstrap=n_bootstrap, seed=seed,
    )
    return pd.DataFrame([r.to_row() for r in results.values()])


def _pick(value: float | Mapping[str, float] | None, task: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        v = value.get(task)
        return None if v is None else float(v)
    return float(value)


_LOSS_WORDS = ("loss", "bpb", "ppl", "perplexity", "nll", "bits")


def _is_lower_better(metric: str, override: Mapping[str, bool] | None) -> bool:
    if override is not None and metric in override:
        return bool(override[metric])
    m = metric.lower()
    return any(w in m for w in _LOSS_WORDS)


def _looks_percent(values: pd.Series) -> bool:
    v = pd.to_numeric(values, errors="coerce").dropna()
    return bool(len(v)) and float(v.max()) > 1.0 and float(v.min()) >= 0.0
