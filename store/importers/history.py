"""A long history table -> runs and metric rows: one row per (run, step), one column per metric.

This is what a W&B `run.history()` export (or most trackers' CSV export) looks like. Columns
starting with "_" (W&B's `_runtime`, `_timestamp`) are skipped, except `_step`, used as the
step when there is no `step` column. Empty cells (metrics logged at other steps) are not
values; NaN and ±inf cells are skipped and counted; a column with no numbers at all is
skipped and named; a column mixing numbers and text, a step that is not a whole number in
0..2^63-1, an empty run cell or a bad tokens cell is a one-line error naming the line and
column, and nothing is written. N (parameters) and D (tokens) are never guessed: they come
from an optional sizes table (`run,params[,tokens]`), else stay empty.

Everything is checked first, then written in one transaction (`importers.apply`).
Re-importing a longer export of the same runs adds the new rows, refreshes each run's final
loss (the last finite value of the first of FINAL_LOSS_METRICS it has) and adds nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scaletrack.csv_table import read_csv_table
from scaletrack.errors import DataError
from scaletrack.store.importers import checks

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

FINAL_LOSS_METRICS = ("val/loss", "eval/loss", "loss", "train/loss")
SKIPPED_SHOWN = 3  # skipped cells named in a report
_NAN_TEXT = {"nan", "-nan", "+nan"}


@dataclass(frozen=True)
class HistoryReport:
    """What `import_history` did. Counts of rows of the table, runs (new / refreshed),
    metric rows (given / new to the store), skipped non-finite cells (the first few as
    (where, column)) and the columns skipped for holding no numbers."""

    rows: int
    runs: int
    runs_new: int
    metric_rows: int
    metrics: tuple[str, ...]
    runs_updated: int = 0
    metric_rows_new: int = 0
    nonfinite: int = 0
    nonfinite_cells: tuple[tuple[str, str], ...] = ()
    skipped_columns: tuple[str, ...] = ()


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV (cells read as text, checked by the importer), parquet or JSON-lines
    (.jsonl/.json) file as a DataFrame; a one-line DataError naming the file otherwise."""
    path = checks.regular_file(path, "history file")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".jsonl", ".json"):
        return read_csv_table(path, text=True)  # a row wider than the header: refused
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
    except ImportError as exc:
        raise DataError(f"cannot read {path.name}: {exc} (pip install 'scaletrack[parquet]')") \
            from None
    except (ValueError, OverflowError, RecursionError, pd.errors.ParserError,
            UnicodeDecodeError, OSError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise DataError(f"cannot read {str(path)!r}: {first}") from None
    except Exception as exc:  # pyarrow's own errors: a damaged parquet file
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise DataError(f"cannot read {str(path)!r}: {first}") from None


@dataclass
class _Where:
    source: str
    csv: bool

    def __call__(self, index: int, column: str) -> str:
        at = f"line {index + 2}" if self.csv else f"row {index + 1}"
        return f"{self.source} {at}, column {column!r}"


@dataclass
class _Numbers:
    values: np.ndarray  # float64, NaN where missing
    present: np.ndarray  # bool: a number (finite or not) was given
    numeric: bool  # at least one number in the column


def _numbers(column: pd.Series, where: _Where, name: str) -> _Numbers:
    """The numbers of one column: empty cells missing, text a DataError (unless the whole
    column is text: then `numeric` is False)."""
    if pd.api.types.is_bool_dtype(column):
        return _Numbers(np.full(len(column), np.nan), np.zeros(len(column), bool), False)
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(np.float64, na_value=np.nan)
        present = ~column.isna().to_numpy()
        return _Numbers(values, present, bool(present.any()))
    as_text = column.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v))
                         else str(v).strip())
    empty = (as_text == "").to_numpy()
    values = pd.to_numeric(as_text.where(~empty, None), errors="coerce").to_numpy(np.float64)
    is_nan_text = as_text.str.lower().isin(_NAN_TEXT).to_numpy()
    bad = np.isnan(values) & ~empty & ~is_nan_text
    present = ~empty
    numeric = bool((present & ~bad).any())
    if bad.any() and numeric:
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where(i, name)}: {as_text.iloc[i][:60]!r} is not a number")
    if not numeric:
        return _Numbers(values, np.zeros(len(column), bool), False)
    return _Numbers(values, present, True)


def _whole_column(column: pd.Series, where: _Where, name: str, *,
                  allow_missing: bool) -> np.ndarray:
    """A column of whole numbers (steps, tokens) as int64; -1 marks a missing cell."""
    out = np.full(len(column), -1, dtype=np.int64)
    if pd.api.types.is_integer_dtype(column) and not pd.api.types.is_unsigned_integer_dtype(
            column) and not column.isna().any():
        values: np.ndarray = column.to_numpy(np.int64)
        if (values >= 0).all():
            return values
    text = column.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v))
                      else str(v).strip())
    fast = text.str.fullmatch(r"\d{1,18}").to_numpy()
    out[fast] = text[fast].astype(np.int64).to_numpy()
    for i in np.flatnonzero(~fast):
        cell = column.iloc[i]
        if text.iloc[i] == "" and allow_missing:
            continue
        value = checks.whole(cell if not isinstance(cell, str) else text.iloc[i],
                             where(int(i), name), required=True)
        assert value is not None  # required: a missing cell raised
        out[i] = value
    return out


def _tokens(tokens: np.ndarray | None, keep: np.ndarray) -> pd.arrays.IntegerArray:
    """Tokens seen at the kept rows (missing where the table has no tokens)."""
    if tokens is None:
        return pd.array([None] * len(keep), dtype="Int64")
    out = pd.array(tokens[keep], dtype="Int64")
    out[tokens[keep] < 0] = pd.NA
    return out


def _sizes(path: str | Path | None) -> dict[str, tuple[int, int | None]]:
    """run -> (N parameters, D tokens or None) from a sizes table run,params[,tokens]."""
    if path is None:
        return {}
    df = read_table(path)
    name = Path(path).name
    for col in ("run", "params"):
        if col not in df.columns:
            raise DataError(f"sizes file {name} needs columns run, params (optional tokens); "
                            f"it has {[str(c)[:40] for c in df.columns][:20]}")
    out: dict[str, tuple[int, int | None]] = {}
    for i, row in enumerate(df.to_dict(orient="records")):
        at = f"sizes file {name} line {i + 2}"
        run = str(row["run"]).strip()
        if not run:
            raise DataError(f"{at}: column 'run' is empty")
        if run in out:
            raise DataError(f"{at}: run {run!r} is listed twice")
        params = checks.whole(row["params"], f"{at}: params", minimum=1, required=True)
        tokens = checks.whole(row.get("tokens"), f"{at}: tokens", minimum=1)
        out[run] = (int(params or 0), tokens)
    return out


@dataclass
class _Plan:
    runs: list[Any] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    skipped_columns: list[str] = field(default_factory=list)
    nonfinite: int = 0
    nonfinite_cells: list[tuple[str, str]] = field(default_factory=list)


def import_history(store: StoreLike, frame: pd.DataFrame, *, run_col: str = "run",
                   step_col: str = "step", tokens_col: str | None = None,
                   sweep: str | None = None, sizes: str | Path | None = None,
                   source: str = "history",
                   progress: Callable[[int, int], None] | None = None) -> HistoryReport:
    """Import a long table (see the module docstring); everything is checked before anything
    is written, in one transaction. `progress(rows_checked, rows)` is called as runs are
    checked."""
    from scaletrack.store.importers.apply import ImportPlan, PlannedRun
    from scaletrack.store.records import RunRecord, make_run_key

    where = _Where(source, csv=not source.lower().endswith((".parquet", ".jsonl", ".json")))
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    if step_col not in frame.columns and step_col == "step" and "_step" in frame.columns:
        step_col = "_step"
    for col, what in ((run_col, "--run-col"), (step_col, "--step-col"),
                      (tokens_col, "--tokens-col")):
        if col is not None and col not in frame.columns:
            raise DataError(f"{source}: no column {col!r} ({what}); columns: "
                            f"{[c[:40] for c in frame.columns][:20]}")
    if sweep is not None:
        checks.text(sweep, "--sweep")
    runs_text = frame[run_col].map(lambda v: "" if v is None or (isinstance(v, float)
                                                                  and np.isnan(v)) else str(v))
    empty = (runs_text.str.strip() == "").to_numpy()
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise DataError(f"{where(i, run_col)}: empty run name ({int(empty.sum())} such rows); "
                        "every row needs its run")
    steps = _whole_column(frame[step_col], where, step_col, allow_missing=False)
    tokens = (None if tokens_col is None
              else _whole_column(frame[tokens_col], where, tokens_col, allow_missing=True))
    plan = _Plan()
    columns: dict[str, _Numbers] = {}
    for col in frame.columns:
        if col in (run_col, step_col, tokens_col) or col.startswith("_"):
            continue
        parsed = _numbers(frame[col], where, col)
        if not parsed.numeric:
            plan.skipped_columns.append(col)
            continue
        checks.text(col, f"{source}: metric column name")
        columns[col] = parsed
        plan.metrics.append(col)
        bad = parsed.present & ~np.isfinite(parsed.values)
        plan.nonfinite += int(bad.sum())
        for i in np.flatnonzero(bad)[:SKIPPED_SHOWN - len(plan.nonfinite_cells)]:
            plan.nonfinite_cells.append((where(int(i), col).split(", column")[0]
                                         .removeprefix(f"{source} "), col))
    if not columns:
        raise DataError(f"{source}: no numeric metric columns besides {run_col!r} and "
                        f"{step_col!r}")
    known = _sizes(sizes)
    names = np.asarray(runs_text.str.strip().to_numpy(), dtype=object)
    order = np.argsort(names, kind="stable")
    bounds = np.flatnonzero(names[order][1:] != names[order][:-1]) + 1
    done = 0
    for rows in np.split(order, bounds):
        name = checks.text(names[rows[0]], f"{where(int(rows[0]), run_col)}: run name")
        parts = []
        for metric, parsed in columns.items():
            keep = rows[parsed.present[rows] & np.isfinite(parsed.values[rows])]
            if len(keep):
                parts.append(pd.DataFrame({
                    "name": metric, "step": steps[keep], "value": parsed.values[keep],
                    "tokens": _tokens(tokens, keep),
                }))
        metrics = (pd.concat(parts, ignore_index=True).drop_duplicates(["name", "step"],
                                                                         keep="last")
                   if parts else None)
        final = None
        if metrics is not None:
            for metric in FINAL_LOSS_METRICS:
                hits = metrics[metrics["name"] == metric]
                if not hits.empty:
                    final = float(hits.sort_values("step", kind="stable")["value"].iloc[-1])
                    break
        n, d = known.get(name, (None, None))
        key = make_run_key({"source": "history", "run": name, "sweep": sweep})
        plan.runs.append(PlannedRun(record=RunRecord(
            run_key=key, sweep=sweep, family="imported",
            config={"source": source, "run": name}, N=n, N_total=n, D=d,
            C=None if n is None or d is None else 6.0 * n * d, status="finished",
            final_loss=final, name=name,
        ), metrics=metrics))
        done += len(rows)
        if progress is not None:
            progress(done, len(frame))
    applied = store.apply_import(ImportPlan(
        sweeps={} if sweep is None else {sweep: {"imported_from": source}}, runs=plan.runs))
    return HistoryReport(
        rows=len(frame), runs=len(plan.runs), runs_new=applied.runs_new,
        metric_rows=applied.metric_rows, metrics=tuple(plan.metrics),
        runs_updated=applied.runs_updated, metric_rows_new=applied.metric_rows_new,
        nonfinite=plan.nonfinite, nonfinite_cells=tuple(plan.nonfinite_cells),
        skipped_columns=tuple(plan.skipped_columns),
    )
