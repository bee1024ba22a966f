"""analysis: scaling-law fits (power laws, Chinchilla, IsoFLOP, envelope), bootstrap intervals,
compute-optimal allocation, back-tests and plots. Fits are plain functions over DataFrames
with columns N (params), D (tokens), C (FLOPs), loss (nats/token) returning `FitResult`.

Names load on first use (`scaletrack.analysis.fit_chinchilla`), so importing one module of
the package, or the package itself, pulls in SciPy and the rest only where they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scaletrack.analysis.backtesting import (
        BacktestResult,
        backtest,
    )
    from scaletrack.analysis.calibration import (
        calibrate_scatter,
    )
    from scaletrack.analysis.chinchilla import (
        fit_chinchilla,
    )
    from scaletrack.analysis.classify import (
        TaskClassification,
        classify_groups,
        classify_task,
        classify_tasks,
    )
    from scaletrack.analysis.emergence import (
        EmergenceProfile,
        SigmoidFit,
        emergence_profile,
        fit_floored_sigmoid,
        sigmoid_value,
    )
    from scaletrack.analysis.io import (
        load_epoch_chinchilla,
        read_fit_csv,
        validate_frame,
    )
    from scaletrack.analysis.isoflop import (
        compute_frontier,
        fit_envelope,
        fit_isoflop,
        isoflop_minima,
        snap_budgets,
    )
    from scaletrack.analysis.optimal import (
        chinchilla_allocation,
        compute_optimal,
    )
    from scaletrack.analysis.plan import (
        Plan,
        PlannedCell,
        expected_band_width,
        plan_runs,
    )
    from scaletrack.analysis.powerlaw import (
        fit_compute_law,
        fit_power_law,
    )
    from scaletrack.analysis.result import (
        BootstrapFit,
        FitResult,
    )
    from scaletrack.analysis.two_step import (
        LADDER_FOLDS,
        LadderFold,
        MethodSelection,
        fit_two_step,
        holdout_validation,
        ladder_backtest,
        ladder_score,
        load_olmo_ladder,
        predict_two_step,
        select_two_step_method,
        split_ladder,
    )
    from scaletrack.analysis.two_step_fit import (
        AccuracyFit,
        TaskLossFit,
        TwoStepFit,
        fit_loss_to_accuracy,
        fit_task_loss,
    )

# public name -> the module that defines it
_LAZY: dict[str, str] = {
    "AccuracyFit": "scaletrack.analysis.two_step_fit",
    "BacktestResult": "scaletrack.analysis.backtesting",
    "BootstrapFit": "scaletrack.analysis.result",
    "EmergenceProfile": "scaletrack.analysis.emergence",
    "FitResult": "scaletrack.analysis.result",
    "LADDER_FOLDS": "scaletrack.analysis.two_step",
    "LadderFold": "scaletrack.analysis.two_step",
    "MethodSelection": "scaletrack.analysis.two_step",
    "Plan": "scaletrack.analysis.plan",
    "PlannedCell": "scaletrack.analysis.plan",
    "SigmoidFit": "scaletrack.analysis.emergence",
    "TaskClassification": "scaletrack.analysis.classify",
    "TaskLossFit": "scaletrack.analysis.two_step_fit",
    "TwoStepFit": "scaletrack.analysis.two_step_fit",
    "backtest": "scaletrack.analysis.backtesting",
    "calibrate_scatter": "scaletrack.analysis.calibration",
    "chinchilla_allocation": "scaletrack.analysis.optimal",
    "classify_groups": "scaletrack.analysis.classify",
    "classify_task": "scaletrack.analysis.classify",
    "classify_tasks": "scaletrack.analysis.classify",
    "compute_frontier": "scaletrack.analysis.isoflop",
    "compute_optimal": "scaletrack.analysis.optimal",
    "emergence_profile": "scaletrack.analysis.emergence",
    "expected_band_width": "scaletrack.analysis.plan",
    "fit_chinchilla": "scaletrack.analysis.chinchilla",
    "fit_compute_law": "scaletrack.analysis.powerlaw",
    "fit_envelope": "scaletrack.analysis.isoflop",
    "fit_floored_sigmoid": "scaletrack.analysis.emergence",
    "fit_isoflop": "scaletrack.analysis.isoflop",
    "fit_loss_to_accuracy": "scaletrack.analysis.two_step_fit",
    "fit_power_law": "scaletrack.analysis.powerlaw",
    "fit_task_loss": "scaletrack.analysis.two_step_fit",
    "fit_two_step": "scaletrack.analysis.two_step",
    "holdout_validation": "scaletrack.analysis.two_step",
    "isoflop_minima": "scaletrack.analysis.isoflop",
    "ladder_backtest": "scaletrack.analysis.two_step",
    "ladder_score": "scaletrack.analysis.two_step",
    "load_epoch_chinchilla": "scaletrack.analysis.io",
    "load_olmo_ladder": "scaletrack.analysis.two_step",
    "plan_runs": "scaletrack.analysis.plan",
    "predict_two_step": "scaletrack.analysis.two_step",
    "read_fit_csv": "scaletrack.analysis.io",
    "select_two_step_method": "scaletrack.analysis.two_step",
    "sigmoid_value": "scaletrack.analysis.emergence",
    "snap_budgets": "scaletrack.analysis.isoflop",
    "split_ladder": "scaletrack.analysis.two_step",
    "validate_frame": "scaletrack.analysis.io",
}
__all__ = [
    "AccuracyFit",
    "BacktestResult",
    "BootstrapFit",
    "EmergenceProfile",
    "FitResult",
    "LADDER_FOLDS",
    "LadderFold",
    "MethodSelection",
    "Plan",
    "PlannedCell",
    "SigmoidFit",
    "TaskClassification",
    "TaskLossFit",
    "TwoStepFit",
    "backtest",
    "calibrate_scatter",
    "chinchilla_allocation",
    "classify_groups",
    "classify_task",
    "classify_tasks",
    "compute_frontier",
    "compute_optimal",
    "emergence_profile",
    "expected_band_width",
    "fit_chinchilla",
    "fit_compute_law",
    "fit_envelope",
    "fit_floored_sigmoid",
    "fit_isoflop",
    "fit_loss_to_accuracy",
    "fit_power_law",
    "fit_task_loss",
    "fit_two_step",
    "holdout_validation",
    "isoflop_minima",
    "ladder_backtest",
    "ladder_score",
    "load_epoch_chinchilla",
    "load_olmo_ladder",
    "plan_runs",
    "predict_two_step",
    "read_fit_csv",
    "select_two_step_method",
    "sigmoid_value",
    "snap_budgets",
    "split_ladder",
    "validate_frame",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
