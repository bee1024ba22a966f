"""Command-line usage errors (a missing option, an unknown value, an out-of-range number, an
unknown command) are one `error: ...` line naming the command and the option, exit status 1,
like every other user error; help is unchanged."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from scaletrack.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize(("args", "names"), [
    (["plan", "--budget", "1e12"], ["scaletrack plan", "--target-compute", "Missing option"]),
    (["export", "nosuch"], ["scaletrack export", "'nosuch' is not one of", "'runs'"]),
    (["ui", "--port", "99999"], ["scaletrack ui", "'--port'", "65535"]),
    (["fit", "--form", "nope"], ["scaletrack fit", "'--form'", "'chinchilla'"]),
    (["nosuchcommand"], ["No such command 'nosuchcommand'"]),
    (["sweep", "run"], ["scaletrack sweep run", "Missing argument"]),
    (["runs", "--no-such-flag"], ["No such option: --no-such-flag"]),
])
def test_usage_errors_are_one_line_with_exit_status_1(args: list[str], names: list[str]) -> None:
    res = runner.invoke(app, args, terminal_width=80)
    assert res.exit_code == 1, res.output
    text = res.output
    assert text.startswith("error: ") and text.count("\n") == 1, text
    for name in names:
        assert name in text
    assert "╭" not in text and "Usage:" not in text and "Value error" not in text


def test_help_is_still_help() -> None:
    res = runner.invoke(app, ["plan", "--help"])
    assert res.exit_code == 0 and "--target-compute" in res.output
    res = runner.invoke(app, ["sweep", "--help"])
    assert res.exit_code == 0 and "validate" in res.output
