"""CSV in: importing external results as runs (the reader is `scaletrack.csv_table`).

Import convention: each row becomes a run with family "imported", status "finished",
final_loss = loss and run_key = make_run_key(config), where config holds the source file
name and the row's values (so importing the same file twice adds nothing). Each task-metric
column becomes an evaluation (metric "value") of one external checkpoint per row (kind
"external", path "imported:<run_key>", linked to the run). N is in parameters, D in tokens,
C in FLOPs, loss in nats/token.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scaletrack.errors import DataError

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

CORE_COLUMNS = ("N", "D", "C", "loss")


def _row(label: object) -> str:
    return f"row {label}"


def task_columns(df: pd.DataFrame, names: Sequence[str] | None = None, *,
                 where: Callable[[object], str] = _row) -> list[str]:
    """The task-metric columns to import: `names` (checked to exist and be numeric), or by
    default every numeric column besides N, D, C and loss. Errors name the row as
    `where(label)` ("row 3"; a file's reader passes "line 5 of 'runs.csv'")."""
    if names is None:
        return [c for c in df.columns
                if c not in CORE_COLUMNS and pd.api.types.is_numeric_dtype(df[c])]
    for name in names:
        if name not in df.columns:
            raise DataError(f"task column {name!r} is not in the CSV; columns: {list(df.columns)}")
        values = pd.to_numeric(df[name], errors="coerce")
        bad = values.isna() & df[name].notna()
        if bad.any():
            row = bad[bad].index[0]
            raise DataError(f"task column {name!r} is not numeric: {where(row)} has "
                            f"{df[name].loc[row]!r}")
    return list(names)


IMPORT_BATCH_ROWS = 10_000  # rows per store transaction (and per progress report)
SKIPPED_SHOWN = 3  # skipped task cells named in the report


@dataclass
class ImportCounts:
    """What `import_runs` did so far: rows kept, runs new to the store, checkpoints and evals
    added, task cells skipped (missing, NaN or infinite; the first few as (row, column)).
    Updated after every batch, so an interrupted import can say how many rows it kept."""

    rows: int = 0
    new_runs: int = 0
    checkpoints: int = 0
    evals: int = 0
    skipped: int = 0
    skipped_cells: list[tuple[object, str]] = field(default_factory=list)


def _label(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


def _check_counts(df: pd.DataFrame, where: Callable[[object], str]) -> None:
    """N (parameters) and D (tokens) are whole counts the store keeps as 64-bit integers: a
    value below 1 (N = 0.4 would be stored as 0) or beyond 2^63 is refused, never rounded."""
    for col in ("N", "D"):
        if col not in df.columns:
            raise DataError(f"importing runs needs a column for {col}; columns: {list(df.columns)}")
        values = df[col].to_numpy(dtype=float)
        for bad, why in ((values >= 2.0**63, "more than the store's 64-bit integers hold"),
                         (values < 1, f"{'parameter' if col == 'N' else 'token'} counts must "
                          "be at least 1")):
            if bad.any():
                row = df.index[int(np.argmax(bad))]
                raise DataError(f"column {col!r} {where(row)} has {float(df[col].loc[row]):g}: "
                                f"{why}")


def import_runs(
    store: StoreLike,
    df: pd.DataFrame,
    *,
    source: str,
    sweep: str | None = None,
    tasks: Sequence[str] = (),
    name_col: str | None = None,
    counts: ImportCounts | None = None,
    progress: Callable[[int], None] | None = None,
    where: Callable[[object], str] = _row,
) -> ImportCounts:
    """Record each row of `df` (columns N, D, C, loss, validated) as a finished imported run.

    `source` names the file (it is part of each run key); `tasks` are columns whose values
    become evals of one external checkpoint per row; `name_col` names each run. Rows are
    written in batches of IMPORT_BATCH_ROWS (one transaction each), `counts` updated and
    `progress(rows_done)` called after each. Importing the same rows twice adds nothing. A
    count out of range is refused before anything is written, its row named `where(label)`.
    """
    from scaletrack.store.records import CheckpointRecord, RunRecord, make_run_key

    _check_counts(df, where)
    counts = ImportCounts() if counts is None else counts
    if sweep is not None and sweep not in set(store.sweeps()["name"]):
        store.upsert_sweep(sweep, {"imported_from": source})
    core = [c for c in CORE_COLUMNS if c in df.columns]
    for start in range(0, len(df), IMPORT_BATCH_ROWS):
        chunk = df.iloc[start:start + IMPORT_BATCH_ROWS]
        records, task_values = [], []
        for idx, row in zip(chunk.index, chunk.to_dict(orient="records"), strict=True):
            config: dict[str, Any] = {"family": "imported", "source": source, "sweep": sweep,
                      **{c: float(row[c]) for c in core}}
            values: dict[str, float] = {}
            for task in tasks:
                value = pd.to_numeric(row[task], errors="coerce")
                config[task] = None if pd.isna(value) else float(value)
                if config[task] is not None and math.isfinite(config[task]):
                    values[task] = config[task]
                else:
                    counts.skipped += 1
                    if len(counts.skipped_cells) < SKIPPED_SHOWN:
                        counts.skipped_cells.append((_label(idx), task))
            key = make_run_key(config)
            n, d = int(round(row["N"])), int(round(row["D"]))
            name = None if name_col is None or pd.isna(row[name_col]) else str(row[name_col])
            records.append(RunRecord(
                run_key=key, sweep=sweep, family="imported", config=config, N=n, N_total=n,
                D=d, C=float(row["C"]), status="finished", final_loss=float(row["loss"]),
                name=name,
            ))
            task_values.append((idx, key, n, d, float(row["C"]), values))
        counts.new_runs += store.ensure_runs(records)
        for idx, key, n, d, c, values in task_values:
            if not values:
                continue
            ckpt_id = store.add_checkpoint(CheckpointRecord(
                id=None, run_key=key, kind="external", N=n, tokens=d, flops=c, step=None,
                path=f"imported:{key}", sha256=None, loader=None,
                meta={"source": source, "row": _label(idx)},
            ))
            counts.checkpoints += 1
            for task, value in values.items():
                store.add_eval(ckpt_id, task=task, metric="value", value=value)
                counts.evals += 1
        counts.rows += len(chunk)
        if progress is not None:
            progress(counts.rows)
    return counts
