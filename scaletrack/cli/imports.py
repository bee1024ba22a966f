"""`scaletrack import lm-eval | mlflow | history`: results that live elsewhere, into the store."""

from __future__ import annotations

from pathlib import Path

import typer

from scaletrack.cli.common import StoreOption, console, store_session

import_app = typer.Typer(
    help="Import results from lm-evaluation-harness, MLflow or a long history table.",
    no_args_is_help=True,
)


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

    with store_session(store) as st:
        table = read_sizes(sizes)
        report = import_lm_eval(st, paths, table, sweep=sweep)
        due = _refresh_ideas(st)
    console.print(
        f"imported {report.files} files: {len(report.models)} models ({report.runs_new} new "
        f"runs), {report.checkpoints} external checkpoints, {report.evals} eval rows"
        + (f"; ideas now due: {', '.join(map(str, due))}" if due else ""),
        markup=False, highlight=False, soft_wrap=True,
    )


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

    with store_session(store) as st:
        frame = read_table(file)
        report = import_history(st, frame, run_col=run_col, step_col=step_col,
                                tokens_col=tokens_col, sweep=sweep, sizes=sizes,
                                source=file.name)
    console.print(f"imported {report.rows} rows: {report.runs} runs ({report.runs_new} new), "
                  f"{report.metric_rows} metric values ({', '.join(report.metrics)})",
                  markup=False, highlight=False, soft_wrap=True)


@import_app.command("mlflow")
def mlflow_command(
    tracking_uri: str = typer.Option(..., "--tracking-uri", help="MLflow tracking URI "
                                     "(file:///path/mlruns, http://host:5000, ...)."),
    experiment: list[str] = typer.Option([], "--experiment", help="Experiment name "
                                         "(repeatable; default all)."),
    sweep: str | None = typer.Option(None, "--sweep", help="Sweep to file the runs under "
                                     "(default: the experiment's name)."),
    params_key: str = typer.Option("params", "--params-key", help="MLflow param holding N."),
    tokens_key: str = typer.Option("tokens", "--tokens-key", help="MLflow param holding D."),
    store: str | None = StoreOption,
) -> None:
    """Import MLflow runs (params, metric histories, status) through the mlflow client."""
    from scaletrack.store.importers.mlflow import import_mlflow

    with store_session(store) as st:
        report = import_mlflow(st, tracking_uri, experiments=experiment or None, sweep=sweep,
                               params_key=params_key, tokens_key=tokens_key)
    console.print(f"imported {report.runs} MLflow runs ({report.runs_new} new) from "
                  f"{report.experiments} experiment(s): {report.metric_rows} metric values",
                  markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.add_typer(import_app, name="import")
