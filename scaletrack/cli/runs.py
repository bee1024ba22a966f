"""`scaletrack runs`: list the runs in a store as a table or JSON."""

from __future__ import annotations

import typer

from scaletrack.cli.common import (
    StoreOption,
    cell_text,
    echo,
    print_json,
    print_table,
    runs_for_display,
    store_session,
)
from scaletrack.errors import ConfigError

TABLE_COLUMNS = ("run", "sweep", "family", "status", "N", "D", "C", "seed", "lr", "loss", "tries")
PAGE_ROWS = 50  # rows of the default table; a store may hold millions of runs


def page_footer(shown: int, offset: int, total: int, what: str) -> str | None:
    """"runs 1-50 of 1,000,000 (...)" when the page is not everything, else None."""
    if shown >= total and offset == 0:
        return None
    first, last = (offset + 1, offset + shown) if shown else (0, 0)
    nxt = f"--offset {offset + shown} for the next page, " if offset + shown < total else ""
    return f"{what} {first:,}-{last:,} of {total:,} ({nxt}--limit 0 for all)"


def runs_command(
    store: str | None = StoreOption,
    sweep: str | None = typer.Option(None, "--sweep", help="Only runs of this sweep."),
    status: str | None = typer.Option(
        None, "--status", help="Only runs with this status (pending, running, finished, "
        "failed, diverged)."
    ),
    tag: str | None = typer.Option(None, "--tag", help="Only runs carrying this tag."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON records instead of a table."),
    limit: int | None = typer.Option(
        None, "--limit", min=0, help=f"Rows to show (table default {PAGE_ROWS}, JSON and --keys "
        "default all; 0 = all)."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many runs first."),
    keys: bool = typer.Option(False, "--keys", help="Print only the run keys, one per line."),
) -> None:
    """List runs: key, sweep, family, status, N (params), D (tokens), C (FLOPs), final loss."""
    from scaletrack.store import RUN_STATUSES

    if status is not None and status not in RUN_STATUSES:
        raise ConfigError(f"unknown status {status!r} (one of {', '.join(RUN_STATUSES)})")
    if limit is None:
        limit = 0 if as_json or keys else PAGE_ROWS
    with store_session(store, create=False) as st:
        frame = st.runs(sweep=sweep, status=status, tag=tag, limit=limit or None, offset=offset)
        total = (len(frame) + offset if limit == 0
                 else st.count_runs(sweep=sweep, status=status, tag=tag))
    if keys:
        for key in frame["run_key"] if not frame.empty else ():
            echo(key)
        return
    if as_json:
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        print_json(records)
        return
    if frame.empty:
        echo("no runs")
        return
    title = "runs"
    shown = runs_for_display(frame)
    # A column with one value everywhere goes into the title, to keep 80-column terminals tidy.
    columns = list(TABLE_COLUMNS)
    if shown["name"].notna().any():  # imported runs carry a model name
        columns.insert(1, "name")
    for col in ("sweep", "family", "status"):
        if shown[col].nunique(dropna=False) == 1:
            columns.remove(col)
            title += f" · {col} {cell_text(shown[col].iloc[0])}"
    print_table(shown, title=title, columns=columns)
    footer = page_footer(len(frame), offset, total, "runs")
    if footer:
        echo(footer)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("runs")(runs_command)
