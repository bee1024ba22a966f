"""`scaletrack ui` (the read-only dashboard) and `scaletrack report` (one offline HTML file)."""

from __future__ import annotations

from pathlib import Path

import typer

from scaletrack.cli.common import StoreOption, console, fail
from scaletrack.errors import ScaletrackError


def ui_command(
    store: str | None = StoreOption,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (default: loopback "
                             "only; anything else exposes the store to the network)."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="TCP port (0: any free)."),
) -> None:
    """Browse runs, curves, scaling fits, emergence and ideas in a browser (read-only)."""
    from scaletrack.ui.server import serve

    def ready(url: str) -> None:
        console.print(f"scaletrack ui: serving {url} (read-only; Ctrl-C stops)",
                      markup=False, highlight=False)

    try:
        serve(store, host=host, port=port, on_ready=ready)
    except ScaletrackError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}")


def report_command(
    output: Path = typer.Option(..., "-o", "--output", help="HTML file to write."),
    sweep: str | None = typer.Option(None, "--sweep", help="Only this sweep's runs."),
    points: int = typer.Option(600, "--points", min=3, max=20_000,
                               help="Points kept per curve (MinMax-LTTB downsampling)."),
    store: str | None = StoreOption,
) -> None:
    """Write the dashboard's views with their data as one self-contained offline HTML file."""
    from scaletrack.store import open_read_only
    from scaletrack.ui.report import write_report

    try:
        with open_read_only(store) as st:
            path = write_report(st, output, sweep, points=points)
    except ScaletrackError as exc:
        fail(str(exc))
    size = path.stat().st_size / 1e6
    console.print(f"wrote {path} ({size:.1f} MB)", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add `ui` and `report` to the CLI."""
    app.command("ui")(ui_command)
    app.command("report")(report_command)
