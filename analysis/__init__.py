"""analysis: scaling-law fits (power laws, Chinchilla, IsoFLOP, envelope), bootstrap intervals,
compute-optimal allocation, back-tests and plots. Fits are plain functions over DataFrames
with columns N (params), D (tokens), C (FLOPs), loss (nats/token) returning `FitResult`."""

from scaletrack.analysis.backtest import BacktestResult, backtest
from scaletrack.analysis.calibration import calibrate_scatter
from scaletrack.analysis.chinchilla import fit_chinchilla
from scaletrack.analysis.io import load_epoch_chinchilla, read_fit_csv, validate_frame
from scaletrack.analysis.isoflop import (
    compute_frontier,
    fit_envelope,
    fit_isoflop,
    isoflop_minima,
    snap_budgets,
)
from scaletrack.analysis.optimal import chinchilla_allocation, compute_optimal
from scaletrack.analysis.plan import Plan, PlannedCell, expected_band_width, plan_runs
from scaletrack.analysis.powerlaw import fit_compute_law, fit_power_law
from scaletrack.analysis.result import BootstrapFit, FitResult

__all__ = [
    "BacktestResult",
    "BootstrapFit",
    "FitResult",
    "Plan",
    "PlannedCell",
    "backtest",
    "calibrate_scatter",
    "chinchilla_allocation",
    "compute_frontier",
    "compute_optimal",
    "expected_band_width",
    "fit_chinchilla",
    "fit_compute_law",
    "fit_envelope",
    "fit_isoflop",
    "fit_power_law",
    "isoflop_minima",
    "load_epoch_chinchilla",
    "plan_runs",
    "read_fit_csv",
    "snap_budgets",
    "validate_frame",
]

# --- emergence (owner D): floored sigmoid fits, past/near/far, two-step task prediction ---
# (plots live in analysis.emergence_plots and are not imported here: matplotlib stays lazy)
from scaletrack.analysis.classify import (  # noqa: E402
    TaskClassification,
    classify_groups,
    classify_task,
    classify_tasks,
)
from scaletrack.analysis.emergence import (  # noqa: E402
    EmergenceProfile,
    SigmoidFit,
    emergence_profile,
    fit_floored_sigmoid,
    sigmoid_value,
)
from scaletrack.analysis.two_step import (  # noqa: E402
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
from scaletrack.analysis.two_step_fit import (  # noqa: E402
    AccuracyFit,
    TaskLossFit,
    TwoStepFit,
    fit_loss_to_accuracy,
    fit_task_loss,
)

__all__ += [
    "LADDER_FOLDS",
    "AccuracyFit",
    "EmergenceProfile",
    "LadderFold",
    "MethodSelection",
    "SigmoidFit",
    "TaskClassification",
    "TaskLossFit",
    "TwoStepFit",
    "classify_groups",
    "classify_task",
    "classify_tasks",
    "emergence_profile",
    "fit_floored_sigmoid",
    "fit_loss_to_accuracy",
    "fit_task_loss",
    "fit_two_step",
    "holdout_validation",
    "ladder_backtest",
    "ladder_score",
    "load_olmo_ladder",
    "predict_two_step",
    "select_two_step_method",
    "sigmoid_value",
    "split_ladder",
]
