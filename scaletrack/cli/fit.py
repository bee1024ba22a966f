"""`scaletrack fit`, `scaletrack plot` and `scaletrack import-csv`.

Data comes from a sweep in the store (finished runs: N params, D tokens, C FLOPs, final_loss
in nats) or from a CSV whose columns are renamed to N, D, C, loss with --n-col/--d-col/
--c-col/--loss-col (C defaults to 6·N·D).

import-csv convention: each row becomes a run with family "imported", status "finished",
final_loss = loss and run_key = make_run_key(config), where config holds the source file
name and the row's values (so importing the same file twice adds nothing). Each task-metric
column (--task-cols, default: every other numeric column) becomes an evaluation of one
external checkpoint per row (kind "external", path "imported:<run_key>", linked to the run):
store.add_eval(checkpoint_id, task=<column name>, metric="value", value).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer

from scaletrack.cli.common import (
    StoreOption,
    console,
    fail,
    open_store_or_exit,
    print_json,
    print_table,
)
from scaletrack.errors import DataError, ScaletrackError

CORE_COLUMNS = ("N", "D", "C", "loss")


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


def _read_csv(path: Path, n_col: str, d_col: str, loss_col: str, c_col: str) -> pd.DataFrame:
    """CSV with columns renamed to N, D, C, loss; C = 6·N·D when absent."""
    from scaletrack.analysis.io import validate_frame
    from scaletrack.errors import DataError

    if not path.is_file():
        raise DataError(f"CSV file {str(path)!r} does not exist")
    try:
        raw = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read CSV {str(path)!r}: {str(exc).splitlines()[0]}") from exc
    rename: dict[str, str] = {}
    for ours, theirs in (("N", n_col), ("D", d_col), ("loss", loss_col), ("C", c_col)):
        if theirs in raw.columns:
            rename[theirs] = ours
        elif theirs != ours or ours == "loss":  # a column the user named must exist
            raise DataError(f"CSV {str(path)!r} has no column {theirs!r} (for {ours}); "
                            f"columns: {list(raw.columns)}")
    df = raw.rename(columns=rename)
    return validate_frame(df, [c for c in ("N", "D", "loss") if c in df.columns])


def _load(sweep: str | None, csv: Path | None, store: str | None, cols: tuple) -> pd.DataFrame:
    if (sweep is None) == (csv is None):
        fail("give exactly one of --sweep NAME or --csv FILE")
    if csv is not None:
        return _read_csv(csv, *cols)
    with open_store_or_exit(store) as st:
        runs = st.fit_runs(sweep=sweep)
    if runs.empty:
        fail(f"sweep {sweep!r} has no finished runs in the store")
    frame = runs[["run_key", "N", "D", "C", "final_loss"]].rename(columns={"final_loss": "loss"})
    return frame.set_index("run_key")


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
    try:
        df = _load(sweep, csv, store, (n_col, d_col, loss_col, c_col))
        result = _fit(form.value, df, bootstrap, seed)
    except ScaletrackError as exc:
        fail(str(exc))
    fit_id = None
    if sweep is not None:
        with open_store_or_exit(store) as st:
            try:
                fit_id = st.save_fit(result.form, result.to_dict(), sweep=sweep)
            except ScaletrackError as exc:
                fail(str(exc))
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

    try:
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
    except ScaletrackError as exc:
        fail(str(exc))
    for path in paths:
        typer.echo(str(path))


def _check_fits_int64(df: pd.DataFrame) -> None:
    """The store keeps N and D as 64-bit integers; refuse a value it cannot hold."""
    for col in ("N", "D"):
        too_big = df[col].to_numpy(dtype=float) >= 2.0**63
        if too_big.any():
            row = df.index[int(np.argmax(too_big))]
            raise DataError(
                f"column {col!r} row {row} has {float(df[col].loc[row]):g}, more than the "
                "store's 64-bit integers hold"
            )


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
    try:
        df = _read_csv(file, n_col, d_col, loss_col, c_col)
        if "N" not in df.columns or "D" not in df.columns:
            fail(f"CSV {str(file)!r} needs columns for N ({n_col!r}) and D ({d_col!r})")
        _check_fits_int64(df)
        tasks = _task_columns(df, task_cols)
        with open_store_or_exit(store) as st:
            counts = _import_rows(st, df, tasks, sweep, file.name)
    except ScaletrackError as exc:
        fail(str(exc))
    console.print(
        f"imported {counts['rows']} rows ({counts['new_runs']} new runs) from {file.name}"
        + (f" into sweep {sweep}" if sweep else "")
        + f"; {counts['evals']} task values on {counts['checkpoints']} external checkpoints"
    )


def _task_columns(df: pd.DataFrame, task_cols: str | None) -> list[str]:
    from scaletrack.errors import DataError

    if task_cols is None:
        return [c for c in df.columns
                if c not in CORE_COLUMNS and pd.api.types.is_numeric_dtype(df[c])]
    names = [c.strip() for c in task_cols.split(",") if c.strip()]
    for name in names:
        if name not in df.columns:
            raise DataError(f"task column {name!r} is not in the CSV; columns: {list(df.columns)}")
        values = pd.to_numeric(df[name], errors="coerce")
        bad = values.isna() & df[name].notna()
        if bad.any():
            row = bad[bad].index[0]
            raise DataError(f"task column {name!r} is not numeric: row {row} has "
                            f"{df[name].loc[row]!r}")
    return names


def _import_rows(st, df: pd.DataFrame, tasks: list[str], sweep: str | None, source: str) -> dict:
    import math

    from scaletrack.store import CheckpointRecord, RunRecord, make_run_key

    if sweep is not None and sweep not in set(st.sweeps()["name"]):
        st.upsert_sweep(sweep, {"imported_from": source})
    counts = {"rows": 0, "new_runs": 0, "checkpoints": 0, "evals": 0}
    for idx, row in df.iterrows():
        config = {"family": "imported", "source": source, "sweep": sweep,
                  **{c: float(row[c]) for c in CORE_COLUMNS if c in df.columns}}
        for task in tasks:
            value = pd.to_numeric(row[task], errors="coerce")
            config[task] = None if pd.isna(value) else float(value)
        key = make_run_key(config)
        existed = st.get_run(key) is not None
        n, d, c = int(round(row["N"])), int(round(row["D"])), float(row["C"])
        st.ensure_run(RunRecord(
            run_key=key, sweep=sweep, family="imported", config=config, N=n, N_total=n, D=d,
            C=c, status="finished", final_loss=float(row["loss"]),
        ))
        counts["rows"] += 1
        counts["new_runs"] += not existed
        values = {t: config[t] for t in tasks if config[t] is not None and math.isfinite(config[t])}
        if not values:
            continue
        ckpt_id = st.add_checkpoint(CheckpointRecord(
            id=None, run_key=key, kind="external", N=n, tokens=d, flops=c, step=None,
            path=f"imported:{key}", sha256=None, loader=None,
            meta={"source": source, "row": _label(idx)},
        ))
        counts["checkpoints"] += 1
        for task, value in values.items():
            st.add_eval(ckpt_id, task=task, metric="value", value=value)
            counts["evals"] += 1
    return counts


def _label(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("fit")(fit_command)
    app.command("plot")(plot_command)
    app.command("import-csv")(import_csv_command)
