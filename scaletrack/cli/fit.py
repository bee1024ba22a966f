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
    err_console,
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


class BacktestForm(StrEnum):
    chinchilla = "chinchilla"
    compute = "compute"


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
    if "D" not in df.columns and {"N", "C"} <= set(df.columns):
        df = validate_frame(df, ("N", "C", "loss"), add_compute=False)
        df["D"] = df["C"] / (6.0 * df["N"])
        typer.echo(f"note: {str(path)!r} has no D column; using D = C/(6·N) tokens", err=True)
    return validate_frame(df, [c for c in ("N", "D", "loss") if c in df.columns])


def _load(sweep: str | None, csv: Path | None, store: str | None, cols: tuple,
          drop_highest_loss: int = 0) -> pd.DataFrame:
    if (sweep is None) == (csv is None):
        fail("give exactly one of --sweep NAME or --csv FILE")
    if csv is not None:
        df = _read_csv(csv, *cols)
    else:
        with open_store_or_exit(store, create=False) as st:
            runs = st.runs(sweep=sweep, status="finished")
        if runs.empty:
            fail(f"sweep {sweep!r} has no finished runs in the store")
        frame = runs[["run_key", "N", "D", "C", "seed", "lr", "final_loss"]].rename(
            columns={"final_loss": "loss"})
        df = frame.dropna(subset=["loss"]).set_index("run_key")
        if df.empty:
            fail(f"sweep {sweep!r} has no finished runs with a final loss")
    if drop_highest_loss:
        if drop_highest_loss >= len(df):
            raise DataError(f"--drop-highest-loss {drop_highest_loss} would drop all "
                            f"{len(df)} rows")
        df = df.drop(df["loss"].nlargest(drop_highest_loss).index)
    return df


def _selected(df: pd.DataFrame, form: str, lr: str, seeds: str,
              frontier: bool | None) -> tuple[pd.DataFrame, str]:
    from scaletrack.analysis.selection import select_points

    return select_points(df, form, lr=lr, seeds=seeds, frontier=frontier)


def _budgets(df: pd.DataFrame, extra: list[float] | None) -> list[float]:
    """Allocation budgets (FLOPs): each decade across the data's compute range, plus --budget."""
    lo, hi = np.log10(df["C"].min()), np.log10(df["C"].max())
    decades = [10.0**k for k in range(int(np.ceil(lo)), int(np.floor(hi)) + 1)]
    out = sorted({float(df["C"].min()), *decades, float(df["C"].max()), *(extra or [])})
    return out


def _fit(form: str, df: pd.DataFrame, bootstrap: int, seed: int):
    import warnings

    from scaletrack.analysis import fit_chinchilla, fit_compute_law, fit_envelope, fit_isoflop
    from scaletrack.analysis.calibration import calibrate_scatter

    with warnings.catch_warnings():  # a wild refit is reported through the fit's status
        warnings.simplefilter("ignore", RuntimeWarning)
        if form == "chinchilla":
            fit = fit_chinchilla(df, n_bootstrap=bootstrap, seed=seed)
            if not fit.degenerate and bootstrap:
                fit = calibrate_scatter(fit, df, lambda d: fit_chinchilla(d, n_bootstrap=0))
            return fit
        if form == "compute":
            fit = fit_compute_law(df, n_bootstrap=bootstrap, seed=seed)
            if not fit.degenerate and bootstrap:
                fit = calibrate_scatter(fit, df, lambda d: fit_compute_law(d, n_bootstrap=0))
            return fit
        if form == "isoflop":
            return fit_isoflop(df, n_bootstrap=bootstrap, seed=seed)
        return fit_envelope(df, n_bootstrap=bootstrap, seed=seed)


LrOpt = typer.Option("best", "--lr", help="Several learning rates per (N, D): 'best' keeps "
                     "the lowest loss (default), 'all' keeps every run.")
SeedsOpt = typer.Option("mean", "--seeds", help="'mean' averages runs that differ only by "
                        "seed (default); 'all' keeps each.")
FrontierOpt = typer.Option(None, "--frontier/--all-points", help="Fit compute laws on the "
                           "compute frontier (default for --form compute) or on all points.")
DropOpt = typer.Option(0, "--drop-highest-loss", min=0, help="Drop the K highest-loss rows "
                       "first (Epoch's 240-point procedure uses 5).")


def fit_command(
    form: FitForm = typer.Option(..., "--form", help="Law to fit."),
    sweep: str | None = SweepOpt,
    csv: Path | None = CsvOpt,
    bootstrap: int = typer.Option(
        1000, "--bootstrap", min=0, help="Bootstrap resamples (0: none)."
    ),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    budgets: list[float] = typer.Option(None, "--budget", help="Extra compute budget (FLOPs) "
                                        "for the allocation table; repeatable."),
    lr: str = LrOpt, seeds: str = SeedsOpt, frontier: bool | None = FrontierOpt,
    drop_highest_loss: int = DropOpt,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    store: str | None = StoreOption,
    n_col: str = NCol, d_col: str = DCol, loss_col: str = LossCol, c_col: str = CCol,
) -> None:
    """Fit a scaling law with 95% bootstrap intervals; with --sweep the fit is saved."""
    from scaletrack.analysis.status import degenerate_message

    try:
        df = _load(sweep, csv, store, (n_col, d_col, loss_col, c_col), drop_highest_loss)
        points, how = _selected(df, form.value, lr, seeds, frontier)
        result = _fit(form.value, points, bootstrap, seed)
    except ScaletrackError as exc:
        fail(str(exc))
    fit_id = None
    if sweep is not None:
        with open_store_or_exit(store, create=False) as st:
            try:
                fit_id = st.save_fit(result.form, result.to_dict(), sweep=sweep)
            except ScaletrackError as exc:
                fail(str(exc))
    message = degenerate_message(result)
    if as_json:
        out: dict[str, Any] = {
            "form": result.form,
            "params": dict(result.params),
            "ci95": {k: list(v) for k, v in result.ci95.items()},
            "n_points": result.n_points,
            "points": how,
            "status": result.status,
            "status_reason": result.status_reason,
        }
        if result.form == "isoflop":
            out["budget_snapping"] = result.extra.get("budget_snapping")
            out["out_of_range_budgets"] = list(result.extra.get("out_of_range_budgets", []))
        if fit_id is not None:
            out["fit_id"] = fit_id
        print_json(out)
        return
    console.print(f"points: {how}", markup=False)
    if result.form == "isoflop":
        console.print(f"budgets: {result.extra.get('budget_snapping', '')}", markup=False)
        for b in result.extra.get("out_of_range_budgets", []):
            console.print(f"left out budget C = {b['C']:.3g} FLOPs: vertex N = {b['N_opt']:.3g}"
                          f" outside the sampled sizes [{b['N_min']:.3g}, {b['N_max']:.3g}]",
                          markup=False)
    print_table(result.summary(), title=f"{result.form} fit on {result.n_points} points "
                f"(95% intervals from {bootstrap} bootstrap resamples)")
    if message:
        console.print(message, markup=False, soft_wrap=True)
    elif result.form in ("chinchilla", "isoflop", "envelope"):
        from scaletrack.analysis import compute_optimal

        table = compute_optimal(result, _budgets(points, budgets))
        if result.form == "chinchilla":
            band = result.predict_interval(table["N_opt"].to_numpy(), table["D_opt"].to_numpy())
            table["loss_lo"], table["loss_hi"] = band["lo"].to_numpy(), band["hi"].to_numpy()
        print_table(table, title="compute-optimal allocation (data's compute range + --budget; "
                    "loss band: 95% prediction interval)")
    if fit_id is not None:
        console.print(f"saved fit {fit_id} for sweep {sweep}", markup=False, highlight=False)


def backtest_command(
    form: BacktestForm = typer.Option(..., "--form", help="Law to back-test."),
    holdout_top: float = typer.Option(..., "--holdout-top", help="Fraction of runs, by "
                                      "compute, to hold out and predict (0-1)."),
    sweep: str | None = SweepOpt,
    csv: Path | None = CsvOpt,
    bootstrap: int = typer.Option(200, "--bootstrap", min=0, help="Bootstrap resamples."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Plot file (.png)."),
    lr: str = LrOpt, seeds: str = SeedsOpt, frontier: bool | None = FrontierOpt,
    drop_highest_loss: int = DropOpt,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    store: str | None = StoreOption,
    n_col: str = NCol, d_col: str = DCol, loss_col: str = LossCol, c_col: str = CCol,
) -> None:
    """Fit on the runs below a compute quantile, predict the rest: MAPE and band coverage."""
    import warnings

    from scaletrack.analysis import backtest
    from scaletrack.analysis.status import degenerate_message

    try:
        if not 0.0 < holdout_top < 1.0:
            raise DataError(f"--holdout-top must be a fraction in (0, 1), got {holdout_top:g}")
        df = _load(sweep, csv, store, (n_col, d_col, loss_col, c_col), drop_highest_loss)
        points, how = _selected(df, form.value, lr, seeds, frontier)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = backtest(points, form.value, holdout_top=holdout_top, n_bootstrap=bootstrap)
        paths = []
        if output is not None:
            from scaletrack.analysis.plots import plot_backtest

            paths = plot_backtest(points, res, output)
    except ScaletrackError as exc:
        fail(str(exc))
    s = res.summary
    if as_json:
        print_json({k: s[k] for k in ("n_train", "n_test", "mape", "coverage_prediction",
                                      "coverage_confidence")}
                   | {"form": form.value, "holdout_top": holdout_top, "points": how,
                      "status": s["status"], "threshold_C": s["threshold_C"],
                      "plots": [str(p) for p in paths]})
        return
    console.print(f"points: {how}", markup=False)
    console.print(
        f"{form.value} back-test: fit on {s['n_train']} runs below C = {s['threshold_C']:.3g} "
        f"FLOPs, predicted {s['n_test']}: MAPE {100 * s['mape']:.2f}%, 95% prediction band "
        f"covers {100 * s['coverage_prediction']:.0f}%, confidence band "
        f"{100 * s['coverage_confidence']:.0f}%", markup=False)
    message = degenerate_message(res.fit)
    if message:
        console.print(message, markup=False, soft_wrap=True)
    for path in paths:
        typer.echo(str(path))


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
    from scaletrack.analysis import fit_chinchilla, fit_isoflop
    from scaletrack.analysis.plots import plot_isoflop, plot_loss_vs_compute, plot_optimal

    try:
        df = _load(sweep, csv, store, (n_col, d_col, loss_col, c_col))
        if kind is PlotKind.compute:
            points, how = _selected(df, "compute", "best", "mean", None)
            fit = _fit("compute", points, bootstrap, 0) if len(points) >= 3 else None
            console.print(f"points: {how}", markup=False)
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


def _check_whole_counts(df: pd.DataFrame) -> None:
    """N (parameters) and D (tokens) are counts, stored rounded to whole numbers: a value
    below 1 (N = 0.4 would be stored as 0) is refused rather than rounded away."""
    for col in ("N", "D"):
        values = df[col].to_numpy(dtype=float)
        bad = values < 1
        if bad.any():
            row = df.index[int(np.argmax(bad))]
            raise DataError(f"column {col!r} row {row} has {float(df[col].loc[row]):g}: "
                            f"{'parameter' if col == 'N' else 'token'} counts must be at "
                            "least 1")


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
    name_col: str | None = typer.Option(
        None, "--name-col", help="Column naming each run (default: a 'name' or 'model' column)."
    ),
) -> None:
    """Import published/external runs (family "imported") and their task metrics."""
    counts = {"rows": 0, "new_runs": 0, "checkpoints": 0, "evals": 0, "skipped": 0}
    total = 0
    try:
        df = _read_csv(file, n_col, d_col, loss_col, c_col)
        if "N" not in df.columns or "D" not in df.columns:
            fail(f"CSV {str(file)!r} needs columns for N ({n_col!r}) and D ({d_col!r})")
        _check_fits_int64(df)
        _check_whole_counts(df)
        tasks = _task_columns(df, task_cols)
        if name_col is None:
            name_col = next((c for c in ("name", "model", "Model") if c in df.columns), None)
        elif name_col not in df.columns:
            fail(f"CSV {str(file)!r} has no column {name_col!r} (--name-col)")
        tasks = [t for t in tasks if t != name_col]
        total = len(df)
        with open_store_or_exit(store) as st:
            _import_rows(st, df, tasks, sweep, file.name, counts, _progress(len(df)), name_col)
    except ScaletrackError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        err_console.print(
            f"interrupted: kept {counts['rows']:,} of {total:,} rows (whole batches); run the "
            "same command again to import the rest (rows already imported are skipped)",
            markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    skipped = counts.get("skipped_cells", [])
    console.print(
        f"imported {counts['rows']:,} rows ({counts['new_runs']:,} new runs) from {file.name}"
        + (f" into sweep {sweep}" if sweep else "")
        + f"; {counts['evals']:,} task values on {counts['checkpoints']:,} external checkpoints"
        + (f"; skipped {counts['skipped']:,} missing, NaN or infinite task values (first: "
           + ", ".join(f"row {r} column {c!r}" for r, c in skipped) + ")"
           if counts["skipped"] else ""),
        markup=False, highlight=False, soft_wrap=True,
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


IMPORT_BATCH_ROWS = 10_000  # rows per store transaction (and per progress line)
SKIPPED_SHOWN = 3


def _progress(total: int):
    """A callback printing "imported 120,000 / 1,000,000 rows" on stderr, at most every 2 s."""
    import time

    last = [time.monotonic()]

    def report(done: int) -> None:
        now = time.monotonic()
        if total > IMPORT_BATCH_ROWS and (now - last[0] >= 2.0 or done == total):
            last[0] = now
            err_console.print(f"imported {done:,} / {total:,} rows", highlight=False)

    return report


def _import_rows(st, df: pd.DataFrame, tasks: list[str], sweep: str | None, source: str,
                 counts: dict, progress, name_col: str | None = None) -> dict:
    """Import `df` in batches of IMPORT_BATCH_ROWS rows (one transaction each); `counts` is
    updated after every batch, so an interrupted import knows how many rows it kept."""
    import math

    from scaletrack.store import CheckpointRecord, RunRecord, make_run_key

    if sweep is not None and sweep not in set(st.sweeps()["name"]):
        st.upsert_sweep(sweep, {"imported_from": source})
    counts.setdefault("skipped_cells", [])
    core = [c for c in CORE_COLUMNS if c in df.columns]
    for start in range(0, len(df), IMPORT_BATCH_ROWS):
        chunk = df.iloc[start:start + IMPORT_BATCH_ROWS]
        records, task_values = [], []
        for idx, row in zip(chunk.index, chunk.to_dict(orient="records"), strict=True):
            config = {"family": "imported", "source": source, "sweep": sweep,
                      **{c: float(row[c]) for c in core}}
            values = {}
            for task in tasks:
                value = pd.to_numeric(row[task], errors="coerce")
                config[task] = None if pd.isna(value) else float(value)
                if config[task] is not None and math.isfinite(config[task]):
                    values[task] = config[task]
                else:
                    counts["skipped"] += 1
                    if len(counts["skipped_cells"]) < SKIPPED_SHOWN:
                        counts["skipped_cells"].append((_label(idx), task))
            key = make_run_key(config)
            n, d = int(round(row["N"])), int(round(row["D"]))
            records.append(RunRecord(
                run_key=key, sweep=sweep, family="imported", config=config, N=n, N_total=n,
                D=d, C=float(row["C"]), status="finished", final_loss=float(row["loss"]),
                name=None if name_col is None or pd.isna(row[name_col]) else str(row[name_col]),
            ))
            task_values.append((idx, key, n, d, float(row["C"]), values))
        counts["new_runs"] += st.ensure_runs(records)
        for idx, key, n, d, c, values in task_values:
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
        counts["rows"] += len(chunk)
        progress(counts["rows"])
    return counts


def _label(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("fit")(fit_command)
    app.command("plot")(plot_command)
    app.command("backtest")(backtest_command)
    app.command("import-csv")(import_csv_command)
