"""Helpers shared by every CLI command: the --store option, tables, JSON and user errors.

User errors have one path: a command raises `ScaletrackError` (ConfigError for bad
arguments, DataError for missing data) and `ScaletrackGroup`, the class of the root command
group, prints it as one line `error: ...` on stderr and exits with status 1. Nothing here
imports pandas, torch or the store at module level, so `scaletrack --help` starts fast.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from scaletrack.errors import ConfigError, ScaletrackError
from scaletrack.number_format import MISSING, fmt_number
from scaletrack.safe_text import LINE_BREAKS, shown

if TYPE_CHECKING:
    import pandas as pd

    from scaletrack.store.protocol import StoreLike


class LiteralConsole(Console):
    """A Rich console that never sends a control character of its text to the terminal:
    every string it prints goes through `shown` (newlines and tabs kept), so text that
    reached a message without `literal` is still printed escaped. Rich's own styling
    (colour codes on a terminal) is added after this and is unaffected."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*(shown(o, keep=LINE_BREAKS) if isinstance(o, str) else o
                        for o in objects), **kwargs)


console = LiteralConsole()
err_console = LiteralConsole(stderr=True)

StoreOption = typer.Option(
    None,
    "--store",
    envvar="SCALETRACK_STORE",
    help="Store URL (sqlite:///path.db or postgresql+psycopg://...). "
    "Default: $SCALETRACK_STORE or sqlite:///scaletrack.db.",
    show_default=False,
)


def literal(text: object, *, keep: str = "") -> str:
    """User text (names, titles, messages) made safe to embed in Rich markup: printed as is,
    control and invisible formatting characters shown escaped (`shown`), never sent to the
    terminal. `keep=LINE_BREAKS` leaves newlines and tabs of multi-line text (a stderr)."""
    return escape(shown(text, keep=keep))


def echo(text: object, *, err: bool = False) -> None:
    """`typer.echo` for text that may hold user text: control characters shown escaped
    (newlines and tabs kept)."""
    typer.echo(shown(text, keep=LINE_BREAKS), err=err)


def say(text: object, *, keep: str = "") -> None:
    """Print one line of plain text (no Rich markup, no highlighting) with user text in it
    shown literally (see `literal`)."""
    console.print(shown(text, keep=keep), markup=False, highlight=False, soft_wrap=True)


def report_error(message: str) -> None:
    """Print a one-line error on stderr: user text is never read as Rich markup, and secrets in
    any URL in it are redacted."""
    from scaletrack.store.engine import redact_secrets

    err_console.print(f"[bold red]error:[/] {literal(redact_secrets(message), keep=LINE_BREAKS)}",
                      highlight=False, soft_wrap=True)


class ScaletrackGroup(TyperGroup):
    """The root command group: a ScaletrackError raised by any command (or sub-command)
    becomes a one-line `error: ...` and exit status 1, never a traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer's own (vendored) click Context
        try:
            return super().invoke(ctx)
        except ScaletrackError as exc:
            report_error(str(exc))
            raise typer.Exit(1) from None


def fail(message: str) -> NoReturn:
    """Stop the command with a one-line error (ScaletrackGroup prints it; exit status 1)."""
    raise ConfigError(message)


def open_store_or_exit(url: str | None, *, create: bool = True) -> StoreLike:
    """Open the store named by `url` (default $SCALETRACK_STORE, else sqlite:///scaletrack.db).
    Commands that only read pass `create=False`: a missing or empty file is then an error, not
    a new store. Errors reach the user as one line through ScaletrackGroup."""
    from scaletrack.store import Store

    return Store.open(url, create=create)


@contextmanager
def store_session(url: str | None, *, create: bool = True) -> Iterator[StoreLike]:
    """The store named by `url` (see `open_store_or_exit`), closed when the block ends."""
    store = open_store_or_exit(url, create=create)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def writing_session(url: str | None) -> Iterator[StoreLike]:
    """The store a writing command writes to (see `store_session`, which creates it when
    missing). When the command fails, a SQLite store file that this command created and that
    still holds no rows is removed again: a command that fails its checks leaves no store."""
    from pathlib import Path

    from scaletrack.store.engine import resolve_store_url, sqlite_path_or_none
    from scaletrack.store.guard import sqlite_file_holds_rows

    file = sqlite_path_or_none(resolve_store_url(url))
    new = file is not None and not Path(file).exists()
    with store_session(url) as store:
        try:
            yield store
        except BaseException:
            if not new:
                raise
            store.close()
            assert file is not None  # `new` implies a SQLite file
            if not sqlite_file_holds_rows(Path(file)):
                for suffix in ("", "-wal", "-shm", "-journal"):
                    Path(f"{file}{suffix}").unlink(missing_ok=True)
            raise


# The same column names wherever runs are listed (`runs`, `sweep status`).
RUN_COLUMNS = {"run_key": "run", "final_loss": "loss", "attempts": "tries"}
RUN_KEY_CHARS = 10  # `scaletrack show` takes any unique prefix


def runs_for_display(frame: pd.DataFrame) -> pd.DataFrame:
    """Runs with the CLI's column names: run (key prefix), loss (final, nats/token), tries."""
    shown = frame.rename(columns=RUN_COLUMNS)
    shown["run"] = shown["run"].astype(str).str[:RUN_KEY_CHARS]
    return shown


def cell_text(value: Any) -> str:
    """One table value as plain text (not Rich markup): missing values (None, NaN, pandas' NA
    and NaT) as "-", numbers by `fmt_number`, times to the second, anything else as text
    with control characters shown escaped."""
    import pandas as pd

    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)) or hasattr(value, "dtype"):
        try:
            return fmt_number(float(value))
        except (TypeError, ValueError):
            return shown(value)
    if hasattr(value, "strftime"):  # pandas Timestamp / datetime
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return shown(value)


def print_table(
    df: pd.DataFrame, title: str | None = None, columns: Iterable[str] | None = None
) -> None:
    """Print a DataFrame as a compact rich table (numbers by `fmt_number`: 5.33e8, 2.211)."""
    import pandas as pd
    from rich import box
    from rich.table import Table
    from rich.text import Text

    cols = list(columns) if columns is not None else list(df.columns)
    table = Table(title=None if title is None else literal(title), box=box.SIMPLE_HEAD,
                  padding=(0, 1, 0, 0), pad_edge=False, header_style="bold")
    for col in cols:
        numeric = col in df.columns and pd.api.types.is_numeric_dtype(df[col])
        table.add_column(literal(col), justify="right" if numeric else "left")
    for row in df[cols].itertuples(index=False):
        table.add_row(*(Text(cell_text(v)) for v in row))
    console.print(table)


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def to_json(obj: Any) -> str:
    """Serialise `obj` to JSON; NaN becomes null, timestamps become ISO strings."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(obj), default=_json_default, indent=2)


def print_json(obj: Any) -> None:
    """Print `obj` as JSON on stdout (no colour, so it pipes cleanly; control characters in
    strings are JSON escapes such as \\u001b)."""
    typer.echo(to_json(obj))
