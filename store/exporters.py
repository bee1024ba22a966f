"""Exports: runs, metrics, evals and fits as CSV, parquet (pyarrow) or JSON lines.

`export_frame` returns the table (the Store's DataFrames, filtered to a sweep and/or a tag);
`write_frame` writes it. Nested values (a run's config, a fit's payload) are JSON text in
CSV and parquet, and tags a list (joined with ";" in CSV); JSON lines keep them nested.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from scaletrack.errors import ConfigError, DataError

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

TABLES = ("runs", "metrics", "evals", "fits")
FORMATS = ("csv", "parquet", "jsonl")
_NESTED = ("config", "payload", "meta", "spec")


def export_frame(store: StoreLike, table: str, *, sweep: str | None = None,
                 tag: str | None = None) -> pd.DataFrame:
    """The `table` (runs | metrics | evals | fits) of the runs of `sweep` carrying `tag`."""
    if table not in TABLES:
        raise ConfigError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
    filtered = sweep is not None or tag is not None
    runs = store.runs(sweep=sweep, tag=tag)
    if table == "runs":
        return runs
    keys = list(runs["run_key"])
    if table == "metrics":
        return store.metrics(run_keys=keys) if filtered else store.metrics()
    if table == "evals":
        evals = store.evals()
        return evals[evals["run_key"].isin(keys)].reset_index(drop=True) if filtered else evals
    fits = store.fits()
    if sweep is not None:
        fits = fits[fits["sweep"] == sweep].reset_index(drop=True)
    return fits


def _flat(frame: pd.DataFrame, list_sep: str | None) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if col in _NESTED:
            out[col] = out[col].map(lambda v: None if v is None else json.dumps(v,
                                                                               sort_keys=True))
        elif col == "tags" and list_sep is not None:
            out[col] = out[col].map(lambda v: list_sep.join(v) if v is not None else "")
        elif col == "tags":
            out[col] = out[col].map(lambda v: list(v) if v is not None else [])
    return out


def write_frame(frame: pd.DataFrame, path: str | Path, fmt: str) -> Path:
    """Write `frame` as csv, parquet or jsonl; returns the path."""
    path = Path(path)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if path.parent and not path.parent.exists():
        raise DataError(f"folder {str(path.parent)!r} does not exist")
    if fmt == "csv":
        _flat(frame, ";").to_csv(path, index=False)
    elif fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError("parquet needs pyarrow: pip install 'scaletrack[parquet]'") \
                from None
        _flat(frame, None).to_parquet(path, index=False)
    else:  # json.dumps writes the shortest repr that reads back to the same float64
        with path.open("w", encoding="utf-8") as fh:
            for record in frame.to_dict(orient="records"):
                fh.write(json.dumps({k: _plain(v) for k, v in record.items()},
                                    default=str) + "\n")
    return path


def _plain(value: Any) -> Any:
    """A JSON-ready value: NaN/NA -> null, timestamps -> ISO text, numpy -> Python."""
    if isinstance(value, (list, dict)):
        return value
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
        return None if isinstance(value, float) and value != value else value
    return value
