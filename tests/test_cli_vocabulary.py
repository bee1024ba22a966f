"""The CLI speaks one vocabulary and reports user errors one way."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaletrack.cli.main import app

runner = CliRunner()


def _header(output: str, first: str) -> list[str]:
    """The words of the table header line that starts with `first`."""
    for line in output.splitlines():
        words = line.split()
        if words and words[0] == first:
            return words
    raise AssertionError(f"no header starting with {first!r} in:\n{output}")


@pytest.fixture
def imported(tmp_path: Path) -> str:
    csv = tmp_path / "runs.csv"
    rows = [f"{n},{d},{3 + 1e3 / n + 1e3 / d:.4f}" for n in (1e6, 4e6) for d in (1e8, 4e8)]
    csv.write_text("N,D,loss\n" + "\n".join(rows) + "\n")
    url = f"sqlite:///{tmp_path / 's.db'}"
    res = runner.invoke(app, ["import-csv", str(csv), "--sweep", "pub", "--store", url])
    assert res.exit_code == 0, res.output
    return url


def test_runs_and_sweep_status_use_the_same_column_names(imported: str) -> None:
    runs = runner.invoke(app, ["runs", "--sweep", "pub", "--store", imported],
                         terminal_width=200)
    status = runner.invoke(app, ["sweep", "status", "pub", "--store", imported],
                           terminal_width=200)
    assert runs.exit_code == 0 and status.exit_code == 0, runs.output + status.output
    runs_cols, status_cols = _header(runs.output, "run"), _header(status.output, "run")
    shared = set(runs_cols) & set(status_cols)
    assert {"run", "N", "D", "C", "seed", "lr", "loss", "tries"} <= shared
    assert not {"run_key", "final_loss", "attempts"} & (set(runs_cols) | set(status_cols))


def test_run_keys_for_scripts(imported: str) -> None:
    res = runner.invoke(app, ["runs", "--sweep", "pub", "--keys", "--store", imported])
    keys = res.output.split()
    assert res.exit_code == 0 and len(keys) == 4 and all(len(k) == 16 for k in keys)
    show = runner.invoke(app, ["show", keys[0][:8], "--store", imported])
    assert show.exit_code == 0 and keys[0] in show.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "--status", "nope"], "unknown status 'nope'"),
        (["sweep", "status", "nope"], "no sweep named 'nope'"),
        (["show", "ffff"], "no run with key 'ffff'"),
        (["fit", "--form", "compute"], "--sweep"),
        (["checkpoints", "add", "x.bin", "--params", "5.5", "--tokens", "1e9"],
         "--params must be a whole number"),
        (["checkpoints", "add", "x.bin", "--params", "lots", "--tokens", "1e9"],
         "--params must be a number"),
    ],
)
def test_user_errors_are_one_line(imported: str, args: list[str], message: str) -> None:
    res = runner.invoke(app, [*args, "--store", imported])
    assert res.exit_code == 1, res.output
    assert res.output.startswith("error: ") and message in res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output


def test_checkpoint_counts_take_scientific_notation(imported: str, tmp_path: Path) -> None:
    ckpt = tmp_path / "big.bin"
    ckpt.write_bytes(b"weights")
    res = runner.invoke(app, ["checkpoints", "add", str(ckpt), "--params", "5e7", "--tokens",
                              "1_000_000_000", "--store", imported])
    assert res.exit_code == 0, res.output
    assert "N=5e7" in res.output and "D=1e9" in res.output
