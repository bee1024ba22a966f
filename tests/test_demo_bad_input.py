"""`scaletrack demo` on a folder it cannot create: one line naming it, no traceback."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from scaletrack.cli.main import app


def test_demo_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "x[/]y"
    result = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines == [f"error: cannot create the demo folder {out}: Not a directory"]
    assert blocker.read_text() == "not a folder"
