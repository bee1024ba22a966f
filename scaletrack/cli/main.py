"""The `scaletrack` command: one typer app; each area registers its own commands."""

from __future__ import annotations

import typer

from scaletrack.cli import (
    checkpoints,
    emergence,
    export,
    fit,
    ideas,
    imports,
    runs,
    slurm,
    sweep,
    track,
    ui,
)
from scaletrack.cli.common import report_error
from scaletrack.errors import ScaletrackError

app = typer.Typer(
    name="scaletrack",
    help="Train scaling-law grids, log every loss, fit the laws, track emergence and ideas.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)



@app.command()
def version() -> None:
    """Print the installed scaletrack version."""
    from scaletrack import __version__

    typer.echo(__version__)


for _module in (
    runs, sweep, slurm, fit, emergence, ideas, checkpoints, track, imports, export, ui
):
    _module.register(app)


def main() -> None:
    """Console-script entry point: user errors become one line, not a traceback."""
    try:
        app()
    except ScaletrackError as exc:
        # Raised outside click's own error handling, so exit here rather than via typer.Exit.
        report_error(str(exc))
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
