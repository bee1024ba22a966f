"""The one CSV reader every part uses (fit points, imports, emergence tables): a missing or
unreadable file is a one-line DataError, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scaletrack.errors import DataError, one_line


def read_csv_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV file as a DataFrame; a missing or unreadable file is a one-line DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CSV file {str(path)!r} does not exist")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read CSV {str(path)!r}: {one_line(exc, with_type=False)}") from exc
