"""Calibrate the run-to-run scatter of prediction intervals on held-out residuals.

In-sample residuals understate how far a *new, larger* run lands from the curve: the fit has
bent towards the points it saw, a robust (Huber) fit leaves tail residuals unweighted, and
extrapolation adds bias. `calibrate_scatter` measures this on the training data alone: for
each inner hold-out fraction h (default 0.1, 0.2, 0.3, 0.5) it refits the same law on the runs
below the training set's own (1 - h) compute quantile and predicts the rest. The pooled
held-out log residuals, symmetrised (each r and -r), become `extra["scatter_residuals"]`,
which `FitResult.predict_interval` pairs with the bootstrap curves (a residual bootstrap
with out-of-sample residuals). The runs a user wants to predict are never looked at: the
band is chosen on hold-outs inside the training data, not on the target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from scaletrack.analysis.result import FitResult
from scaletrack.errors import DataError

INNER_HOLDOUTS = (0.1, 0.2, 0.3, 0.5)


def inner_holdout_residuals(
    data: pd.DataFrame,
    refit: Callable[[pd.DataFrame], FitResult],
    holdouts: Sequence[float] = INNER_HOLDOUTS,
    *,
    min_train: int = 5,
) -> np.ndarray:
    """Pooled log(predicted) - log(observed) of each inner hold-out (C in FLOPs, loss nats).

    A split with fewer than `min_train` training runs, no held-out run or a failed or
    degenerate fit contributes nothing."""
    c = data["C"].to_numpy(float)
    pooled = []
    for h in holdouts:
        cut = np.quantile(c, 1.0 - h)
        train, test = data[c < cut], data[c >= cut]
        if len(train) < min_train or test.empty:
            continue
        try:
            inner = refit(train)
        except DataError:
            continue
        if inner.degenerate:
            continue
        with np.errstate(all="ignore"):
            r = np.log(inner.predict(test)) - np.log(test["loss"].to_numpy(float))
        pooled.append(r[np.isfinite(r)])
    return np.concatenate(pooled) if pooled else np.empty(0)


def calibrate_scatter(
    fit: FitResult,
    data: pd.DataFrame,
    refit: Callable[[pd.DataFrame], FitResult],
    *,
    holdouts: Sequence[float] = INNER_HOLDOUTS,
) -> FitResult:
    """Return `fit` with `extra["scatter_residuals"]` from inner compute hold-outs.

    data: the points `fit` was fitted on (C, loss and what `refit` needs); refit: fits the
    same law, without bootstrap. With no usable split the fit keeps its in-sample scatter
    (`extra["scatter_calibration"]` says which was used)."""
    r = inner_holdout_residuals(data, refit, holdouts)
    extra = dict(fit.extra)
    if r.size < 5:
        extra["scatter_calibration"] = "in-sample residuals (too few runs for inner hold-outs)"
    else:
        extra["scatter_calibration"] = (
            "inner hold-out residuals: top " + ", ".join(f"{h:.0%}" for h in holdouts)
            + " of training compute")
        extra["scatter_residuals"] = np.concatenate([r, -r]).tolist()
    return dataclasses.replace(fit, extra=extra)
