"""CSV in: the one CSV reader every command uses, and importing external results as runs.

Import convention: each row becomes a run with family "imported", status "finished",
final_loss = loss and run_key = make_run_key(config), where config holds the source file
name and the row's values (so importing the same file twice adds nothing). Each task-metric
column becomes an evaluation (metric "value") of one external checkpoint per row (kind
"external", path "imported:<run_key>", linked to the run). N is in parameters, D in tokens,
C in FLOPs, loss in nats/token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scaletrack.errors import DataError, one_line

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

CORE_COLUMNS = ("N", "D", "C", "loss")


def read_csv_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV file as a DataFrame; a missing or unreadable file is a one-line DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CSV file {str(path)!r} does not exist")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read CSV {str(path)!r}: {one_line(exc, with_type=False)}") from exc


def task_columns(df: pd.DataFrame, names: Sequence[str] | None = None) -> list[str]:
    """The task-metric columns to import: `names` (checked to exist and be numeric), or by
    default every numeric column besides N, D, C and loss."""
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
            raise DataError(f"task column {name!r} is not numeric: row {row} has "
                            f"{df[name].loc[row]!r}")
    return list(names)


@dataclass(frozen=True)
class ImportCounts:
    """What `import_runs` did: rows read, runs new to the store, checkpoints and evals added."""

    rows: int
    new_runs: int
    checkpoints: int
    evals: int


def import_runs(
    store: StoreLike,
    df: pd.DataFrame,
    *,
    source: str,
    sweep: str | None = None,
    tasks: Sequence[str] = (),
) -> ImportCounts:
    """Record each row of `df` (columns N, D, C, loss, validated) as a finished imported run.

    `source` names the file (it is part of each run key); `tasks` are columns whose values
    become evals of one external checkpoint per row. Importing the same rows twice adds nothing.
    """
    from scaletrack.store.records import CheckpointRecord, RunRecord, make_run_key

    for col in ("N", "D"):
        if col not in df.columns:
            raise DataError(f"importing runs needs a column for {col}; columns: {list(df.columns)}")
        too_big = df[col].to_numpy(dtype=float) >= 2.0**63
        if too_big.any():
            row = df.index[int(np.argmax(too_big))]
            raise DataError(
                f"column {col!r} row {row} has {float(df[col].loc[row]):g}, more than the "
                "store's 64-bit integers hold"
            )
    if sweep is not None and sweep not in set(store.sweeps()["name"]):
        store.upsert_sweep(sweep, {"imported_from": source})
    rows = new_runs = checkpoints = evals = 0
    for idx, row in df.iterrows():
        config = {"family": "imported", "source": source, "sweep": sweep,
                  **{c: float(row[c]) for c in CORE_COLUMNS if c in df.columns}}
        for task in tasks:
            value = pd.to_numeric(row[task], errors="coerce")
            config[task] = None if pd.isna(value) else float(value)
        key = make_run_key(config)
        existed = store.get_run(key) is not None
        n, d, c = int(round(row["N"])), int(round(row["D"])), float(row["C"])
        store.ensure_run(RunRecord(
            run_key=key, sweep=sweep, family="imported", config=config, N=n, N_total=n, D=d,
            C=c, status="finished", final_loss=float(row["loss"]),
        ))
        rows += 1
        new_runs += not existed
        values = {t: config[t] for t in tasks if config[t] is not None and math.isfinite(config[t])}
        if not values:
            continue
        ckpt_id = store.add_checkpoint(CheckpointRecord(
            id=None, run_key=key, kind="external", N=n, tokens=d, flops=c, step=None,
            path=f"imported:{key}", sha256=None, loader=None,
            meta={"source": source, "row": idx.item() if hasattr(idx, "item") else idx},
        ))
        checkpoints += 1
        for task, value in values.items():
            store.add_eval(ckpt_id, task=task, metric="value", value=value)
            evals += 1
    return ImportCounts(rows, new_runs, checkpoints, evals)
