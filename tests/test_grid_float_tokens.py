"""Counts written 1e6-style in a grid file (TOML floats such as `tokens = [2e7]`) are the whole
numbers they equal: the same config and run keys as `20000000`; non-whole or out-of-range ones
are refused in one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.errors import ConfigError
from scaletrack.sweeps.grid import expand
from scaletrack.sweeps.spec import parse_spec_text

COMMAND_GRID = """
name = "my-ladder"
[model]
params = [1e6, 3e6]
[axes]
tokens = [{tokens}]
seeds = [0, 1]
dropout = [0.0, 0.1]
[train]
command = "python train.py -n {{params}} -t {{tokens}} -s {{seed}} -d {{dropout}}"
"""

GPT_GRID = """
name = "gpt-ladder"
[data]
corpus = "stdlib"
context = 16
options = {{ max_bytes = {max_bytes} }}
[model]
family = "gpt"
target_params = [{params}]
[axes]
tokens = [{tokens}]
[train]
device = "cpu"
"""


def keyed(text: str) -> list[tuple[str, dict]]:
    return [(c.run_key, c.record().config) for c in expand(parse_spec_text(text, "g.toml")).cells]


def test_float_token_budgets_give_the_same_cells_as_integers() -> None:
    as_floats = keyed(COMMAND_GRID.format(tokens="2e7, 6e7"))
    as_ints = keyed(COMMAND_GRID.format(tokens="20000000, 60_000_000"))
    assert as_floats == as_ints
    assert {type(config["tokens"]) for _, config in as_floats} == {int}
    stored = [expand(parse_spec_text(COMMAND_GRID.format(tokens=t), "g.toml")).stored_spec()
              for t in ("2e7, 6e7", "20000000, 60000000")]
    assert stored[0] == stored[1]  # the sweep's recorded grid: no change, nothing retrains


def test_builtin_grid_counts_accept_whole_floats() -> None:
    floats = parse_spec_text(GPT_GRID.format(max_bytes="2e5", params="1e4, 2e4",
                                             tokens="6.4e3"), "g.toml")
    ints = parse_spec_text(GPT_GRID.format(max_bytes="200000", params="10000, 20000",
                                           tokens="6400"), "g.toml")
    assert floats.to_json_dict() == ints.to_json_dict()
    assert floats.axes.tokens == [6400]
    assert floats.model.target_params == [10_000, 20_000]


@pytest.mark.parametrize(("tokens", "expected"), [
    ("2.5e0", "axes.tokens[0]: expected a whole number (got 2.5)"),
    ("1e30", "axes.tokens[0]: input should be less than or equal to 9223372036854775807"),
    ("-2e7", "axes.tokens[0]: input should be greater than 0"),
    ("inf", "axes.tokens[0]: expected a whole number"),
    ("0.0", "axes.tokens[0]: input should be greater than 0"),
])
def test_non_whole_or_out_of_range_token_floats_are_refused(tokens: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_spec_text(COMMAND_GRID.format(tokens=tokens), "g.toml")
    message = str(err.value)
    assert expected in message
    assert "\n" not in message


def test_the_documented_command_grid_validates(tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(COMMAND_GRID.format(tokens="2e7, 6e7"))
    result = CliRunner().invoke(app, ["sweep", "validate", str(grid)])
    assert result.exit_code == 0, result.output
    assert "valid: 16 cells" in " ".join(result.output.split())
