"""The one CSV reader every part uses (fit points, imports, emergence tables): a missing or
unreadable file, a folder, or a row with more fields than the header is a one-line
DataError, never a traceback or a silently shifted table."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from scaletrack.errors import DataError, one_line


def read_csv_table(path: str | Path, *, text: bool = False) -> pd.DataFrame:
    """Read a CSV file as a DataFrame (index: 0, 1, ... over the data rows); with `text`,
    every cell as the text written (empty cells "", for readers that check cells themselves).

    A missing file, a folder or other non-regular file, an unreadable file and a data row
    with more fields than the header (pandas would take the first column as the index and
    shift every other) are each a one-line DataError naming the file (and the line)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"CSV path {str(path)!r} is a folder, not a file")
    if not path.is_file():
        if path.exists():  # a FIFO or device: never opened (reading one would block)
            raise DataError(f"CSV path {str(path)!r} is not a regular file")
        raise DataError(f"CSV file {str(path)!r} does not exist")
    options: dict[str, object] = {"dtype": str, "keep_default_na": False} if text else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, index_col=False, **options)
    except pd.errors.ParserWarning:
        raise DataError(_too_many_fields(path)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError,
            OSError) as exc:
        raise DataError(f"cannot read CSV {str(path)!r}: {one_line(exc, with_type=False)}") from exc


def _too_many_fields(path: Path) -> str:
    """The error line for a file whose data rows have more fields than its header."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        for row in reader:
            if len(row) > len(header):
                return (f"CSV {str(path)!r} line {reader.line_num} has {len(row)} fields but "
                        f"the header has {len(header)}; add the missing column name to the "
                        "header or remove the extra field")
    return f"CSV {str(path)!r} has data rows with more fields than its header"


def csv_line_numbers(path: str | Path, positions: Sequence[int]) -> list[int]:
    """The file line (1-based, header = line 1) where each data row at `positions` (0-based,
    as `read_csv_table` numbers them) starts; blank lines, which the reader skips, and quoted
    fields spanning lines are counted. A position past the end maps to position + 2."""
    wanted = sorted(set(positions))
    found: dict[int, int] = {}
    if wanted:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            row, start = 0, reader.line_num + 1
            for record in reader:
                if any(field.strip() for field in record) or len(record) > 1:
                    if row == wanted[len(found)]:
                        found[row] = start
                        if len(found) == len(wanted):
                            break
                    row += 1
                start = reader.line_num + 1
    return [found.get(p, p + 2) for p in positions]


def line_label(path: str | Path) -> Callable[[object], str]:
    """A function naming the data row at a position (0-based, as `read_csv_table` numbers
    them) by its place in the file: 3 -> "line 5 of 'runs.csv'", for error messages."""

    def where(position: object) -> str:
        return f"line {csv_line_numbers(path, [int(str(position))])[0]} of {str(path)!r}"

    return where


def plain_value(value: object) -> str:
    """A cell's value as a user reads it: numbers plain (`nan`, `inf`, `1e+300`), text quoted."""
    if isinstance(value, str):
        return repr(value)
    try:
        return f"{float(value):g}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return repr(str(value))
