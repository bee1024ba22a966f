"""scaletrack: scaling-law and emergence experiment tracker.

    import scaletrack as st

Importing scaletrack is cheap: each name below is imported on first use (PEP 562), so
torch, pandas and SciPy load only when a part that needs them is touched.

Store
    Store, open_store(url=None)      the experiment database (SQLite by default, PostgreSQL
                                     by URL); StoreLike is the protocol every store satisfies
Sweeps
    load_grid(path)                  read and validate a grid file (TOML) completely
    run_sweep(grid, store_url=None)  train every unfinished cell; evaluate the grid's tasks on
                                     each checkpoint; re-check due "not yet" ideas
    plan(points=None, target_compute=C, budget=FLOPs)  the cells (N, D) that most narrow the
                                     band at a target run (from a sweep, a frame or the prior)
Fits (DataFrames with N params, D tokens, C FLOPs, loss nats/token -> FitResult)
    BootstrapFit                     the base of every result: params, ci, boot_params,
                                     predict_interval, to_dict/from_dict
    fit_chinchilla, fit_compute_law, fit_power_law, fit_isoflop, fit_envelope,
    compute_optimal, compute_frontier, backtest, calibrate_scatter (fits calibrate their
    prediction bands by default), sweep_points(store, sweep), read_fit_csv,
    select_points(df, form)          the points a fit uses (best lr per (N, D), seeds
                                     averaged, compute laws on the frontier), as the CLI does
Emergence
    classify_emergence(df, ...)      past / near / far of each task's transition, per
                                     (task, metric) group of a long table
    classify_task(x, y, ...)         one task's curve
    fit_two_step, predict_two_step   (N, D) -> task loss -> accuracy
    SigmoidFit, TaskClassification, TaskLossFit, AccuracyFit, TwoStepFit   their results
Plots (each draws on ax= or a new figure and returns the Figure)
    plot_loss_vs_compute, plot_isoflop, plot_optimal, plot_tasks_emergence,
    plot_loss_curves, plot_ideas
    save_figure(fig, path)           write a figure as PNG + SVG (atomically)
Ideas registry ("not yet")
    add_idea, due_ideas, rerun_due, check_idea, retire_idea, ideas_table, attempts_table
    refresh_idea_statuses            write due / not-yet from the checkpoints (tables only read)
Checkpoints and evaluations
    register_external_checkpoint, evaluate_checkpoint
Tracking your own trainer
    init(sweep=..., config=..., params=N, tokens=D)   a run that logs metrics, evals and
                                     checkpoints into the store (scaletrack.tracking)
    count_params(model)              total and non-embedding parameters of a torch module
Errors
    ScaletrackError, ConfigError, DataError, StoreError
"""

from __future__ import annotations

import importlib
from typing import Any

from scaletrack.errors import ConfigError as ConfigError
from scaletrack.errors import DataError as DataError
from scaletrack.errors import ScaletrackError as ScaletrackError

__version__ = "0.1.0"

# Public name -> "module:attribute". One entry adds a name to the API (and to __all__/dir()).
_LAZY: dict[str, str] = {
    # store
    "Store": "scaletrack.store.store:Store",
    "StoreLike": "scaletrack.store.protocol:StoreLike",
    "StoreError": "scaletrack.store.errors:StoreError",
    "open_store": "scaletrack.store.store:Store.open",
    # sweeps (with evaluations and ideas wired in)
    "load_grid": "scaletrack.workflows:load_grid",
    "run_sweep": "scaletrack.workflows:run_sweep",
    "plan": "scaletrack.planning:plan",
    # fits
    "FitResult": "scaletrack.analysis.result:FitResult",
    "BootstrapFit": "scaletrack.analysis.result:BootstrapFit",
    "fit_chinchilla": "scaletrack.analysis.chinchilla:fit_chinchilla",
    "fit_compute_law": "scaletrack.analysis.powerlaw:fit_compute_law",
    "fit_power_law": "scaletrack.analysis.powerlaw:fit_power_law",
    "fit_isoflop": "scaletrack.analysis.isoflop:fit_isoflop",
    "fit_envelope": "scaletrack.analysis.isoflop:fit_envelope",
    "compute_frontier": "scaletrack.analysis.isoflop:compute_frontier",
    "compute_optimal": "scaletrack.analysis.optimal:compute_optimal",
    "backtest": "scaletrack.analysis.backtesting:backtest",
    "calibrate_scatter": "scaletrack.analysis.calibration:calibrate_scatter",
    "sweep_points": "scaletrack.store.fit_points:sweep_points",
    "select_points": "scaletrack.analysis.selection:select_points",
    "read_fit_csv": "scaletrack.analysis.io:read_fit_csv",
    # emergence
    "classify_emergence": "scaletrack.analysis.classify:classify_groups",
    "classify_task": "scaletrack.analysis.classify:classify_task",
    "fit_two_step": "scaletrack.analysis.two_step:fit_two_step",
    "predict_two_step": "scaletrack.analysis.two_step:predict_two_step",
    "SigmoidFit": "scaletrack.analysis.emergence:SigmoidFit",
    "TaskClassification": "scaletrack.analysis.classify:TaskClassification",
    "TaskLossFit": "scaletrack.analysis.two_step_fit:TaskLossFit",
    "AccuracyFit": "scaletrack.analysis.two_step_fit:AccuracyFit",
    "TwoStepFit": "scaletrack.analysis.two_step_fit:TwoStepFit",
    # plots
    "plot_loss_vs_compute": "scaletrack.analysis.plots:plot_loss_vs_compute",
    "plot_isoflop": "scaletrack.analysis.plots:plot_isoflop",
    "plot_optimal": "scaletrack.analysis.plots:plot_optimal",
    "plot_tasks_emergence": "scaletrack.analysis.emergence_plots:plot_tasks_emergence",
    "plot_loss_curves": "scaletrack.analysis.curves:plot_loss_curves",
    "plot_ideas": "scaletrack.evals.ideas_table:plot_ideas",
    "save_figure": "scaletrack.analysis.figures:save_figure",
    # ideas registry
    "add_idea": "scaletrack.evals.ideas:add_idea",
    "due_ideas": "scaletrack.evals.ideas:due_ideas",
    "rerun_due": "scaletrack.evals.ideas:rerun_due",
    "check_idea": "scaletrack.evals.ideas:check_idea",
    "retire_idea": "scaletrack.evals.ideas:retire_idea",
    "attempts_table": "scaletrack.evals.ideas:attempts_table",
    "ideas_table": "scaletrack.evals.ideas_table:ideas_table",
    "refresh_idea_statuses": "scaletrack.evals.ideas:refresh_idea_statuses",
    # checkpoints and evaluations
    "register_external_checkpoint": "scaletrack.evals.evaluate:register_external_checkpoint",
    "evaluate_checkpoint": "scaletrack.evals.evaluate:evaluate_checkpoint",
    # tracking any training script
    "init": "scaletrack.tracking:init",
    "count_params": "scaletrack.tracking:count_params",
}

__all__ = sorted(["ConfigError", "DataError", "ScaletrackError", "__version__", *_LAZY])


def __getattr__(name: str) -> Any:
    """Import a public name on first use (and cache it in the module)."""
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'scaletrack' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        value = getattr(value, part)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
