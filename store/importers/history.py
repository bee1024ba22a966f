"""A long history table -> runs and metric rows: one row per (run, step), one column per metric.

This is what a W&B `run.history()` export (or most trackers' CSV export) looks like. Columns
starting with "_" (W&B's `_runtime`, `_timestamp`) are skipped, except `_step`, used as the
step when there is no `step` column. Empty cells (metrics logged at other steps) are skipped.
N and D are never guessed: they come from an optional sizes table (`run,params,tokens`), else
stay empty. Importing the same table again rewrites the same rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scaletrack.errors import DataError

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

FINAL_LOSS_METRICS = ("val/loss", "eval/loss", "loss", "train/loss")


@dataclass(frozen=True)
class HistoryReport:
    rows: int
    runs: int
    runs_new: int
    metric_rows: int
    metrics: tuple[str, ...]


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV, parquet or JSON-lines (.jsonl/.json) file as a DataFrame."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"history file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=suffix == ".jsonl")
        return pd.read_csv(path)
    except ImportError as exc:
        raise DataError(f"cannot read {path.name}: {exc} (install pyarrow for parquet)") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {str(path)!r}: {str(exc).splitlines()[0]}") from None


def _sizes(path: str | Path | None) -> dict[str, tuple[int | None, int | None]]:
    if path is None:
        return {}
    df = read_table(path)
    for col in ("run", "params"):
        if col not in df.columns:
            raise DataError(f"sizes file {Path(path).name} needs columns run, params "
                            f"(optional tokens); it has {list(df.columns)}")
    out: dict[str, tuple[int | None, int | None]] = {}
    for _, row in df.iterrows():
        tokens = row.get("tokens")
        out[str(row["run"])] = (
            int(row["params"]),
            None if tokens is None or pd.isna(tokens) else int(tokens),
        )
    return out


def import_history(store: StoreLike, frame: pd.DataFrame, *, run_col: str = "run",
                   step_col: str = "step", tokens_col: str | None = None,
                   sweep: str | None = None, sizes: str | Path | None = None,
                   source: str = "history") -> HistoryReport:
    """Import a long table (see the module docstring); everything is checked before writing."""
    from scaletrack.store.records import RunRecord, make_run_key

    if step_col not in frame.columns and step_col == "step" and "_step" in frame.columns:
        step_col = "_step"
    for col, what in ((run_col, "--run-col"), (step_col, "--step-col"),
                      (tokens_col, "--tokens-col")):
        if col is not None and col not in frame.columns:
            raise DataError(f"{source}: no column {col!r} ({what}); columns: "
                            f"{list(frame.columns)}")
    steps = pd.to_numeric(frame[step_col], errors="coerce")
    bad = steps.isna() | (steps < 0) | (steps != np.floor(steps))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{source}: row {row}: step {frame[step_col].iloc[row]!r} is not a "
                        "whole number >= 0")
    skip = {run_col, step_col, tokens_col}
    metrics = [c for c in frame.columns if c not in skip and not str(c).startswith("_")
               and pd.api.types.is_numeric_dtype(frame[c])]
    if not metrics:
        raise DataError(f"{source}: no numeric metric columns besides {run_col!r} and "
                        f"{step_col!r}")
    known = _sizes(sizes)
    if sweep is not None and sweep not in set(store.sweeps()["name"]):
        store.upsert_sweep(sweep, {"imported_from": source})
    long = frame.assign(**{step_col: steps.astype("int64")}).melt(
        id_vars=[c for c in (run_col, step_col, tokens_col) if c is not None],
        value_vars=metrics, var_name="name", value_name="value",
    ).dropna(subset=["value"])
    runs_new = 0
    parts = []
    for run_name, part in long.groupby(run_col, sort=True):
        name = str(run_name)
        key = make_run_key({"source": "history", "run": name, "sweep": sweep})
        n, d = known.get(name, (None, None))
        final = None
        for metric in FINAL_LOSS_METRICS:
            rows = part[part["name"] == metric]
            if not rows.empty:
                final = float(rows.sort_values(step_col)["value"].iloc[-1])
                break
        if store.get_run(key) is None:
            runs_new += 1
        store.ensure_run(RunRecord(
            run_key=key, sweep=sweep, family="imported",
            config={"source": source, "run": name}, N=n, N_total=n, D=d,
            C=None if n is None or d is None else 6.0 * n * d, status="finished",
            final_loss=final if final is None or math.isfinite(final) else None, name=name,
        ))
        parts.append(pd.DataFrame({
            "run_key": key, "name": part["name"].astype(str),
            "step": part[step_col].astype("int64"), "value": part["value"].astype(float),
            "tokens": (pd.to_numeric(part[tokens_col]).astype("Int64") if tokens_col
                       else pd.array([None] * len(part), dtype="Int64")),
        }))
    written = store.write_metrics(pd.concat(parts, ignore_index=True)) if parts else 0
    return HistoryReport(rows=len(frame), runs=len(parts), runs_new=runs_new,
                         metric_rows=written, metrics=tuple(metrics))
