"""Back-test a loss law: fit on the runs below a compute threshold, predict the larger ones."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from scaletrack.analysis.chinchilla import fit_chinchilla
from scaletrack.analysis.io import validate_frame
from scaletrack.analysis.powerlaw import fit_power_law
from scaletrack.analysis.result import FitResult
from scaletrack.errors import DataError

BACKTEST_FORMS = ("chinchilla", "compute", "power_N", "power_D")


@dataclass(frozen=True)
class BacktestResult:
    """The fit on small runs, a frame of held-out runs (N, D, C, loss, predicted, rel_error =
    (predicted - loss)/loss) and a summary (n_train, n_test, threshold_C, mean/median/max
    absolute relative error)."""

    fit: FitResult
    frame: pd.DataFrame
    summary: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "summary", MappingProxyType(dict(self.summary)))


def backtest(
    df: pd.DataFrame, form: str, threshold_C: float, *, n_bootstrap: int = 0, **fit_kwargs: Any
) -> BacktestResult:
    """Fit `form` on rows with C < threshold_C (FLOPs) and score the final loss of the rest."""
    if form not in BACKTEST_FORMS:
        raise DataError(f"back-test form must be one of {BACKTEST_FORMS}, got {form!r}")
    needed = {"chinchilla": ("N", "D", "loss"), "compute": ("C", "loss"),
              "power_N": ("N", "loss"), "power_D": ("D", "loss")}[form]
    data = validate_frame(df, needed)
    if "C" not in data.columns:
        raise DataError("back-test needs column 'C' (or N and D to derive C = 6·N·D)")
    train = data[data["C"] < threshold_C]
    test = data[data["C"] >= threshold_C]
    if test.empty:
        raise DataError(f"no runs at or above the threshold C = {threshold_C:.3g} FLOPs to predict")
    if form == "chinchilla":
        if len(train) < 5:
            raise DataError(f"need at least 5 runs below C = {threshold_C:.3g}, got {len(train)}")
        fit = fit_chinchilla(train, n_bootstrap=n_bootstrap, **fit_kwargs)
    else:
        x = {"compute": "C", "power_N": "N", "power_D": "D"}[form]
        if len(train) < 3:
            raise DataError(f"need at least 3 runs below C = {threshold_C:.3g}, got {len(train)}")
        fit = fit_power_law(train, x, n_bootstrap=n_bootstrap, **fit_kwargs)
    frame = test.copy()
    frame["predicted"] = fit.predict(frame)
    frame["rel_error"] = (frame["predicted"] - frame["loss"]) / frame["loss"]
    err = np.abs(frame["rel_error"].to_numpy())
    summary = {
        "form": form, "threshold_C": float(threshold_C), "n_train": len(train),
        "n_test": len(test), "mean_abs_rel_error": float(err.mean()),
        "median_abs_rel_error": float(np.median(err)), "max_abs_rel_error": float(err.max()),
        "mean_rel_error": float(frame["rel_error"].mean()),
    }
    return BacktestResult(fit=fit, frame=frame, summary=summary)
