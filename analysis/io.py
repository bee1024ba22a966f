"""Load and validate fit inputs: frames with columns N (params), D (tokens), C (FLOPs), loss (nats).

Every analysis entry point calls `validate_frame`, so bad input fails with a `DataError` that
names the column and the first offending row instead of producing a silent nonsense fit.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from scaletrack.errors import DataError

POSITIVE_COLUMNS = ("N", "D", "C")


RowLabel = Callable[[Hashable], str]  # a row's index label -> "row 3" (frames), "line 5" (files)


def _row(label: Hashable) -> str:
    return f"row {label}"


def _numeric(df: pd.DataFrame, col: str, where: RowLabel) -> pd.Series:
    """Column `col` as float64 (missing cells NaN); text is a one-line DataError."""
    from scaletrack.csv_table import plain_value

    raw = df[col]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        row = bad[bad].index[0]
        raise DataError(f"column {col!r} is not numeric: {where(row)} has "
                        f"{plain_value(raw.loc[row])}")
    return values.astype("float64")


def check_column(
    df: pd.DataFrame,
    col: str,
    *,
    positive: bool = False,
    limit: float | None = None,
    where: RowLabel = _row,
) -> pd.Series:
    """Column `col` of `df` as float64, every value a finite number (> 0 if `positive`, at
    most `limit` in size if given); else a one-line DataError naming the column, the first
    offending row (`where(label)`: "row 3", or "line 5" of a file) and its value."""
    from scaletrack.csv_table import plain_value

    raw = df[col]
    values = _numeric(df, col, where)
    array = values.to_numpy()
    checks = [(~np.isfinite(array), "has a missing or non-finite value at {at} ({value})")]
    if limit is not None:
        with np.errstate(invalid="ignore"):
            checks.append((np.abs(array) > limit,
                           f"has {{value}} at {{at}}: beyond ±{limit:g}, not a plausible value"))
    if positive:
        with np.errstate(invalid="ignore"):
            checks.append((array <= 0, "must be > 0; {at} has {value}"))
    for mask, text in checks:
        if mask.any():
            row = values.index[int(np.argmax(mask))]
            raise DataError(f"column {col!r} " + text.format(at=where(row),
                                                             value=plain_value(raw.loc[row])))
    return values


def validate_frame(
    df: pd.DataFrame,
    required: Sequence[str] = ("N", "D", "loss"),
    *,
    add_compute: bool = True,
    min_rows: int = 1,
    where: RowLabel = _row,
) -> pd.DataFrame:
    """Return a float64 copy of `df` with the `required` columns checked.

    Checks: columns present, numeric, finite (no NaN/inf), N/D/C > 0 and loss > 0.
    If `add_compute` and N and D are present but C is not, adds C = 6·N·D (FLOPs).
    Raises `DataError` naming the column and row (`where(label)`, default "row <label>").
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
    out = df.copy()
    if add_compute and "C" not in out.columns and {"N", "D"} <= set(out.columns):
        out["C"] = 6.0 * _numeric(out, "N", where) * _numeric(out, "D", where)
    missing = [c for c in required if c not in out.columns]
    if missing:
        hint = " (or N and D, for C = 6·N·D)" if missing == ["C"] else ""
        raise DataError(
            f"missing column(s) {', '.join(map(repr, missing))}{hint}; "
            f"have {list(map(str, df.columns))}"
        )
    check = [c for c in ("N", "D", "C", "loss") if c in out.columns and c in (*required, "C")]
    for col in check:
        out[col] = check_column(out, col, positive=True, where=where)
    if len(out) < min_rows:
        raise DataError(f"need at least {min_rows} rows to fit, got {len(out)}")
    return out


TOKENS_FROM_COMPUTE = "D = C/(6·N) tokens"
SKIPPED_LINES_SHOWN = 3  # lines of skipped rows named in a summary


def tokens_from_compute(df: pd.DataFrame) -> pd.Series:
    """Training tokens D = C/(6·N) of a frame with parameters N and compute C (FLOPs), the
    inverse of C = 6·N·D: how published tables that give N and C only are read."""
    return pd.to_numeric(df["C"], errors="coerce") / (6.0 * pd.to_numeric(df["N"],
                                                                          errors="coerce"))


def read_fit_csv(
    path: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    required: Sequence[str] = ("N", "D", "loss"),
    skip_missing: bool = False,
) -> pd.DataFrame:
    """Read a CSV of runs and rename its columns to N, D, C, loss.

    `columns` maps our names to the file's, e.g. {"N": "Model Size", "loss": "final_loss"};
    a column named there, or a `required` one, must exist. C defaults to 6·N·D (FLOPs) when
    the file has no compute column; D defaults to C/(6·N) tokens when the file has N and C
    but no D column (`attrs["derived"]` then says so). N and D, when present, are validated
    like `required`. With `skip_missing`, rows with a missing, NaN or infinite value in those
    columns are left out (`attrs["skipped_lines"]`: their file lines); text or a value <= 0
    is still an error. Errors name the file and its line; the index keeps each row's place
    in the file (0 = first data row), for `scaletrack.csv_table.csv_line_numbers`.
    """
    from scaletrack.csv_table import csv_line_numbers, line_label, read_csv_table

    df = read_csv_table(path)
    mapping = {ours: theirs for ours, theirs in (columns or {}).items() if theirs}
    theirs_of = {ours: mapping.get(ours, ours) for ours in ("N", "D", "C", "loss")}
    derive_d = (theirs_of["D"] == "D" and "D" not in df.columns
                and theirs_of["N"] in df.columns and theirs_of["C"] in df.columns)
    rename = {}
    for ours in dict.fromkeys([*mapping, *required]):
        theirs = mapping.get(ours, ours)
        if theirs in df.columns:
            rename[theirs] = ours
        elif ours == "D" and derive_d:
            continue
        elif theirs != ours or (ours in required and ours != "C"):
            raise DataError(
                f"CSV {str(path)!r} has no column {theirs!r} (for {ours}); "
                f"columns: {list(df.columns)}"
            )
    if df.empty:
        raise DataError(f"CSV {str(path)!r} has a header but no data rows")
    df = df.rename(columns=rename)

    where = line_label(path)
    derived = None
    if derive_d:
        for col in ("N", "C"):
            _numeric(df, col, where)
        df["D"] = tokens_from_compute(df)
        derived = TOKENS_FROM_COMPUTE
    present = [c for c in ("N", "D") if c in df.columns and c not in required]
    needed = [*required, *present]
    skipped: list[int] = []
    if skip_missing:
        core = [c for c in ("N", "D", "C", "loss") if c in df.columns and c in (*needed, "C")
                and not (c == "D" and derived)]  # a derived D is finite where N, C are
        numbers = np.column_stack([_numeric(df, c, where).to_numpy() for c in core])
        bad = ~np.isfinite(numbers).all(axis=1)
        if bad.all():
            raise DataError(f"CSV {str(path)!r}: no row has finite {', '.join(core)}; nothing "
                            "to read")
        skipped = [int(i) for i in df.index[bad]]
        df = df.loc[~bad]
    out = validate_frame(df, needed, where=where)
    out.attrs["derived"] = derived
    out.attrs["skipped_rows"] = len(skipped)
    out.attrs["skipped_lines"] = csv_line_numbers(path, skipped[:SKIPPED_LINES_SHOWN])
    return out


def load_epoch_chinchilla(path: str | Path, *, drop_highest_loss: int = 0) -> pd.DataFrame:
    """The Epoch AI replication data (points read off Hoffmann et al. Fig. 4) as N, D, C, loss.

    N = `Model Size`, C = `Training FLOP`, D = C/(6N) tokens. Every row is kept by default,
    as `scaletrack fit --csv` keeps every row; Besiroglu et al. 2024 remove the 5 rows with
    the largest loss (245 -> 240 rows): `drop_highest_loss=5`, on the CLI
    `--drop-highest-loss 5`.
    """
    from scaletrack.csv_table import read_csv_table

    raw = read_csv_table(path)
    df = pd.DataFrame(
        {
            "N": raw["Model Size"].astype(float),
            "C": raw["Training FLOP"].astype(float),
            "loss": raw["loss"].astype(float),
        }
    )
    df["D"] = tokens_from_compute(df)
    if drop_highest_loss:
        df = df.drop(df["loss"].nlargest(drop_highest_loss).index)
    return validate_frame(df[["N", "D", "C", "loss"]].reset_index(drop=True))
