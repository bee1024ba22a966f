"""The `scaletrack` command: one typer app; each area registers its own commands.

Command modules import only typer and rich at module level (the library is imported inside
each command), so `scaletrack --help` and `scaletrack version` load neither torch nor pandas.
"""

from __future__ import annotations

from typing import Any

import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError

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
from scaletrack.cli.common import ScaletrackGroup, report_error

USAGE_EXIT_CODE = 1  # a usage error is a user error: one line, exit status 1 like the others


def usage_error_line(exc: UsageError) -> str:
    """A command-line usage error (missing option, bad value, unknown command) as one line
    naming the command and the option, with where to read more."""
    message = " ".join(exc.format_message().replace("Value error, ", "").split())
    ctx = exc.ctx
    if ctx is None:
        return message
    return f"{ctx.command_path}: {message} (see {ctx.command_path} --help)"


class ScaletrackCli(ScaletrackGroup):
    """The root group: besides ScaletrackGroup's one-line errors, a usage error found while
    parsing (here or in any sub-command) is one `error: ...` line, not click's boxed usage."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None,
                     **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            report_error(usage_error_line(exc))
            raise typer.Exit(USAGE_EXIT_CODE) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            report_error(usage_error_line(exc))
            raise typer.Exit(USAGE_EXIT_CODE) from None


app = typer.Typer(
    name="scaletrack",
    cls=ScaletrackCli,
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
