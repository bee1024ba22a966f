"""Grids out of range: shapes that cannot fit in memory, budgets that would train for years,
integers beyond what the store holds, seeds beyond 32 bits. `sweep validate` and `sweep run`
refuse each in one line before anything is written (no store file appears); a long but
possible grid runs with --force, with a warning."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from reliability.harness import grid_toml
from scaletrack.cli.main import app

CASES = {
    "n_layer 4096 x d_model 65536": (
        {"sizes": ((4096, 2, 65536),)}, ("needs about", "PiB", "but cpu has")),
    "n_layer 1e8": ({"sizes": ((100_000_000, 2, 16),)}, ("needs about", "TiB")),
    "1e15 tokens": ({"tokens": (10**15,)}, ("hours of training", "--force")),
    "tokens 2^63": ({"tokens": (2**63,)}, ("axes.tokens[0]", "9223372036854775807")),
    "seed 2^64": ({"extra_seed": 2**64}, ("axes.seeds[0]", "less than 4294967296")),
}


def _grid(tmp_path: Path, name: str, params: dict) -> Path:
    kwargs = {k: v for k, v in params.items() if k != "extra_seed"}
    text = grid_toml("limits", **kwargs)
    if "extra_seed" in params:
        text = text.replace("seeds = [0]", f"seeds = [{params['extra_seed']}]")
    path = tmp_path / f"{name.replace(' ', '_').replace('^', '')}.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_out_of_range_grids_are_refused_before_anything_is_written(
    tmp_path: Path, case: str, figures: dict
) -> None:
    params, words = CASES[case]
    grid = _grid(tmp_path, case, params)
    db = tmp_path / "store.db"
    for args in (["sweep", "validate", str(grid)],
                 ["sweep", "run", str(grid), "--store", f"sqlite:///{db}"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, (args, result.output, result.exception)
        assert isinstance(result.exception, SystemExit), repr(result.exception)
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert lines[0].startswith("error: ") and len(lines) == 1, result.output
        for word in words:
            assert word in lines[0], (word, lines[0])
    assert not db.exists()
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + 2


def test_a_long_grid_passes_with_force_and_a_warning(tmp_path: Path) -> None:
    grid = _grid(tmp_path, "long", {"tokens": (10**15,)})
    result = CliRunner().invoke(app, ["sweep", "validate", str(grid), "--force"])
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "hours of training" in result.output
