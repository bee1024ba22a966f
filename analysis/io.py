"""Load and validate fit inputs: frames with columns N (params), D (tokens), C (FLOPs), loss (nats).

Every analysis entry point calls `validate_frame`, so bad input fails with a `DataError` that
names the column and the first offending row instead of producing a silent nonsense fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from scaletrack.errors import DataError

POSITIVE_COLUMNS = ("N", "D", "C")


def _as_float(df: pd.DataFrame, col: str) -> pd.Series:
    raw = df[col]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        row = bad[bad].index[0]
        raise DataError(f"column {col!r} is not numeric: row {row} has {raw.loc[row]!r}")
    return values.astype("float64")


def validate_frame(
    df: pd.DataFrame,
    required: Sequence[str] = ("N", "D", "loss"),
    *,
    add_compute: bool = True,
    min_rows: int = 1,
) -> pd.DataFrame:
    """Return a float64 copy of `df` with the `required` columns checked.

    Checks: columns present, numeric, finite (no NaN/inf), N/D/C > 0 and loss > 0.
    If `add_compute` and N and D are present but C is not, adds C = 6·N·D (FLOPs).
    Raises `DataError` naming the column and row.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
    out = df.copy()
    if add_compute and "C" not in out.columns and {"N", "D"} <= set(out.columns):
        out["C"] = 6.0 * _as_float(out, "N") * _as_float(out, "D")
    missing = [c for c in required if c not in out.columns]
    if missing:
        hint = " (or N and D, for C = 6·N·D)" if missing == ["C"] else ""
        raise DataError(
            f"missing column(s) {', '.join(map(repr, missing))}{hint}; "
            f"have {list(map(str, df.columns))}"
        )
    check = [c for c in ("N", "D", "C", "loss") if c in out.columns and c in (*required, "C")]
    for col in check:
        values = _as_float(out, col)
        nonfinite = ~np.isfinite(values.to_numpy())
        if nonfinite.any():
            row = values.index[int(np.argmax(nonfinite))]
            raise DataError(f"column {col!r} has a missing or non-finite value at row {row}")
        nonpositive = values.to_numpy() <= 0
        if nonpositive.any():
            row = values.index[int(np.argmax(nonpositive))]
            raise DataError(f"column {col!r} must be > 0; row {row} has {float(values.loc[row]):g}")
        out[col] = values
    if len(out) < min_rows:
        raise DataError(f"need at least {min_rows} rows to fit, got {len(out)}")
    return out


def read_fit_csv(
    path: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    required: Sequence[str] = ("N", "D", "loss"),
) -> pd.DataFrame:
    """Read a CSV of runs and rename its columns to N, D, C, loss.

    `columns` maps our names to the file's, e.g. {"N": "Model Size", "loss": "final_loss"};
    a column named there, or a `required` one, must exist. C defaults to 6·N·D (FLOPs) when
    the file has no compute column. N and D, when present, are validated like `required`.
    """
    from scaletrack.csv_table import read_csv_table

    df = read_csv_table(path)
    mapping = {ours: theirs for ours, theirs in (columns or {}).items() if theirs}
    rename = {}
    for ours in dict.fromkeys([*mapping, *required]):
        theirs = mapping.get(ours, ours)
        if theirs in df.columns:
            rename[theirs] = ours
        elif theirs != ours or (ours in required and ours != "C"):
            raise DataError(
                f"CSV {str(path)!r} has no column {theirs!r} (for {ours}); "
                f"columns: {list(df.columns)}"
            )
    df = df.rename(columns=rename)
    present = [c for c in ("N", "D") if c in df.columns and c not in required]
    return validate_frame(df, [*required, *present])


def load_epoch_chinchilla(path: str | Path, *, drop_highest_loss: int = 0) -> pd.DataFrame:
    """The Epoch AI replication data (points read off Hoffmann et al. Fig. 4) as N, D, C, loss.

    N = `Model Size`, C = `Training FLOP`, D = C/(6N) tokens. Every row is kept by default,
    as `scaletrack fit --csv` keeps every row; Besiroglu et al. 2024 remove the 5 rows with
    the largest loss (245 -> 240 rows): `drop_highest_loss=5`, on the CLI
    `--drop-highest-loss 5`.
    """
    raw = pd.read_csv(path)
    df = pd.DataFrame(
        {
            "N": raw["Model Size"].astype(float),
            "C": raw["Training FLOP"].astype(float),
            "loss": raw["loss"].astype(float),
        }
    )
    df["D"] = df["C"] / (6.0 * df["N"])
    if drop_highest_loss:
        df = df.drop(df["loss"].nlargest(drop_highest_loss).index)
    return validate_frame(df[["N", "D", "C", "loss"]].reset_index(drop=True))
