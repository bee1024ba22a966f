"""User text that looks like Rich markup (`[/]`, `[v2]`, `[bold]`) is printed literally by every
command (tables, progress lines, errors) and never crashes one; `ideas remove` / `ideas edit`
let a user repair an idea without touching the database by hand."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reliability.harness import REPO, grid_toml, scaletrack_cmd
from scaletrack.cli.common import console
from scaletrack.cli.main import app


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 200)

NASTY = ("loss [/] below 3", "x [v2] y", "[bold]b[/bold] [red]", "a [/red] \\[z]")


def invoke(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    assert "Traceback" not in result.output
    return result.output


def test_ideas_with_markup_titles_print_literally(tmp_path: Path, figures: dict) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    for title in NASTY:
        out = invoke(["ideas", "add", title, "--task", "val_loss", "--metric", "loss",
                      "--threshold", "3", "--direction", "below", "--store", url])
        assert repr(title) in out, out
    listed = invoke(["ideas", "list", "--store", url])
    for title in NASTY:
        assert title in listed, (title, listed)
    edited = invoke(["ideas", "edit", "1", "--title", "[red]now[/] [v3]", "--threshold", "2.5",
                     "--store", url])
    assert "'[red]now[/] [v3]'" in edited and "<= 2.5" in edited
    removed = invoke(["ideas", "remove", "2", "--store", url])
    assert "'x [v2] y' removed" in removed
    listed = invoke(["ideas", "list", "--store", url])
    assert "[red]now[/] [v3]" in listed and "x [v2] y" not in listed
    result = CliRunner().invoke(app, ["ideas", "remove", "99", "--store", url])
    assert result.exit_code == 1 and "no idea with id 99" in result.output
    result = CliRunner().invoke(app, ["ideas", "edit", "1", "--direction", "sideways",
                                      "--store", url])
    assert result.exit_code == 1 and "direction" in result.output
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + len(NASTY) + 2


@pytest.mark.slow
def test_sweep_run_with_markup_sweep_name_and_idea(tmp_path: Path, figures: dict) -> None:
    """An idea titled with `[/]`, then a sweep whose finished cells re-check
    that idea (its progress lines print the title); an imported sweep named with markup; every
    run, `runs` and `sweep status` exit 0."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    invoke(["ideas", "add", "loss [/] below 3", "--task", "val_loss", "--metric", "loss",
            "--threshold", "3", "--direction", "below", "--store", url])
    name = "tiny"
    grid = tmp_path / "tiny.toml"
    grid.write_text(grid_toml(name, tokens=(640,), sizes=((1, 2, 16),), checkpoint_every=5,
                              eval_every=5))
    env_cmd = scaletrack_cmd("sweep", "run", str(grid), "--store", url, "--workers", "1")
    proc = subprocess.run(env_cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert "'loss [/] below 3'" in out, out
    again = subprocess.run(env_cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "nothing to train" in again.stdout, again.stdout
    csv = tmp_path / "pub.csv"
    csv.write_text("N,D,loss\n1000,20000,3.5\n2000,20000,3.2\n")
    imported = "pub [/] [v2]"
    invoke(["import-csv", str(csv), "--sweep", imported, "--store", url])
    runs = invoke(["runs", "--store", url])
    assert imported in runs, runs
    status = invoke(["sweep", "status", imported, "--store", url])
    assert f"sweep {imported}: 0 pending, 0 running, 2 finished" in status, status
    assert "1 finished" in invoke(["sweep", "status", name, "--store", url])
