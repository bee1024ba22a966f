"""The `scaletrack` command: one typer app; each area registers its own commands.

Command modules import only typer and rich at module level (the library is imported inside
each command), so `scaletrack --help` and `scaletrack version` load neither torch nor pandas.
"""

from __future__ import annotations

import typer

from scaletrack.cli import (
    checkpoints,
    emergence,
    export,
    fit,
    ideas,
    imports,
    plan,
    plot,
    runs,
    sweep,
    track,
    ui,
)
from scaletrack.cli.common import ScaletrackGroup

app = typer.Typer(
    name="scaletrack",
    cls=ScaletrackGroup,
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
    runs, sweep, fit, plan, plot, emergence, ideas, checkpoints, track, imports, export, ui
):
    _module.register(app)


def main() -> None:
    """Console-script entry point (user errors are reported by ScaletrackGroup)."""
    app()


if __name__ == "__main__":
    main()
