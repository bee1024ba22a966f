"""Back-test a loss law: fit on the runs below a compute threshold, predict the larger ones.

The threshold is a compute value C (FLOPs) or, with `holdout_top`, the (1 - fraction)
quantile of the runs' compute (or, with `holdout_by="N"`, of their model sizes). The
held-out runs get the fit's prediction with a 95% prediction band (where a new run should
land; scatter calibrated on inner hold-outs of the training runs, see
`scaletrack.analysis.calibration`) and a 95% confidence band (the mean curve). Summary keys:
n_train, n_test, mape (mean |pred - loss| / loss), coverage_prediction, coverage_confidence
(fractions of held-out runs inside each band), plus the threshold and error detail, the band
widths width_prediction, width_confidence (means of (hi - lo) / predicted over the held-out
runs: fractions of the predicted loss) and median_width_prediction, and the residual_model
the prediction band used. `rescore` scores the same fit under another residual model
without refitting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from scaletrack.analysis.calibration import (
    DEFAULT_RESIDUAL_MODEL,
    calibrate_scatter,
    check_residual_model,
    use_residual_model,
)
from scaletrack.analysis.chinchilla import fit_chinchilla
from scaletrack.analysis.io import validate_frame
from scaletrack.analysis.powerlaw import fit_power_law
from scaletrack.analysis.result import FitResult
from scaletrack.errors import DataError

BACKTEST_FORMS = ("chinchilla", "compute", "power_N", "power_D")
SUMMARY_KEYS = ("n_train", "n_test", "mape", "coverage_prediction", "coverage_confidence")


@dataclass(frozen=True)
class BacktestResult:
    """The fit on small runs, a frame of held-out runs (N, D, C, loss, predicted, rel_error =
    (predicted - loss)/loss, pred_lo/pred_hi and conf_lo/conf_hi: the 95% bands) and a summary
    (see the module docstring)."""

    fit: FitResult
    frame: pd.DataFrame
    summary: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "summary", MappingProxyType(dict(self.summary)))


def _fit(form: str, data: pd.DataFrame, n_bootstrap: int, fit_kwargs: dict) -> FitResult:
    if form == "chinchilla":
        return fit_chinchilla(data, n_bootstrap=n_bootstrap, calibrate=False, **fit_kwargs)
    x = {"compute": "C", "power_N": "N", "power_D": "D"}[form]
    return fit_power_law(data, x, n_bootstrap=n_bootstrap, calibrate=False, **fit_kwargs)


def backtest(
    df: pd.DataFrame,
    form: str,
    threshold_C: float | None = None,
    *,
    holdout_top: float | None = None,
    holdout_by: str = "C",
    n_bootstrap: int = 200,
    level: float = 0.95,
    calibrate: bool = True,
    residual_model: str = DEFAULT_RESIDUAL_MODEL,
    **fit_kwargs: Any,
) -> BacktestResult:
    """Fit `form` on rows with C < threshold (FLOPs) and score the loss (nats) of the rest.

    Give `threshold_C`, or `holdout_top` in (0, 1): hold out that fraction of runs by compute
    (`holdout_by="C"`) or by model size (`holdout_by="N"`: the largest models).
    `calibrate` sets the prediction band's scatter from inner hold-outs of the training runs,
    shaped by `residual_model` (one of `calibration.RESIDUAL_MODELS`).
    """
    check_residual_model(residual_model)
    if form not in BACKTEST_FORMS:
        raise DataError(f"back-test form must be one of {BACKTEST_FORMS}, got {form!r}")
    needed = {"chinchilla": ("N", "D", "loss"), "compute": ("C", "loss"),
              "power_N": ("N", "loss"), "power_D": ("D", "loss")}[form]
    data = validate_frame(df, needed)
    if "C" not in data.columns:
        raise DataError("back-test needs column 'C' (or N and D to derive C = 6·N·D)")
    if (threshold_C is None) == (holdout_top is None):
        raise DataError("give exactly one of threshold_C (FLOPs) or holdout_top (a fraction)")
    if holdout_by not in ("C", "N") or (holdout_by == "N" and "N" not in data.columns):
        raise DataError(f"holdout_by must be 'C' or 'N' (with an N column), got {holdout_by!r}")
    if holdout_by == "N" and threshold_C is not None:
        raise DataError("holdout_by='N' takes holdout_top, not threshold_C")
    if holdout_top is not None:
        if not 0.0 < holdout_top < 1.0:
            raise DataError(f"holdout_top must be a fraction in (0, 1), got {holdout_top:g}")
        threshold_C = float(np.quantile(data[holdout_by].to_numpy(float), 1.0 - holdout_top))
    assert threshold_C is not None  # given, or the holdout_top quantile
    unit = "FLOPs" if holdout_by == "C" else "parameters"
    train = data[data[holdout_by] < threshold_C]
    test = data[data[holdout_by] >= threshold_C]
    if test.empty:
        raise DataError(f"no runs at or above the threshold {holdout_by} = {threshold_C:.3g} "
                        f"{unit} to predict")
    need = 7 if form == "chinchilla" else 5
    if len(train) < need:
        raise DataError(f"need at least {need} runs below {holdout_by} = {threshold_C:.3g}, "
                        f"got {len(train)}")
    fit = _fit(form, train, n_bootstrap, fit_kwargs)
    if calibrate:
        fit = calibrate_scatter(fit, train, lambda d: _fit(form, d, 0, fit_kwargs),
                                residual_model=residual_model)
    head = {"form": form, "threshold_C": float(threshold_C), "holdout_top": holdout_top,
            "holdout_by": holdout_by, "n_train": len(train), "level": level}
    return _score(fit, test, head)


def rescore(result: BacktestResult, residual_model: str) -> BacktestResult:
    """The same back-test (same fit, bootstrap and inner hold-outs) with its prediction band
    drawn from another residual model; needs a calibrated fit."""
    fit = use_residual_model(result.fit, residual_model)
    cols = [c for c in result.frame.columns if c not in _ADDED]
    head = {k: result.summary[k] for k in ("form", "threshold_C", "holdout_top", "holdout_by",
                                           "n_train", "level")}
    return _score(fit, result.frame[cols], head)


_ADDED = ("predicted", "rel_error", "pred_lo", "pred_hi", "conf_lo", "conf_hi")


def _score(fit: FitResult, test: pd.DataFrame, head: dict[str, Any]) -> BacktestResult:
    level = head["level"]
    frame = test.copy()
    pred = fit.predict_interval(frame, kind="prediction", level=level)
    conf = fit.predict_interval(frame, kind="confidence", level=level)
    frame["predicted"] = pred["pred"].to_numpy()
    frame["rel_error"] = (frame["predicted"] - frame["loss"]) / frame["loss"]
    frame["pred_lo"], frame["pred_hi"] = pred["lo"].to_numpy(), pred["hi"].to_numpy()
    frame["conf_lo"], frame["conf_hi"] = conf["lo"].to_numpy(), conf["hi"].to_numpy()
    y = frame["loss"].to_numpy()
    err = np.abs(frame["rel_error"].to_numpy())

    def coverage(lo: str, hi: str) -> float:
        inside = (frame[lo].to_numpy() <= y) & (y <= frame[hi].to_numpy())
        return float(inside.mean()) if frame[lo].notna().all() else float("nan")

    def width(lo: str, hi: str) -> float:
        return float(((frame[hi] - frame[lo]) / frame["predicted"]).mean())

    model = fit.extra.get("scatter_model")
    summary = {
        **head, "n_test": len(test), "mape": float(err.mean()),
        "coverage_prediction": coverage("pred_lo", "pred_hi"),
        "coverage_confidence": coverage("conf_lo", "conf_hi"),
        "width_prediction": width("pred_lo", "pred_hi"),
        "width_confidence": width("conf_lo", "conf_hi"),
        "median_width_prediction": float(np.median(
            (frame["pred_hi"] - frame["pred_lo"]) / frame["predicted"])),
        "status": fit.status, "status_reason": fit.status_reason,
        "mean_abs_rel_error": float(err.mean()),
        "median_abs_rel_error": float(np.median(err)), "max_abs_rel_error": float(err.max()),
        "mean_rel_error": float(frame["rel_error"].mean()),
        "scatter_calibration": fit.extra.get("scatter_calibration", "in-sample residuals"),
        "residual_model": model["name"] if model else "in-sample",
    }
    return BacktestResult(fit=fit, frame=frame, summary=summary)
