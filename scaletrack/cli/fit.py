"""`scaletrack fit`, `scaletrack plot` and `scaletrack import-csv`.

Data comes from a sweep in the store (finished runs: N params, D tokens, C FLOPs, final_loss
in nats) or from a CSV whose columns are renamed to N, D, C, loss with --n-col/--d-col/
--c-col/--loss-col (C defaults to 6·N·D). `import-csv` records a CSV's rows as finished runs
(see `scaletrack.store.csv_import` for the convention).
"""

from __future__ import annotations

import warnings
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from scaletrack.cli.common import (
    StoreOption,
    console,
    echo,
    err_console,
    print_json,
    print_table,
    store_session,
)
from scaletrack.errors import ConfigError, DataError
from scaletrack.number_format import fmt_number

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd


class FitForm(StrEnum):
    chinchilla = "chinchilla"
    compute = "compute"
    isoflop = "isoflop"
    envelope = "envelope"


class BacktestForm(StrEnum):
    chinchilla = "chinchilla"
    compute = "compute"


NCol = typer.Option("N", "--n-col", help="CSV column with parameters N.")
DCol = typer.Option("D", "--d-col", help="CSV column with training tokens D.")
LossCol = typer.Option("loss", "--loss-col", help="CSV column with the final loss (nats).")
CCol = typer.Option("C", "--c-col", help="CSV column with compute C in FLOPs (default 6·N·D).")
SweepOpt = typer.Option(None, "--sweep", help="Use the finished runs of this sweep.")
CsvOpt = typer.Option(None, "--csv", help="Use this CSV instead of the store.", exists=False)


def _csv_columns(n_col: str, d_col: str, loss_col: str, c_col: str) -> dict[str, str]:
    return {"N": n_col, "D": d_col, "loss": loss_col, "C": c_col}


def _load(sweep: str | None, csv: Path | None, store: str | None, cols: tuple,
          drop_highest_loss: int = 0) -> pd.DataFrame:
    """The N, D, C, loss frame to fit (with seed and lr for a sweep): a sweep's finished runs
    (trunks of cooldown branches left out), or a CSV; less the `drop_highest_loss` rows with
    the highest loss."""
    from scaletrack.analysis.io import read_fit_csv
    from scaletrack.store.fit_points import sweep_points

    if (sweep is None) == (csv is None):
        raise ConfigError("give exactly one of --sweep NAME or --csv FILE")
    if csv is not None:
        df = read_fit_csv(csv, columns=_csv_columns(*cols), required=("loss",))
        _note_derived(csv, df)
    else:
        assert sweep is not None  # exactly one of sweep and csv, checked above
        with store_session(store, create=False) as st:
            df = sweep_points(st, sweep)
    if drop_highest_loss:
        if drop_highest_loss >= len(df):
            raise DataError(f"--drop-highest-loss {drop_highest_loss} would drop all "
                            f"{len(df)} rows")
        df = df.drop(df["loss"].nlargest(drop_highest_loss).index)
    return df


def _note_derived(csv: Path, df: pd.DataFrame) -> None:
    """One stderr line when the file's D was derived (published tables give N and C only)."""
    if df.attrs.get("derived"):
        typer.echo(f"note: {str(csv)!r} has no D column; using {df.attrs['derived']}", err=True)


BUILT_IN_FAMILIES = ("gpt", "lstm")
EXACT_RESIDUAL = 1e-4  # log loss: points within 0.01 % of the law carry no real scatter


def counting_note(families: Iterable[str] | None = None) -> str:
    """How N and C are counted for runs of these families (all when None), in words: the
    parameter and FLOP conventions."""
    from scaletrack.models.accounting import DEFAULT_FLOP_CONVENTION, FLOP_CONVENTIONS

    fams = set(BUILT_IN_FAMILIES) | {"other"} if families is None else set(families)
    parts = []
    if fams & set(BUILT_IN_FAMILIES):
        parts.append(f"built-in models count N as non-embedding parameters (Kaplan; N_total "
                     f"adds the embeddings) and C as tokens x FLOPs per token under "
                     f"{DEFAULT_FLOP_CONVENTION!r} = {FLOP_CONVENTIONS[DEFAULT_FLOP_CONVENTION]}")
    if fams - set(BUILT_IN_FAMILIES):
        parts.append("command and imported runs keep the N and C they recorded (planned "
                     "command cells: C = 6·N·D, no attention or output-layer terms)")
    return "; ".join(parts)


def compute_note(sweep: str | None, csv: Path | None, c_col: str) -> str:
    """Where the fit's compute C comes from, in words (the FLOP convention)."""
    if sweep is not None:
        return f"C: planned FLOPs; {counting_note()}"
    import csv as csv_mod  # only here: `scaletrack --help` does not load csv

    with open(csv, newline="", encoding="utf-8") as fh:  # type: ignore[arg-type]
        header = next(csv_mod.reader(fh), [])
    if c_col in header:
        return f"C: the file's column {c_col!r}"
    return "C = 6·N·D (no attention or output-layer terms)"


def _selected(df: pd.DataFrame, form: str, lr: str, seeds: str,
              frontier: bool | None) -> tuple[pd.DataFrame, str]:
    from scaletrack.analysis.selection import select_points

    return select_points(df, form, lr=lr, seeds=seeds, frontier=frontier)


def _budgets(df: pd.DataFrame, extra: list[float] | None) -> list[float]:
    """Allocation budgets (FLOPs): each decade across the data's compute range, plus --budget."""
    import numpy as np

    lo, hi = np.log10(df["C"].min()), np.log10(df["C"].max())
    decades = [10.0**k for k in range(int(np.ceil(lo)), int(np.floor(hi)) + 1)]
    return sorted({float(df["C"].min()), *decades, float(df["C"].max()), *(extra or [])})


def parse_fix(items: list[str] | None) -> dict[str, float]:
    """`--fix NAME=VALUE` options as {name: value}; a malformed one is a one-line ConfigError."""
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--fix takes NAME=VALUE (e.g. --fix E=0), got {item!r}") from None
    return out


def _fit(form: str, df: pd.DataFrame, bootstrap: int, seed: int,
         fix: dict[str, float] | None = None, target_C: float | None = None):
    from scaletrack.analysis import fit_chinchilla, fit_compute_law, fit_envelope, fit_isoflop

    if fix and form not in ("chinchilla", "compute"):
        raise ConfigError(f"--fix applies to --form chinchilla or compute, not {form}")
    with warnings.catch_warnings():  # a wild refit is reported through the fit's status
        warnings.simplefilter("ignore", RuntimeWarning)
        if form == "chinchilla":
            return fit_chinchilla(df, n_bootstrap=bootstrap, seed=seed, fix=fix,
                                  target_C=target_C)
        if form == "compute":
            return fit_compute_law(df, n_bootstrap=bootstrap, seed=seed, fix=fix,
                                   target_C=target_C)
        if form == "isoflop":
            return fit_isoflop(df, n_bootstrap=bootstrap, seed=seed)
        return fit_envelope(df, n_bootstrap=bootstrap, seed=seed)


def _cache_scaling_fits(st: Any, sweep: str) -> None:
    """Save the dashboard's scaling-view fits of `sweep` in the store's fit cache, as the end
    of a sweep does (`scaletrack.scaling_fits`), so the view answers from the store; a
    failure only costs the view its cache, with one line on stderr."""
    from scaletrack.errors import ScaletrackError
    from scaletrack.scaling_fits import cache_scaling_fits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            cache_scaling_fits(st, sweep)
    except ScaletrackError as exc:
        err_console.print(f"note: the dashboard's scaling fits were not cached: {exc}",
                          markup=False, highlight=False, soft_wrap=True)


LrOpt = typer.Option("best", "--lr", help="Several learning rates per (N, D): 'best' keeps "
                     "the lowest loss (default), 'all' keeps every run.")
SeedsOpt = typer.Option("mean", "--seeds", help="'mean' averages runs that differ only by "
                        "seed (default); 'all' keeps each.")
FrontierOpt = typer.Option(None, "--frontier/--all-points", help="Fit compute laws on the "
                           "compute frontier (default for --form compute) or on all points.")
DropOpt = typer.Option(0, "--drop-highest-loss", min=0, help="Drop the K highest-loss rows "
                       "first (Epoch's 240-point procedure uses 5).")


def fit_command(
    form: FitForm = typer.Option(
        FitForm.chinchilla, "--form",
        help="Law to fit (chinchilla: L(N, D) = E + A/N^alpha + B/D^beta)."
    ),
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
    fix: list[str] = typer.Option(None, "--fix", help="Hold a parameter at a value, "
                                  "NAME=VALUE (e.g. E=0: no irreducible loss); repeatable."),
    target_c: float | None = typer.Option(None, "--target-C", min=0.0, help="Compute (FLOPs) "
                                          "where the prediction band is judged and printed "
                                          "(default 10x the largest run)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    store: str | None = StoreOption,
    n_col: str = NCol, d_col: str = DCol, loss_col: str = LossCol, c_col: str = CCol,
) -> None:
    """Fit a scaling law with 95% bootstrap intervals; with --sweep the fit is saved (and the
    dashboard's scaling-view fits of the sweep are cached in the store)."""
    from scaletrack.analysis.status import degenerate_message

    fixed = parse_fix(fix)
    df = _load(sweep, csv, store, (n_col, d_col, loss_col, c_col), drop_highest_loss)
    points, how = _selected(df, form.value, lr, seeds, frontier)
    how = f"{how}; {compute_note(sweep, csv, c_col)}"
    result = _fit(form.value, points, bootstrap, seed, fixed, target_c)
    fit_id = None
    if sweep is not None:
        with store_session(store, create=False) as st:
            fit_id = st.save_fit(result.form, result.to_dict(), sweep=sweep)
            _cache_scaling_fits(st, sweep)
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
            "fixed": dict(result.extra.get("fixed") or {}),
            "target": result.extra.get("target"),
        }
        if result.form == "isoflop":
            out["budget_snapping"] = result.extra.get("budget_snapping")
            out["out_of_range_budgets"] = list(result.extra.get("out_of_range_budgets", []))
        if fit_id is not None:
            out["fit_id"] = fit_id
        print_json(out)
        return
    console.print(f"points: {how}", markup=False, highlight=False, soft_wrap=True)
    if result.form == "isoflop":
        console.print(f"budgets: {result.extra.get('budget_snapping', '')}", markup=False)
        for b in result.extra.get("out_of_range_budgets", []):
            console.print(f"left out budget C = {fmt_number(b['C'])} FLOPs: vertex N = "
                          f"{fmt_number(b['N_opt'])} outside the sampled sizes "
                          f"[{fmt_number(b['N_min'])}, {fmt_number(b['N_max'])}]",
                          markup=False)
    target = result.extra.get("target")
    if target and not message:
        where = ", ".join(f"{k} = {fmt_number(target[k])}"
                          for k in ("C", "N", "D") if k in target)
        origin = "" if target_c is not None else ", 10x the largest run; --target-C to move it"
        console.print(f"prediction at the target ({where}{origin}): "
                      f"loss {fmt_number(target['pred'])} nats/token, 95% band "
                      f"[{fmt_number(target['lo'])}, {fmt_number(target['hi'])}]",
                      markup=False, highlight=False, soft_wrap=True)
        residuals = [abs(float(r)) for r in result.residuals]
        if residuals and max(residuals) < EXACT_RESIDUAL:
            err_console.print("note: every point lies within 0.01 % of the fitted law (no "
                              "run-to-run scatter, as in data made from a law), so the bands "
                              "are that narrow too; real runs scatter more", markup=False)
    if message:  # an unidentified fit's numbers mean nothing: print why, not them
        console.print(message, markup=False, soft_wrap=True)
        console.print("(parameters and status are in --json and the saved fit)", markup=False)
    else:
        print_table(result.summary(), title=f"{result.form} fit on {result.n_points} points "
                    f"(95% intervals from {bootstrap} bootstrap resamples)")
        if result.form in ("chinchilla", "isoflop", "envelope"):
            _print_allocation(result, _budgets(points, budgets))
    if fit_id is not None:
        console.print(f"saved fit {fit_id} for sweep {sweep}", markup=False, highlight=False)


def _print_allocation(result: Any, budgets: list[float]) -> None:
    """Compute-optimal N, D (and, for Chinchilla, the loss band) at each budget (FLOPs)."""
    from scaletrack.analysis import compute_optimal

    table = compute_optimal(result, budgets)
    if result.form == "chinchilla":
        band = result.predict_interval(table["N_opt"].to_numpy(), table["D_opt"].to_numpy())
        table["loss_lo"], table["loss_hi"] = band["lo"].to_numpy(), band["hi"].to_numpy()
    print_table(table, title="compute-optimal allocation (data's compute range + --budget; "
                "loss band: 95% prediction interval)")


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
    from scaletrack.analysis import backtest
    from scaletrack.analysis.status import degenerate_message

    if not 0.0 < holdout_top < 1.0:
        raise DataError(f"--holdout-top must be a fraction in (0, 1), got {holdout_top:g}")
    df = _load(sweep, csv, store, (n_col, d_col, loss_col, c_col), drop_highest_loss)
    points, how = _selected(df, form.value, lr, seeds, frontier)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = backtest(points, form.value, holdout_top=holdout_top, n_bootstrap=bootstrap)
    paths = []
    if output is not None:
        from scaletrack.analysis.figures import save_figure
        from scaletrack.analysis.plots import plot_backtest

        paths = save_figure(plot_backtest(points, res), output)
    s = res.summary
    if as_json:
        print_json({k: s[k] for k in ("n_train", "n_test", "mape", "coverage_prediction",
                                      "coverage_confidence")}
                   | {"form": form.value, "holdout_top": holdout_top, "points": how,
                      "status": s["status"], "threshold_C": s["threshold_C"],
                      "plots": [str(p) for p in paths]})
        return
    console.print(f"points: {how}", markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"{form.value} back-test: fit on {s['n_train']} runs below "
        f"C = {fmt_number(s['threshold_C'])} "
        f"FLOPs, predicted {s['n_test']}: MAPE {100 * s['mape']:.2f}%, 95% prediction band "
        f"covers {100 * s['coverage_prediction']:.0f}%, confidence band "
        f"{100 * s['coverage_confidence']:.0f}%", markup=False)
    message = degenerate_message(res.fit)
    if message:
        console.print(message, markup=False, soft_wrap=True)
    for path in paths:
        echo(path)


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
    from scaletrack.analysis.io import read_fit_csv
    from scaletrack.csv_table import line_label
    from scaletrack.store.csv_import import (
        IMPORT_BATCH_ROWS,
        ImportCounts,
        import_runs,
        task_columns,
    )

    df = read_fit_csv(file, columns=_csv_columns(n_col, d_col, loss_col, c_col),
                      required=("N", "D", "loss"), skip_missing=True)
    _note_derived(file, df)
    names = None if task_cols is None else [c.strip() for c in task_cols.split(",") if c.strip()]
    if name_col is None:
        name_col = next((c for c in ("name", "model", "Model") if c in df.columns), None)
    elif name_col not in df.columns:
        raise DataError(f"CSV {str(file)!r} has no column {name_col!r} (--name-col)")
    where = line_label(file)
    tasks = [t for t in task_columns(df, names, where=where) if t != name_col]
    counts = ImportCounts()

    def progress(done: int) -> None:  # "imported 120,000 / 1,000,000 rows" on big files
        if len(df) > IMPORT_BATCH_ROWS:
            err_console.print(f"imported {done:,} / {len(df):,} rows", highlight=False)

    try:
        with store_session(store) as st:
            import_runs(st, df, source=file.name, sweep=sweep, tasks=tasks, name_col=name_col,
                        counts=counts, progress=progress, where=where)
    except KeyboardInterrupt:
        err_console.print(
            f"interrupted: kept {counts.rows:,} of {len(df):,} rows (whole batches); run the "
            "same command again to import the rest (rows already imported are skipped)",
            markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    console.print(
        f"imported {counts.rows:,} row{'' if counts.rows == 1 else 's'} "
        f"({counts.new_runs:,} new run{'' if counts.new_runs == 1 else 's'}) from {file.name}"
        + (f" into sweep {sweep}" if sweep else "")
        + f"; {counts.evals:,} task values on {counts.checkpoints:,} external checkpoints"
        + _skipped_rows_note(df)
        + _skipped_cells_note(file, counts),
        markup=False, highlight=False, soft_wrap=True,
    )


def _skipped_rows_note(df: pd.DataFrame) -> str:
    """'; skipped 2 rows with a missing, NaN or infinite N, D, C or loss (lines 3, 7)', or ''."""
    n = df.attrs.get("skipped_rows", 0)
    if not n:
        return ""
    lines = ", ".join(map(str, df.attrs.get("skipped_lines", [])))
    more = ", ..." if n > len(df.attrs.get("skipped_lines", [])) else ""
    return (f"; skipped {n:,} row{'s' if n != 1 else ''} with a missing, NaN or infinite N, "
            f"D, C or loss (line{'s' if n != 1 else ''} {lines}{more})")


def _skipped_cells_note(file: Path, counts: Any) -> str:
    """'; skipped 2 missing, NaN or infinite task values (first: line 5 column 'acc', ...)',
    or '' (counts: the import's ImportCounts; cells by data-row position and column)."""
    from scaletrack.csv_table import csv_line_numbers

    if not counts.skipped:
        return ""
    cells = counts.skipped_cells
    lines = csv_line_numbers(file, [int(str(row)) for row, _ in cells])
    first = ", ".join(f"line {line} column {col!r}"
                      for line, (_, col) in zip(lines, cells, strict=True))
    return f"; skipped {counts.skipped:,} missing, NaN or infinite task values (first: {first})"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("fit")(fit_command)
    app.command("backtest")(backtest_command)
    app.command("import-csv")(import_csv_command)
