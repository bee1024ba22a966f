"""`scaletrack export runs|metrics|evals|fits -o FILE [--format csv|parquet|jsonl]`: the format
from FILE's extension unless given; written atomically (see `store.exporters.write_frame`)."""

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
    fmt: Format | None = typer.Option(None, "--format", help="csv, parquet (pyarrow) or jsonl; "
                                      "default: from the extension of -o."),
    sweep: str | None = typer.Option(None, "--sweep", help="Only this sweep's runs."),
    tag: str | None = typer.Option(None, "--tag", help="Only runs carrying this tag."),
    store: str | None = StoreOption,
) -> None:
    """Export a table of the store (filtered to a sweep and/or a tag)."""
    from scaletrack.store.exporters import check_target, export_frame, infer_format, write_frame

    chosen = infer_format(output, None if fmt is None else fmt.value)  # before any work
    check_target(output)
    with store_session(store, create=False) as st:
        frame = export_frame(st, table.value, sweep=sweep, tag=tag)
    write_frame(frame, output, chosen)
    console.print(f"wrote {len(frame)} {table.value} rows to {output} ({chosen})", markup=False,
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("export")(export_command)
