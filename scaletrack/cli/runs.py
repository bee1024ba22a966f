"""`scaletrack runs`: list the runs in a store as a table or JSON."""

from __future__ import annotations

import typer

from scaletrack.cli.common import (
    StoreOption,
    print_json,
    print_table,
    runs_for_display,
    store_session,
)

TABLE_COLUMNS = ("run", "sweep", "family", "status", "N", "D", "C", "seed", "lr", "loss", "tries")


def runs_command(
    store: str | None = StoreOption,
    sweep: str | None = typer.Option(None, "--sweep", help="Only runs of this sweep."),
    status: str | None = typer.Option(
        None, "--status", help="Only runs with this status (pending, running, finished, "
        "failed, diverged)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON records instead of a table."),
    keys: bool = typer.Option(False, "--keys", help="Print only the run keys, one per line."),
) -> None:
    """List runs: key, sweep, family, status, N (params), D (tokens), C (FLOPs), final loss."""
    from scaletrack.errors import ConfigError
    from scaletrack.store import RUN_STATUSES

    if status is not None and status not in RUN_STATUSES:
        raise ConfigError(f"unknown status {status!r} (one of {', '.join(RUN_STATUSES)})")
    with store_session(store) as st:
        frame = st.runs(sweep=sweep, status=status)
    if keys:
        for key in frame["run_key"] if not frame.empty else ():
            typer.echo(key)
        return
    if as_json:
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        print_json(records)
        return
    if frame.empty:
        typer.echo("no runs")
        return
    title = "runs"
    shown = runs_for_display(frame)
    # A column with one value everywhere goes into the title, to keep 80-column terminals tidy.
    columns = list(TABLE_COLUMNS)
    for col in ("sweep", "family", "status"):
        if shown[col].nunique(dropna=False) == 1:
            columns.remove(col)
            title += f" · {col} {shown[col].iloc[0]}"
    print_table(shown, title=title, columns=columns)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("runs")(runs_command)
