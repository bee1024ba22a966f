"""The scaling view's fits, kept in the store's fit cache under a hash of their inputs.

The dashboard's scaling view fits L(N), L(D) and L(C) (power laws, `SCALING_BOOTSTRAP`
bootstrap refits, calibrated bands) to a sweep's finished runs, and back-tests L(C) fitted on
the runs below the `BACKTEST_QUANTILE` of compute: seconds of work at 1,000 runs. Each fit is
keyed by its inputs (`store.fit_cache_key` of its form, its points in order, index included,
and its options, scaletrack's version among them), so a changed run, option or release
changes the key and a stale fit is never answered.

`cache_scaling_fits` computes and saves them (`Store.save_fit(..., key=...)`); it runs when a
sweep finishes (`scaletrack.run_sweep`). The dashboard only reads (`Store.cached_fit`): it
answers from the cache when the key matches and fits itself otherwise.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scaletrack import __version__
from scaletrack.analysis import code_version
from scaletrack.analysis.backtesting import BacktestResult, backtest, rescore
from scaletrack.analysis.calibration import DEFAULT_RESIDUAL_MODEL
from scaletrack.analysis.io import validate_frame
from scaletrack.analysis.powerlaw import fit_power_law
from scaletrack.analysis.result import FitResult
from scaletrack.analysis.selection import select_points
from scaletrack.errors import ScaletrackError
from scaletrack.store import fit_cache_key

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

SCALING_BOOTSTRAP = 200  # bootstrap refits of each scaling-view fit
BACKTEST_QUANTILE = 0.8  # L(C) is fitted below this quantile of the points' compute
BACKTEST_MIN_POINTS = 5  # fewer selected points: no back-test is shown
POWER_FORMS = {"N": "power_N", "D": "power_D", "C": "compute"}


def scaling_points(store: StoreLike, sweep: str | None = None) -> pd.DataFrame:
    """Finished runs with positive N, D, C and a finite final loss (columns run_key, sweep, N,
    D, C, loss, lr, seed), sorted by run key; trunks of cooldown branches are left out, as in
    every fit."""
    from scaletrack.store.run_pages import FIT_POINT_COLUMNS

    df = pd.DataFrame(store.fit_point_rows(sweep), columns=list(FIT_POINT_COLUMNS))
    df = df.rename(columns={"final_loss": "loss"})
    for col in ("N", "D", "C", "loss", "lr"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    values = df[["N", "D", "C", "loss"]].to_numpy(float)
    ok = np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)
    return df[ok].sort_values("run_key", kind="stable").reset_index(drop=True)


def selected_points(df: pd.DataFrame, form: str) -> tuple[pd.DataFrame, str]:
    """The points a `form` fit uses: the same selection as `scaletrack fit` (best learning
    rate per (N, D), seeds averaged, compute laws on the frontier) and its description."""
    return select_points(df[[c for c in ("N", "D", "C", "loss", "lr", "seed") if c in df]],
                         form)


def _key(form: str, points: pd.DataFrame, options: dict[str, Any]) -> str:
    # the analysis code's hash too: a checkout between releases keeps the version string
    return fit_cache_key(form, points.reset_index(), {**options, "scaletrack": __version__,
                                                      "code": code_version.analysis_code_version()})


def _from_cache(store: StoreLike, key: str) -> FitResult | None:
    payload = store.cached_fit(key)
    if payload is None:
        return None
    try:
        return FitResult.from_dict(payload)
    except (KeyError, TypeError, ValueError):  # written by another payload schema: refit
        return None


def power_law(store: StoreLike, points: pd.DataFrame, x: str
              ) -> tuple[FitResult, str, bool]:
    """L(x) fitted to the selected `points` (x = "N", "D" or "C"): (fit, cache key, whether it
    came from the cache)."""
    key = _key(POWER_FORMS[x], points, {"x": x, "n_bootstrap": SCALING_BOOTSTRAP, "seed": 0})
    cached = _from_cache(store, key)
    if cached is not None:
        return cached, key, True
    return fit_power_law(points, x, n_bootstrap=SCALING_BOOTSTRAP), key, False


def backtest_threshold(points: pd.DataFrame) -> float:
    """The compute (FLOPs) at the `BACKTEST_QUANTILE` of the points: runs below it train."""
    c_sorted = np.sort(points["C"].to_numpy(float))
    return float(c_sorted[int(math.floor(BACKTEST_QUANTILE * len(c_sorted)))])


def compute_backtest(store: StoreLike, points: pd.DataFrame, threshold: float
                     ) -> tuple[BacktestResult, str, bool]:
    """`analysis.backtesting` of L(C) at `threshold` on the selected `points`: (result, cache key
    of its fit on the training runs, whether that fit came from the cache)."""
    frame = points[["N", "D", "C", "loss"]]
    data = validate_frame(frame, ("C", "loss"))
    train = data[data["C"] < threshold]
    key = _key("compute", train, {"backtest_threshold_C": threshold, "calibrate": True,
                                  "n_bootstrap": SCALING_BOOTSTRAP,
                                  "residual_model": DEFAULT_RESIDUAL_MODEL})
    fit = _from_cache(store, key)
    if fit is None:
        result = backtest(frame, "compute", threshold, n_bootstrap=SCALING_BOOTSTRAP)
        return result, key, False
    head = {"form": "compute", "threshold_C": threshold, "holdout_top": None,
            "holdout_by": "C", "n_train": len(train), "level": 0.95}
    unscored = BacktestResult(fit=fit, frame=data[data["C"] >= threshold], summary=head)
    return rescore(unscored, DEFAULT_RESIDUAL_MODEL), key, True


def cache_scaling_fits(store: StoreLike, sweep: str | None = None) -> int:
    """Fit the scaling view's laws and back-test for `sweep`'s finished runs (every run when
    None) and save each fit the cache does not hold yet; returns how many were saved. Fits
    that cannot be made (too few points) are skipped: the view explains them itself."""
    df = scaling_points(store, sweep)
    saved = 0
    if len(df) < 3:
        return saved
    for x, form in POWER_FORMS.items():
        try:
            points, _ = selected_points(df, form)
            fit, key, hit = power_law(store, points, x)
        except (ScaletrackError, ValueError):
            continue
        if not hit:
            store.save_fit(fit.form, fit.to_dict(), sweep=sweep, key=key,
                           label=f"scaling view: L({x})")
            saved += 1
    try:
        points, _ = selected_points(df, "compute")
        if len(points) < BACKTEST_MIN_POINTS:
            return saved
        threshold = backtest_threshold(points)
        result, key, hit = compute_backtest(store, points, threshold)
    except (ScaletrackError, ValueError):
        return saved
    if not hit:
        store.save_fit(result.fit.form, result.fit.to_dict(), sweep=sweep, key=key,
                       label=f"scaling view: back-test of L(C) below C = {threshold:.3g}")
        saved += 1
    return saved
