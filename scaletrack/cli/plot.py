"""`scaletrack plot`: loss vs compute, IsoFLOP profiles and compute-optimal allocation.

The points drawn and fitted are chosen by `scaletrack.analysis.selection.select_points`,
as for `fit` and `backtest` (best learning rate per (N, D), seeds averaged, compute laws on
the frontier), and the same `points:` line says how. Data: a sweep's finished runs or a CSV
(N params, D tokens, C FLOPs, loss nats), loaded as `fit` loads them.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from scaletrack.cli.common import StoreOption, console, echo
from scaletrack.cli.fit import (
    CCol,
    CsvOpt,
    DCol,
    LossCol,
    LrOpt,
    NCol,
    SeedsOpt,
    SweepOpt,
    _fit,
    _load,
    compute_note,
)
from scaletrack.errors import DataError


class PlotKind(StrEnum):
    compute = "compute"
    isoflop = "isoflop"
    optimal = "optimal"


def plot_command(
    kind: PlotKind = typer.Argument(..., help="compute | isoflop | optimal"),
    output: Path = typer.Option(..., "-o", "--output", help="Output file (.png; .svg beside it)."),
    sweep: str | None = SweepOpt,
    csv: Path | None = CsvOpt,
    bootstrap: int = typer.Option(200, "--bootstrap", min=0, help="Resamples for the bands."),
    budget_col: str | None = typer.Option(
        None, "--budget-col", help="CSV column of nominal budgets (isoflop; default: snap C)."
    ),
    lr: str = LrOpt, seeds: str = SeedsOpt,
    store: str | None = StoreOption,
    n_col: str = NCol, d_col: str = DCol, loss_col: str = LossCol, c_col: str = CCol,
) -> None:
    """Draw loss vs compute (selected runs, frontier, L(C) fitted on the frontier), IsoFLOP
    profiles, or N_opt/D_opt vs compute (IsoFLOP and Chinchilla fits), on the points `fit`
    would use."""
    from scaletrack.analysis import fit_chinchilla, fit_isoflop
    from scaletrack.analysis.figures import save_figure
    from scaletrack.analysis.plots import plot_isoflop, plot_loss_vs_compute, plot_optimal
    from scaletrack.analysis.selection import select_points

    df = _load(sweep, csv, store, (n_col, d_col, loss_col, c_col))
    keep = (budget_col,) if budget_col else ()
    if kind is PlotKind.compute:
        runs, _ = select_points(df, "compute", lr=lr, seeds=seeds, frontier=False)
        points, how = select_points(df, "compute", lr=lr, seeds=seeds)
        how = f"{how}; {compute_note(sweep, csv, c_col)}"
        console.print(f"points: {how}", markup=False, highlight=False, soft_wrap=True)
        try:
            fit = _fit("compute", points, bootstrap, 0)
        except DataError as exc:  # too few points for a law: draw the points, say why
            fit = None
            console.print(f"no L(C) law drawn: {exc}", markup=False, highlight=False,
                          soft_wrap=True)
        figure = plot_loss_vs_compute(runs, fit=fit)
    else:
        points, how = select_points(df, "isoflop", lr=lr, seeds=seeds, keep=keep)
        how = f"{how}; {compute_note(sweep, csv, c_col)}"
        console.print(f"points: {how}", markup=False, highlight=False, soft_wrap=True)
        if kind is PlotKind.isoflop:
            figure = plot_isoflop(points, budget_col=budget_col)
        else:
            fits = [fit_isoflop(points, budget_col=budget_col, n_bootstrap=bootstrap)]
            if "D" in points.columns and len(points) >= 7:
                fits.append(fit_chinchilla(points, n_bootstrap=bootstrap))
            figure = plot_optimal(fits)
    for path in save_figure(figure, output):
        echo(path)


def register(app: typer.Typer) -> None:
    """Add `scaletrack plot` to the main app."""
    app.command("plot")(plot_command)
