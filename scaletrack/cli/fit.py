"""`scaletrack fit`, `scaletrack plot` and `scaletrack import-csv`.

Data comes from a sweep in the store (finished runs: N params, D tokens, C FLOPs, final_loss
in nats) or from a CSV whose columns are renamed to N, D, C, loss with --n-col/--d-col/
--c-col/--loss-col (C defaults to 6·N·D). `import-csv` records a CSV's rows as finished runs
(see `scaletrack.store.csv_import` for the convention).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from scaletrack.cli.common import StoreOption, console, print_json, print_table, store_session
from scaletrack.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


class FitForm(StrEnum):
    chinchilla = "chinchilla"
    compute = "compute"
    isoflop = "isoflop"
    envelope = "envelope"


class PlotKind(StrEnum):
    compute = "compute"
    isoflop = "isoflop"
    optimal = "optimal"


NCol = typer.Option("N", "--n-col", help="CSV column with parameters N.")
DCol = typer.Option("D", "--d-col", help="CSV column with training tokens D.")
LossCol = typer.Option("loss", "--loss-col", help="CSV column with the final loss (nats).")
CCol = typer.Option("C", "--c-col", help="CSV column with compute C in FLOPs (default 6·N·D).")
SweepOpt = typer.Option(None, "--sweep", help="Use the finished runs of this sweep.")
CsvOpt = typer.Option(None, "--csv", help="Use this CSV instead of the store.", exists=False)


def _csv_columns(n_col: str, d_col: str, loss_col: str, c_col: str) -> dict[str, str]:
    return {"N": n_col, "D": d_col, "loss": loss_col, "C": c_col}


def _load(sweep: str | None, csv: Path | None, store: str | None, cols: tuple) -> pd.DataFrame:
    """The N, D, C, loss frame to fit: a sweep's finished runs, or a CSV."""
    from scaletrack.analysis.io import read_fit_csv
    from scaletrack.analysis.points import sweep_points

    if (sweep is None) == (csv is None):
        raise ConfigError("give exactly one of --sweep NAME or --csv FILE")
    if csv is not None:
        return read_fit_csv(csv, columns=_csv_columns(*cols), required=("loss",))
    with store_session(store) as st:
        return sweep_points(st, sweep)


def _fit(form: str, df: pd.DataFrame, bootstrap: int, seed: int):
    from scaletrack.analysis import fit_chinchilla, fit_compute_law, fit_envelope, fit_isoflop

    if form == "chinchilla":
        return fit_chinchilla(df, n_bootstrap=bootstrap, seed=seed)
    if form == "compute":
        return fit_compute_law(df, n_bootstrap=bootstrap, seed=seed)
    if form == "isoflop":
        return fit_isoflop(df, n_bootstrap=bootstrap, seed=seed)
    return fit_envelope(df, n_bootstrap=bootstrap, seed=seed)


def fit_command(
    form: FitForm = typer.Option(..., "--form", help="Law to fit."),
    sweep: str | None = SweepOpt,
    csv: Path | None = CsvOpt,
    bootstrap: int = typer.Option(
        1000, "--bootstrap", min=0, help="Bootstrap resamples (0: none)."
    ),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    store: str | None = StoreOption,
    n_col: str = NCol, d_col: str = DCol, loss_col: str = LossCol, c_col: str = CCol,
) -> None:
    """Fit a scaling law with 95% bootstrap intervals; with --sweep the fit is saved."""
    df = _load(sweep, csv, store, (n_col, d_col, loss_col, c_col))
    result = _fit(form.value, df, bootstrap, seed)
    fit_id = None
    if sweep is not None:
        with store_session(store) as st:
            fit_id = st.save_fit(result.form, result.to_dict(), sweep=sweep)
    if as_json:
        out: dict[str, Any] = {
            "form": result.form,
            "params": dict(result.params),
            "ci95": {k: list(v) for k, v in result.ci95.items()},
            "n_points": result.n_points,
        }
        if fit_id is not None:
            out["fit_id"] = fit_id
        print_json(out)
        return
    print_table(result.summary(), title=f"{result.form} fit on {result.n_points} points "
                f"(95% intervals from {bootstrap} bootstrap resamples)")
    if result.form in ("chinchilla", "isoflop", "envelope"):
        from scaletrack.analysis import compute_optimal

        budgets = [1e21, 1e22, 1e23, 1e24]
        print_table(compute_optimal(result, budgets), title="compute-optimal allocation")
    if fit_id is not None:
        console.print(f"saved fit {fit_id} for sweep {sweep}")


def plot_command(
    kind: PlotKind = typer.Argument(..., help="compute | isoflop | optimal"),
    output: Path = typer.Option(..., "-o", "--output", help="Output file (.png; .svg beside it)."),
    sweep: str | None = SweepOpt,
    csv: Path | None = CsvOpt,
    bootstrap: int = typer.Option(200, "--bootstrap", min=0, help="Resamples for the bands."),
    budget_col: str | None = typer.Option(
        None, "--budget-col", help="CSV column of nominal budgets (isoflop; default: snap C)."
    ),
    store: str | None = StoreOption,
    n_col: str = NCol, d_col: str = DCol, loss_col: str = LossCol, c_col: str = CCol,
) -> None:
    """Draw loss vs compute (runs, frontier, L(C) fitted on the frontier), IsoFLOP profiles,
    or N_opt/D_opt vs compute (IsoFLOP and Chinchilla fits)."""
    from scaletrack.analysis import compute_frontier, fit_chinchilla, fit_compute_law, fit_isoflop
    from scaletrack.analysis.plots import plot_isoflop, plot_loss_vs_compute, plot_optimal

    df = _load(sweep, csv, store, (n_col, d_col, loss_col, c_col))
    if kind is PlotKind.compute:
        front = compute_frontier(df)
        fit = fit_compute_law(front, n_bootstrap=bootstrap) if len(front) >= 3 else None
        paths = plot_loss_vs_compute(df, output, fit=fit)
    elif kind is PlotKind.isoflop:
        paths = plot_isoflop(df, output, budget_col=budget_col)
    else:
        fits = [fit_isoflop(df, budget_col=budget_col, n_bootstrap=bootstrap)]
        if "D" in df.columns and len(df) >= 5:
            fits.append(fit_chinchilla(df, n_bootstrap=bootstrap))
        paths = plot_optimal(fits, output)
    for path in paths:
        typer.echo(str(path))


def import_csv_command(
    file: Path = typer.Argument(..., help="CSV of external results (N, D, loss, task metrics)."),
    sweep: str | None = typer.Option(None, "--sweep", help="Sweep to file the runs under."),
    task_cols: str | None = typer.Option(
        None, "--task-cols",
        help="Comma-separated task-metric columns (default: every other numeric column; "
        "'' for none).",
    ),
    store: str | None = StoreOption,
    n_col: str = NCol, d_col: str = DCol, loss_col: str = LossCol, c_col: str = CCol,
) -> None:
    """Import published/external runs (family "imported") and their task metrics."""
    from scaletrack.analysis.io import read_fit_csv
    from scaletrack.store.csv_import import import_runs, task_columns

    df = read_fit_csv(file, columns=_csv_columns(n_col, d_col, loss_col, c_col),
                      required=("N", "D", "loss"))
    names = None if task_cols is None else [c.strip() for c in task_cols.split(",") if c.strip()]
    tasks = task_columns(df, names)
    with store_session(store) as st:
        counts = import_runs(st, df, source=file.name, sweep=sweep, tasks=tasks)
    console.print(
        f"imported {counts.rows} rows ({counts.new_runs} new runs) from {file.name}"
        + (f" into sweep {sweep}" if sweep else "")
        + f"; {counts.evals} task values on {counts.checkpoints} external checkpoints",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("fit")(fit_command)
    app.command("plot")(plot_command)
    app.command("import-csv")(import_csv_command)
