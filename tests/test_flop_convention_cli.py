"""The parameter and FLOP counting convention is said where N and C are shown: `sweep
validate`, `show` and a fit's point description."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.models.accounting import DEFAULT_FLOP_CONVENTION, FLOP_CONVENTIONS

runner = CliRunner()

BUILT_IN_GRID = """name = "counting"
[data]
corpus = "stdlib"
options = { max_bytes = 20000 }
context = 16
[model]
family = "gpt"
sizes = [{ n_layer = 1, n_head = 1, d_model = 16 }]
[axes]
tokens = [640]
[train]
batch_size = 4
"""


def _counting(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.startswith("counting: ")]
    assert len(lines) == 1, output
    return lines[0]


def test_sweep_validate_says_how_built_in_models_count_n_and_c(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "grid.toml").write_text(BUILT_IN_GRID)
    res = runner.invoke(app, ["sweep", "validate", "grid.toml"], terminal_width=400)
    assert res.exit_code == 0, res.output
    line = _counting(res.output)
    assert f"{DEFAULT_FLOP_CONVENTION!r} = {FLOP_CONVENTIONS[DEFAULT_FLOP_CONVENTION]}" in line
    assert "non-embedding" in line and "command and imported" not in line


def test_show_and_fit_say_that_imported_runs_keep_their_own_counts(tmp_path: Path) -> None:
    csv = tmp_path / "runs.csv"
    rows = [f"{n},{d},{3 + 1e3 / n + 1e3 / d:.4f}" for n in (1e6, 2e6, 4e6)
            for d in (1e8, 2e8, 4e8)]
    csv.write_text("N,D,loss\n" + "\n".join(rows) + "\n")
    url = f"sqlite:///{tmp_path / 's.db'}"
    res = runner.invoke(app, ["import-csv", str(csv), "--sweep", "pub", "--store", url])
    assert res.exit_code == 0, res.output
    keys = runner.invoke(app, ["runs", "--sweep", "pub", "--keys", "--store", url]).output
    shown = runner.invoke(app, ["show", keys.split()[0], "--store", url], terminal_width=400)
    assert shown.exit_code == 0, shown.output
    line = _counting(shown.output)
    assert "keep the N and C they recorded" in line and "non-embedding" not in line
    fit = runner.invoke(app, ["fit", "--form", "chinchilla", "--sweep", "pub", "--store", url,
                              "--bootstrap", "0"], terminal_width=400)
    points = [ln for ln in fit.output.splitlines() if ln.startswith("points: ")]
    assert points and f"{DEFAULT_FLOP_CONVENTION!r}" in points[0], fit.output
