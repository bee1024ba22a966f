"""`scaletrack import wandb | lm-eval | mlflow | history`: results that live elsewhere, into the
store (each importer checks every value, then writes in one transaction)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from scaletrack.cli.common import StoreOption, err_console, say, writing_session

PROGRESS_AFTER_S = 2.0  # an import shorter than this shows no progress
PROGRESS_EVERY_S = 5.0  # seconds between plain progress lines (stderr not a terminal)

import_app = typer.Typer(
    help="Import results from W&B runs on disk, lm-evaluation-harness, MLflow or a long "
    "history table: every value checked first, then one transaction per import.",
    no_args_is_help=True,
)


def skipped_values(count: int, first: Sequence[tuple[str, str]]) -> str:
    """'; skipped 3 NaN or infinite values (first: line 5 'loss', ...)' or ''."""
    if not count:
        return ""
    shown = ", ".join(f"{where} {what!r}" for where, what in first)
    return f"; skipped {count:,} NaN or infinite values (first: {shown})"


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress callback `(done, total)` for long inputs: once PROGRESS_AFTER_S seconds
    have passed, a Rich bar on stderr when it is a terminal, else a plain line on stderr at
    most every PROGRESS_EVERY_S seconds. A short import shows nothing."""
    state: dict[str, Any] = {"bar": None, "task": None, "start": time.monotonic(), "last": 0.0}

    def update(done: int, total: int) -> None:
        now = time.monotonic()
        if now - state["start"] < PROGRESS_AFTER_S:
            return
        if err_console.is_terminal:
            bar = state["bar"]
            if bar is None:
                from rich.progress import Progress

                bar = state["bar"] = Progress(console=err_console, transient=True)
                bar.start()
                state["task"] = bar.add_task(label, total=total)
            bar.update(state["task"], completed=done)
        elif now - state["last"] >= PROGRESS_EVERY_S or done == total:
            state["last"] = now
            err_console.print(f"{label}: {done:,} / {total:,}", markup=False, highlight=False)

    try:
        yield update
    finally:
        if state["bar"] is not None:
            state["bar"].stop()


def _refresh_ideas(store) -> list[int]:
    """Mark the open ideas that imported checkpoints made due."""
    from scaletrack.evals.ideas import refresh_idea_statuses

    return refresh_idea_statuses(store)


@import_app.command("lm-eval")
def lm_eval_command(
    paths: list[Path] = typer.Argument(..., help="Result JSON files or folders (recursive)."),
    sizes: Path = typer.Option(..., "--sizes", help="CSV: model,params,tokens_per_step "
                               "(optional tokens) — N and D are never guessed."),
    sweep: str | None = typer.Option(None, "--sweep", help="Sweep to file the runs under."),
    store: str | None = StoreOption,
) -> None:
    """Import lm-evaluation-harness output (0.3 and 0.4+ formats) as external checkpoints."""
    from scaletrack.store.importers.lm_eval import import_lm_eval, read_sizes

    table = read_sizes(sizes)
    with writing_session(store) as st, progress_bar("reading result files") as progress:
        report = import_lm_eval(st, paths, table, sweep=sweep,
                                progress=progress)
        due = _refresh_ideas(st)
    say(f"imported {report.files} files: {len(report.models)} models ({report.runs_new} new "
        f"runs), {report.checkpoints} external checkpoints, {report.evals} eval rows"
        + skipped_values(report.nonfinite, report.nonfinite_cells)
        + (f"; ideas now due: {', '.join(map(str, due))}" if due else ""))


@import_app.command("history")
def history_command(
    file: Path = typer.Argument(..., help="CSV, parquet or JSON-lines long table."),
    run_col: str = typer.Option("run", "--run-col", help="Column naming the run."),
    step_col: str = typer.Option("step", "--step-col", help="Column with the step."),
    tokens_col: str | None = typer.Option(None, "--tokens-col", help="Column with tokens seen."),
    sweep: str | None = typer.Option(None, "--sweep", help="Sweep to file the runs under."),
    sizes: Path | None = typer.Option(None, "--sizes", help="Optional CSV run,params,tokens: "
                                      "N and D of each run."),
    store: str | None = StoreOption,
) -> None:
    """Import a long table (run, step, one column per metric), e.g. a W&B history export."""
    from scaletrack.store.importers.history import import_history, read_table

    frame = read_table(file)
    with writing_session(store) as st, progress_bar("checking rows") as progress:
        report = import_history(st, frame, run_col=run_col, step_col=step_col,
                                tokens_col=tokens_col, sweep=sweep, sizes=sizes,
                                source=file.name, progress=progress)
    say(f"imported {report.rows:,} rows from {file.name}: {report.runs} runs "
        f"({report.runs_new} new, {report.runs_updated} updated), {report.metric_rows:,} "
        f"metric values ({report.metric_rows_new:,} new) of {', '.join(report.metrics)}"
        + skipped_values(report.nonfinite, report.nonfinite_cells)
        + (f"; skipped columns without numbers: {', '.join(report.skipped_columns)}"
           if report.skipped_columns else ""))


@import_app.command("wandb")
def wandb_command(
    paths: list[Path] = typer.Argument(..., help="W&B run folders (wandb/offline-run-*, "
                                       "wandb/run-*), wandb/ folders, or .wandb files."),
    params_key: str | None = typer.Option(None, "--params-key", help="Config (or summary) "
                                          "key holding N, parameters; dots reach into "
                                          "nested config (model.n_params)."),
    tokens_key: str | None = typer.Option(None, "--tokens-key", help="Config (or summary) "
                                          "key holding D, training tokens."),
    sizes: Path | None = typer.Option(None, "--sizes", help="CSV run,params[,tokens] (run = "
                                      "W&B run name or id): N and D of each run."),
    loss_key: str | None = typer.Option(None, "--loss-key", help="History key whose last "
                                        "value is the final loss (default: val/loss, "
                                        "eval/loss, loss, train/loss)."),
    sweep: str | None = typer.Option(None, "--sweep", help="Sweep to file the runs under "
                                     "(default: the W&B project)."),
    store: str | None = StoreOption,
) -> None:
    """Import W&B runs from disk (config, history, summary, name, state) with the wandb SDK's
    own reader; N and D from the keys you name, never guessed."""
    from scaletrack.store.importers.wandb import MAX_KEYS_SHOWN, import_wandb

    with writing_session(store) as st, progress_bar("reading W&B runs") as progress:
        report = import_wandb(st, paths, sweep=sweep, params_key=params_key,
                              tokens_key=tokens_key, sizes=sizes, loss_key=loss_key,
                              progress=progress)
    def first(names: Sequence[str]) -> str:
        shown = ", ".join(names[:MAX_KEYS_SHOWN])
        return shown + (f" and {len(names) - MAX_KEYS_SHOWN} more"
                        if len(names) > MAX_KEYS_SHOWN else "")

    say(f"imported {report.runs} W&B runs ({report.runs_new} new, {report.runs_updated} "
        f"updated) from {report.logs} run logs: {report.metric_rows:,} metric values "
        f"({report.metric_rows_new:,} new)"
        + skipped_values(report.nonfinite, report.nonfinite_cells)
        + (f"; skipped non-numeric keys: {first(report.skipped_keys)}"
           if report.skipped_keys else "")
        + (f"; still running: {first(report.running)}" if report.running else "")
        + (f"; N or D unknown (name --params-key/--tokens-key or --sizes): "
           f"{first(report.unsized)}" if report.unsized else ""))


@import_app.command("mlflow")
def mlflow_command(
    tracking_uri: str = typer.Option(..., "--tracking-uri", help="MLflow tracking URI "
                                     "(file:///path/mlruns or a path, http://host:5000, ...)."),
    experiment: list[str] = typer.Option([], "--experiment", help="Experiment name "
                                         "(repeatable; default all)."),
    sweep: str | None = typer.Option(None, "--sweep", help="Sweep to file the runs under "
                                     "(default: the experiment's name)."),
    params_key: str = typer.Option("params", "--params-key", help="MLflow param holding N."),
    tokens_key: str = typer.Option("tokens", "--tokens-key", help="MLflow param holding D."),
    store: str | None = StoreOption,
) -> None:
    """Import MLflow runs (params, metric histories, status) through the mlflow client."""
    from scaletrack.store.importers.mlflow import check_location, import_mlflow

    check_location(tracking_uri)  # a missing file store or a dead server: before the store
    with writing_session(store) as st:
        report = import_mlflow(st, tracking_uri, experiments=experiment or None, sweep=sweep,
                               params_key=params_key, tokens_key=tokens_key)
    say(f"imported {report.runs} MLflow runs ({report.runs_new} new, {report.runs_updated} "
        f"updated) from {report.experiments} experiment(s): {report.metric_rows:,} metric "
        f"values ({report.metric_rows_new:,} new)"
        + skipped_values(report.nonfinite, report.nonfinite_cells)
        + (f"; {report.long_tags} tags over 200 characters kept only in the run's config"
           if report.long_tags else "")
        + (f"; still running: {', '.join(report.running[:5])}" if report.running else ""))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.add_typer(import_app, name="import")
