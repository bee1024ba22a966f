"""Compute-optimal allocation from runs: Chinchilla approaches 1 and 2.

Approach 2 (`fit_isoflop`): group runs by compute budget (snapped to nominal budgets), fit a
parabola of loss in log N per budget, take its minimum N_opt(C), then fit power laws
N_opt = k_N·C^a and D_opt = C/(6·N_opt) = k_D·C^b (N params, D tokens, C FLOPs).
A budget whose parabola vertex lies outside the model sizes sampled at that budget is an
extrapolated minimum, not a measured one: `isoflop_minima` flags it (`in_range` False) and
`fit_isoflop` leaves it out of the exponent fit by default (`drop_out_of_range=False` keeps
it); the fit's `extra["out_of_range_budgets"]` lists them. Budgets are taken from a column
when given, else snapped from C (`snap_budgets`); `extra["budget_snapping"]` says which and
how many distinct C values went into each budget.
Approach 1 (`fit_envelope`): the compute-efficient frontier, i.e. the lowest loss reached at
each compute over all runs or training-curve points, and N_opt(C) fitted on it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from scaletrack.analysis.bootstrap import percentile_interval
from scaletrack.analysis.io import validate_frame
from scaletrack.analysis.result import FitResult
from scaletrack.errors import DataError


def snap_budgets(
    compute: pd.Series | np.ndarray, *, gap_dex: float = 0.1, max_span_dex: float = 0.2
) -> np.ndarray:
    """Nominal budget (FLOPs) per run.

    Sorted log10 C is split wherever neighbours differ by more than `gap_dex`; each group gets
    its median rounded to 2 significant digits. If a group spans more than `max_span_dex`
    (compute values that do not fall into separated budgets), every C is instead rounded to
    1 significant digit (6.3e19 -> 6e19, 2.7e21 -> 3e21), the grid Chinchilla used.
    """
    c = np.asarray(compute, dtype=float)
    order = np.argsort(c)
    logs = np.log10(c[order])
    group = np.concatenate([[0], np.cumsum(np.diff(logs) > gap_dex)])
    nominal = np.empty_like(c)
    for g in np.unique(group):
        members = order[group == g]
        span = logs[group == g].max() - logs[group == g].min()
        if span > max_span_dex:
            return np.array([float(f"{v:.1g}") for v in c])
        nominal[members] = float(f"{float(np.median(c[members])):.2g}")
    return nominal


def _parabola_minima(
    logn: np.ndarray, loss: np.ndarray, weights: np.ndarray | None = None
) -> tuple[float, float, float]:
    """Vertex (log N_opt, loss_opt, curvature) of loss = c2·u^2 + c1·u + c0 in u = log N."""
    mid = logn.mean()
    u = logn - mid
    x = np.stack([u * u, u, np.ones_like(u)], axis=1)
    if weights is not None:
        sw = np.sqrt(weights)
        x, loss = x * sw[:, None], loss * sw
    coef, *_ = np.linalg.lstsq(x, loss, rcond=None)
    c2, c1, c0 = coef
    if c2 <= 0:
        return float("nan"), float("nan"), float(c2)
    u_opt = -c1 / (2 * c2)
    return float(u_opt + mid), float(c0 - c1 * c1 / (4 * c2)), float(c2)


def window_mask(
    logn: np.ndarray, loss: np.ndarray, window: int | None, window_dex: float | None = None
) -> np.ndarray:
    """Runs of one budget that its parabola is fitted to (logn = ln N, loss in nats).

    `window_dex` (decades) keeps the sizes within that many decades of the lowest-loss run's
    size, widened to the 3 nearest by rank when fewer fall inside; else `window` keeps that
    many sizes nearest (by rank of size) the lowest-loss run; all runs when both are None.
    A parabola in log N only approximates an IsoFLOP profile near its minimum; far-off sizes
    bend a global parabola's vertex."""
    if window_dex is not None:
        dex = np.abs(logn - logn[int(np.argmin(loss))]) / np.log(10.0)
        mask = dex <= window_dex + 1e-9
        if np.unique(logn[mask]).size >= 3:
            return mask
        window = 3
    if window is None or logn.size <= window:
        return np.ones(logn.size, dtype=bool)
    order = np.argsort(logn, kind="stable")
    i = int(np.argmin(loss[order]))
    lo = max(0, min(i - window // 2, logn.size - window))
    mask = np.zeros(logn.size, dtype=bool)
    mask[order[lo:lo + window]] = True
    return mask


# Chosen by bench/bench_isoflop_window.py on simulated grids with a known exponent (400
# grids: mean |a_hat - a_true| 0.012 with all sizes, 0.015 / 0.018 / 0.027 with 9 / 7 / 5
# sizes, 0.012 / 0.018 / 0.031 with 1.0 / 0.75 / 0.5 decades), not on published data.
DEFAULT_WINDOW: int | None = None
DEFAULT_WINDOW_DEX: float | None = None


def isoflop_minima(
    df: pd.DataFrame,
    *,
    budget_col: str | None = None,
    min_points: int = 3,
    gap_dex: float = 0.1,
    window: int | None = DEFAULT_WINDOW,
    window_dex: float | None = DEFAULT_WINDOW_DEX,
) -> pd.DataFrame:
    """Per budget: C, N_opt, D_opt = C/(6·N_opt), loss_opt, n_points, curvature, coef (list),
    N_min/N_max (sampled sizes), in_range (vertex inside them).

    `budget_col` names a column of nominal budgets; else budgets come from `snap_budgets(C)`.
    The parabola is fitted to the runs `window_mask(window, window_dex)` keeps around the
    lowest-loss run (both None: all).
    Budgets with fewer than `min_points` runs or a non-convex parabola are dropped.
    """
    data = validate_frame(df, ("N", "loss") + (("C",) if "D" not in df.columns else ("D",)))
    if budget_col:
        budgets = data[budget_col].to_numpy(float)
    else:
        budgets = snap_budgets(data["C"], gap_dex=gap_dex)
    rows = []
    for budget in np.unique(budgets):
        part = data[budgets == budget]
        if len(part) < min_points:
            continue
        logn_all = np.log(part["N"].to_numpy(float))
        n_runs = len(part)
        part = part[window_mask(logn_all, part["loss"].to_numpy(float), window, window_dex)]
        logn = np.log(part["N"].to_numpy(float))
        logn_opt, loss_opt, curv = _parabola_minima(logn, part["loss"].to_numpy(float))
        if not np.isfinite(logn_opt):
            continue
        u = logn - logn.mean()
        with warnings.catch_warnings():  # a near-degenerate design is judged by curvature
            warnings.simplefilter("ignore", np.exceptions.RankWarning)
            coef = np.polyfit(u, part["loss"].to_numpy(float), 2)
        n_opt = float(np.exp(logn_opt))
        rows.append(
            {
                "C": float(budget), "N_opt": n_opt, "D_opt": float(budget) / (6.0 * n_opt),
                "loss_opt": loss_opt, "n_points": n_runs, "n_in_window": len(part),
                "curvature": curv,
                "logN_center": float(logn.mean()), "coef": [float(c) for c in coef],
                "N_min": float(np.exp(logn_all.min())), "N_max": float(np.exp(logn_all.max())),
                "in_range": bool(logn_all.min() <= logn_opt <= logn_all.max()),
                "n_distinct_C": int(part["C"].nunique()) if "C" in part.columns else 1,
            }
        )
    return pd.DataFrame(rows)


def _loglog_fit(c: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(k, exponent) of y = k·c^exponent by least squares in log-log space (NaN when a wild
    bootstrap vertex makes y non-finite)."""
    with np.errstate(all="ignore"):
        lc, ly = np.log(c), np.log(y)
        if not (np.all(np.isfinite(lc)) and np.all(np.isfinite(ly))):
            return float("nan"), float("nan")
        slope, intercept = np.polyfit(lc, ly, 1)
        return float(np.exp(intercept)), float(slope)


def _allocation_result(
    form: str, points: pd.DataFrame, data: pd.DataFrame, selection: dict, extra: dict,
    samples: dict[str, np.ndarray] | None,
) -> FitResult:
    c, n_opt = points["C"].to_numpy(float), points["N_opt"].to_numpy(float)
    k_n, a = _loglog_fit(c, n_opt)
    k_d, b = _loglog_fit(c, c / (6.0 * n_opt))
    params = {"k_N": k_n, "a": a, "k_D": k_d, "b": b}
    ci = {k: (float("nan"), float("nan")) for k in params}
    if samples:
        ci = {k: percentile_interval(samples[k]) for k in params}
    return FitResult(
        form=form,
        params=params,
        ci=ci,
        residuals=tuple(np.log(k_n * c**a) - np.log(n_opt)),
        selection={"index": [_label(i) for i in data.index], **selection},
        n_points=len(data),
        extra={**extra, "points": _records(points)},
        boot_params=(np.stack([samples[k] for k in params], axis=1) if samples
                     else np.empty((0, len(params)))),
    )


def fit_isoflop(
    df: pd.DataFrame,
    *,
    budget_col: str | None = None,
    min_points: int = 3,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    drop_out_of_range: bool = True,
    window: int | None = DEFAULT_WINDOW,
    window_dex: float | None = DEFAULT_WINDOW_DEX,
) -> FitResult:
    """Chinchilla approach 2 on runs with columns N, D (or C) and loss; form "isoflop".

    Intervals: resample runs within each budget, refit parabolas and both power laws.
    `extra["points"]` holds the per-budget minima used (C, N_opt, D_opt, loss_opt, in_range,
    ...); `extra["out_of_range_budgets"]` the budgets whose vertex fell outside the sampled N
    range (left out unless `drop_out_of_range=False`). `window` / `window_dex`: which sizes
    of a budget its parabola sees (`window_mask`); default all, as chosen on simulated grids
    in bench/bench_isoflop_window.py.
    """
    data = validate_frame(df, ("N", "loss") + (("C",) if "D" not in df.columns else ("D",)))
    all_minima = isoflop_minima(data, budget_col=budget_col, min_points=min_points,
                                window=window, window_dex=window_dex)
    if all_minima.empty:
        raise DataError(f"IsoFLOP fit needs budgets with >= {min_points} runs and a convex "
                        "loss-vs-log N curve; found none")
    outside = all_minima[~all_minima["in_range"]]
    minima = all_minima[all_minima["in_range"]] if drop_out_of_range else all_minima
    if len(minima) < 2:
        raise DataError(
            f"IsoFLOP fit needs at least 2 budgets with >= {min_points} runs and a convex "
            f"loss-vs-log N curve whose minimum lies inside the sampled sizes; found "
            f"{len(minima)} ({len(outside)} budgets have their minimum outside)"
        )
    minima = minima.reset_index(drop=True)
    budgets = data[budget_col].to_numpy(float) if budget_col else snap_budgets(data["C"])
    samples = None
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        groups = []
        for b in minima["C"]:
            logn = np.log(data["N"].to_numpy(float)[budgets == b])
            loss = data["loss"].to_numpy(float)[budgets == b]
            keep = window_mask(logn, loss, window, window_dex)
            groups.append((float(b), logn[keep], loss[keep]))
        rows = []
        for _ in range(n_bootstrap):
            cs, ns = [], []
            for budget, logn, loss in groups:
                idx = rng.integers(0, len(loss), size=len(loss))
                if np.unique(logn[idx]).size < 3:
                    continue
                logn_opt, _, _ = _parabola_minima(logn[idx], loss[idx])
                # a resample's vertex far outside the sizes sampled is no minimum at all
                if np.isfinite(logn_opt) and logn.min() - 1 <= logn_opt <= logn.max() + 1:
                    cs.append(budget)
                    ns.append(np.exp(logn_opt))
            if len(cs) < 2:
                continue
            cs_a, ns_a = np.asarray(cs), np.asarray(ns)
            k_n, a = _loglog_fit(cs_a, ns_a)
            with np.errstate(all="ignore"):
                k_d, b = _loglog_fit(cs_a, cs_a / (6.0 * ns_a))
            rows.append((k_n, a, k_d, b))
        arr = np.asarray(rows, dtype=float).reshape(-1, 4)
        samples = {k: arr[:, i] for i, k in enumerate(("k_N", "a", "k_D", "b"))}
    if budget_col:
        snapping = f"budgets from column {budget_col!r}"
    else:
        n_c = int(data["C"].nunique())
        snapping = (f"{n_c} distinct C values snapped to {len(np.unique(budgets))} nominal "
                    "budgets (groups split at gaps > 0.1 dex, median to 2 significant digits)")
    return _allocation_result(
        "isoflop", minima, data,
        {"budget_col": budget_col, "min_points": min_points, "budgets": minima["C"].tolist(),
         "drop_out_of_range": drop_out_of_range, "window": window,
         "window_dex": window_dex},
        {"n_bootstrap": n_bootstrap, "seed": seed, "budget_snapping": snapping,
         "out_of_range_budgets": [
             {"C": float(r.C), "N_opt": float(r.N_opt), "N_min": float(r.N_min),
              "N_max": float(r.N_max)} for r in outside.itertuples()]},
        samples,
    )


def compute_frontier(df: pd.DataFrame, *, n_bins: int | None = None) -> pd.DataFrame:
    """The compute-efficient frontier: rows (sorted by C) whose loss is lower than that of
    every row with less or equal compute. With `n_bins`, first keep only the lowest-loss row
    in each of `n_bins` log-spaced compute bins (for dense training curves)."""
    data = validate_frame(df, ("C", "loss"), add_compute=False)
    if n_bins:
        logc = np.log(data["C"].to_numpy(float))
        edges = np.linspace(logc.min(), logc.max() + 1e-12, n_bins + 1)
        data = data.assign(_bin=np.digitize(logc, edges))
        data = data.loc[data.groupby("_bin")["loss"].idxmin()].drop(columns="_bin")
    data = data.sort_values(["C", "loss"])
    best_before = data["loss"].cummin().shift(fill_value=np.inf)
    return data[data["loss"] < best_before]


def fit_envelope(
    df: pd.DataFrame, *, n_bins: int = 30, n_bootstrap: int = 1000, seed: int | None = 0
) -> FitResult:
    """Chinchilla approach 1: N_opt(C) fitted on the compute-efficient frontier; form
    "envelope". Rows are runs or training-curve points with N, C (or D) and loss.
    Intervals: bootstrap over rows, recomputing the frontier each time."""
    data = validate_frame(df, ("N", "loss") + (("C",) if "D" not in df.columns else ("D",)))
    front = compute_frontier(data, n_bins=n_bins)
    if len(front) < 2:
        raise DataError(f"envelope fit needs at least 2 frontier points, found {len(front)}")
    points = pd.DataFrame({"C": front["C"], "N_opt": front["N"], "loss_opt": front["loss"]})
    points["D_opt"] = points["C"] / (6.0 * points["N_opt"])
    samples = None
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        rows = []
        for _ in range(n_bootstrap):
            sample = data.iloc[rng.integers(0, len(data), size=len(data))]
            f = compute_frontier(sample, n_bins=n_bins)
            if len(f) < 2 or f["C"].nunique() < 2:
                continue
            c, n = f["C"].to_numpy(float), f["N"].to_numpy(float)
            k_n, a = _loglog_fit(c, n)
            k_d, b = _loglog_fit(c, c / (6.0 * n))
            rows.append((k_n, a, k_d, b))
        arr = np.asarray(rows, dtype=float).reshape(-1, 4)
        samples = {k: arr[:, i] for i, k in enumerate(("k_N", "a", "k_D", "b"))}
    return _allocation_result(
        "envelope", points.reset_index(drop=True), data, {"n_bins": n_bins},
        {"n_bootstrap": n_bootstrap, "seed": seed}, samples,
    )


def _records(frame: pd.DataFrame) -> list[dict]:
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def _label(value: object) -> object:
    return value.item() if hasattr(value, "item") else value
