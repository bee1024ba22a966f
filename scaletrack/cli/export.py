"""`scaletrack export runs|metrics|evals|fits --format csv|parquet|jsonl -o FILE`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from scaletrack.cli.common import StoreOption, console, store_session


class Table(StrEnum):
    runs = "runs"
    metrics = "metrics"
    evals = "evals"
    fits = "fits"


class Format(StrEnum):
    csv = "csv"
    parquet = "parquet"
    jsonl = "jsonl"


def export_command(
    table: Table = typer.Argument(..., help="What to export."),
    output: Path = typer.Option(..., "-o", "--output", help="File to write."),
    fmt: Format = typer.Option(Format.csv, "--format", help="csv, parquet (pyarrow) or jsonl."),
    sweep: str | None = typer.Option(None, "--sweep", help="Only this sweep's runs."),
    tag: str | None = typer.Option(None, "--tag", help="Only runs carrying this tag."),
    store: str | None = StoreOption,
) -> None:
    """Export a table of the store (filtered to a sweep and/or a tag)."""
    from scaletrack.store.exporters import export_frame, write_frame

    with store_session(store) as st:
        frame = export_frame(st, table.value, sweep=sweep, tag=tag)
        write_frame(frame, output, fmt.value)
    console.print(f"wrote {len(frame)} {table.value} rows to {output}", markup=False,
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("export")(export_command)
