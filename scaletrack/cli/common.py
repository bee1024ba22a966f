"""Helpers shared by every CLI command: the --store option, tables, JSON and errors."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import pandas as pd
import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True)

StoreOption = typer.Option(
    None,
    "--store",
    envvar="SCALETRACK_STORE",
    help="Store URL (sqlite:///path.db or postgresql+psycopg://...). "
    "Default: $SCALETRACK_STORE or sqlite:///scaletrack.db.",
    show_default=False,
)


def literal(text: object) -> str:
    """User text (names, titles, messages) made safe to embed in Rich markup: printed as is."""
    return escape(str(text))


def report_error(message: str) -> None:
    """Print a one-line error on stderr (secrets in any URL in it redacted)."""
    from scaletrack.store.engine import redact_secrets

    err_console.print(f"[bold red]error:[/] {escape(redact_secrets(message))}", highlight=False,
                      soft_wrap=True)


def fail(message: str) -> NoReturn:
    """Print a one-line error and exit with status 1 (inside a command)."""
    report_error(message)
    raise typer.Exit(1)


def open_store_or_exit(url: str | None, *, create: bool = True):  # -> store.Store
    """Open the store named by `url`, or exit with a one-line error naming it. Commands that
    only read pass `create=False`: a missing or empty file is then an error, not a new store."""
    from scaletrack.errors import ScaletrackError
    from scaletrack.store import Store

    try:
        return Store.open(url, create=create)
    except ScaletrackError as exc:
        fail(str(exc))


@contextmanager
def store_session(url: str | None, *, create: bool = True) -> Iterator[Any]:
    """Open the store for a command; a ScaletrackError inside becomes a one-line error."""
    from scaletrack.errors import ScaletrackError

    store = open_store_or_exit(url, create=create)
    try:
        yield store
    except ScaletrackError as exc:
        fail(str(exc))
    finally:
        store.close()


def _compact(value: float) -> str:
    """A number in at most ~6 characters: 0, 12.8k, 1.7M, 3.2e12, 0.003, 2.211."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    magnitude = abs(value)
    if magnitude >= 1e9 or magnitude < 1e-3:
        mantissa, exponent = f"{value:.2e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"
    if float(value).is_integer():
        for limit, suffix in ((1e6, "M"), (1e3, "k")):
            if magnitude >= 10 * limit:
                return f"{value / limit:.3g}{suffix}"
        return f"{int(value)}"
    return f"{value:.4g}"


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)) or hasattr(value, "dtype"):
        try:
            return _compact(float(value))
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return escape(str(value))


def print_table(
    df: pd.DataFrame, title: str | None = None, columns: Iterable[str] | None = None
) -> None:
    """Print a DataFrame as a compact rich table (large counts as 12.8k, 1.7M; floats 4 digits)."""
    cols = list(columns) if columns is not None else list(df.columns)
    table = Table(title=None if title is None else escape(title), box=box.SIMPLE_HEAD,
                  padding=(0, 1, 0, 0), pad_edge=False, header_style="bold")
    for col in cols:
        numeric = col in df.columns and pd.api.types.is_numeric_dtype(df[col])
        table.add_column(escape(str(col)), justify="right" if numeric else "left")
    for row in df[cols].itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


def _json_default(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
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
    """Print `obj` as JSON on stdout (no colour, so it pipes cleanly)."""
    typer.echo(to_json(obj))
