"""Command grids stand alone: an N ladder or named sizes, custom axes, the placeholders a grid
offers, and one clear line for each mistake (no store, no process: fast)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.errors import ConfigError
from scaletrack.sweeps.grid import expand
from scaletrack.sweeps.spec import BUILTIN_CONFIG_KEYS, parse_spec_text

LADDER = """
name = "own"
[model]
params = [1e6, 3_000_000]
[axes]
tokens = [1000, 2000]
seeds = [0]
dropout = [0.0, 0.1]
[train]
command = "python train.py --n {params} --tokens {tokens} --seed {seed} --dropout {dropout}"
"""


def cells(text: str) -> list:
    return list(expand(parse_spec_text(text, "g.toml")).cells)


def test_a_params_ladder_and_a_custom_axis_expand_without_data_or_family() -> None:
    got = cells(LADDER)
    assert len(got) == 2 * 2 * 2
    first = got[0]  # compute order: smallest N x D first
    assert first.command == "python train.py --n 1000000 --tokens 1000 --seed 0 --dropout 0.0"
    assert first.record().config == {"params": 1_000_000, "tokens": 1000, "seed": 0,
                                     "dropout": 0.0, "command": first.command}
    assert (first.family, first.N, first.D, first.C) == ("custom", 1_000_000, 1000, 6e9)
    assert first.lr is None and first.steps is None  # the grid gives no lr; steps: the program's
    assert len({c.run_key for c in got}) == len(got)
    assert {c.command.rsplit(" ", 1)[1] for c in got} == {"0.0", "0.1"}
    assert "dropout=0.1" in got[1].label and "N=1M" in got[1].label


def test_custom_axis_values_are_part_of_the_key() -> None:
    a = {c.command: c.run_key for c in cells(LADDER)}
    b = {c.command: c.run_key for c in cells(LADDER.replace("[0.0, 0.1]", "[0.0, 0.2]"))}
    same = set(a) & set(b)
    assert same and all(a[k] == b[k] for k in same)  # untouched cells keep their keys
    assert len(set(a.values()) - set(b.values())) == 4


def test_named_sizes_and_no_model_at_all() -> None:
    sized = cells("""
name = "own"
[model]
sizes = [ { width = 64, depth = 2, params = 123_456 }, { width = 128, depth = 2 , params = 5e5} ]
[axes]
tokens = [1000]
act = ["gelu", "relu"]
bias = [true]
[train]
command = "python t.py --width {width} --depth {depth} --act {act} --bias {bias} --N {N}"
""")
    assert [c.command for c in sized] == [
        "python t.py --width 64 --depth 2 --act gelu --bias true --N 123456",
        "python t.py --width 64 --depth 2 --act relu --bias true --N 123456",
        "python t.py --width 128 --depth 2 --act gelu --bias true --N 500000",
        "python t.py --width 128 --depth 2 --act relu --bias true --N 500000",
    ]
    assert sized[0].N == 123_456 and sized[0].size_label == "width=64 depth=2"
    assert sized[0].record().config == {"width": 64, "depth": 2, "params": 123_456,
                                        "tokens": 1000, "act": "gelu", "bias": True,
                                        "command": sized[0].command}
    bare = cells("""
name = "bare"
[axes]
tokens = [1000, 2000]
[train]
command = "python t.py --tokens {tokens} --tag 'a b'"
""")
    assert [c.command for c in bare] == ["python t.py --tokens 1000 --tag 'a b'",
                                         "python t.py --tokens 2000 --tag 'a b'"]
    record = bare[0].record()
    assert (record.N, record.C, record.seed, record.lr) == (None, None, None, None)
    assert record.config == {"tokens": 1000, "command": bare[0].command}


def test_keys_of_grids_with_a_built_in_model_do_not_change() -> None:
    """Computed with the code before standalone command grids existed."""
    grid = """
name = "cmd"
[data]
corpus = "stdlib"
context = 16
[model]
family = "gpt"
sizes = [ { n_layer = 1, n_head = 2, d_model = 16 }, { n_layer = 1, n_head = 2, d_model = 32 } ]
[axes]
tokens = [1280, 2560]
[train]
batch_size = 8
command = 'python train.py --d {d_model} --t {tokens} --lr {lr} --seed {seed} --n {params}'
"""
    with_command = cells(grid)
    assert [c.run_key for c in with_command] == [
        "c38a3cfc0cb65139", "5cdc72dc53135650", "d162a7579269ca49", "9d34814d01b409e3"]
    assert with_command[0].command == "python train.py --d 16 --t 1280 --lr 0.001 --seed 0 --n 3312"
    builtin = cells(grid.replace(grid[grid.index("command ="):], ""))
    assert [c.run_key for c in builtin] == [
        "bda1ed5b97393019", "8d5184cb1f051b23", "8116f67816131dd7", "60a9e88034327337"]
    # a custom axis on such a grid joins its config and key
    dropout = cells(grid.replace("[train]", "dropout = [0.0, 0.1]\n[train]").replace(
        "--n {params}", "--n {params} --dropout {dropout}"))
    assert len(dropout) == 8 and dropout[0].record().config["dropout"] == 0.0
    assert not {c.run_key for c in dropout} & {c.run_key for c in with_command}


def test_builtin_config_keys_follow_the_trainer() -> None:
    from scaletrack.sweeps.train import TrainConfig

    assert {f.name for f in dataclasses.fields(TrainConfig)} == BUILTIN_CONFIG_KEYS


BASE = """
name = "x"
{model}
[axes]
tokens = [1000, 2000]
{axes}
[train]
command = '{command}'
{extra}
"""
LADDER_MODEL = "[model]\nparams = [1e6, 3e6]"
GPT = ("[data]\ncorpus = 'stdlib'\ncontext = 16\n[model]\nfamily = 'gpt'\n"
       "sizes = [{n_layer = 1, n_head = 2, d_model = 16}]")

MISTAKES = [
    # (model, axes, command, extra, the one error line)
    (LADDER_MODEL, "seed = [1, 2]", "t {params} {tokens} {seed}", "",
     "axes.seed: a custom axis cannot be named 'seed', a built-in name"),
    (GPT, "grad_clip = [0.0, 1.0]", "t {tokens} {grad_clip}", "",
     "axes.grad_clip: a custom axis cannot be named 'grad_clip', a built-in name of this grid"),
    ("[model]\nsizes = [{width = 1}, {width = 2}]", "width = [1, 2]", "t {width} {tokens}", "",
     "axes.width: a custom axis cannot be named 'width', a built-in name or a key of [model] "
     "sizes"),
    (LADDER_MODEL, "dropout = []", "t {params} {tokens}", "",
     "axes.dropout: expected at least one value (the list is empty)"),
    (LADDER_MODEL, "dropout = [[0.1], [0.2]]", "t {params} {tokens} {dropout}", "",
     "axes.dropout: expected a number, string or boolean, got list [0.1]"),
    (LADDER_MODEL, "dropout = { a = 1 }", "t {params} {tokens} {dropout}", "",
     "axes.dropout: expected a list of values"),
    (LADDER_MODEL, "when = [1979-05-27]", "t {params} {tokens} {when}", "",
     "axes.when: expected a number, string or boolean, got date"),
    (LADDER_MODEL, "dropout = [0.1, 0.1]", "t {params} {tokens} {dropout}", "",
     "axes.dropout: expected distinct values (found a duplicate)"),
    (LADDER_MODEL, "dropout = [nan]", "t {params} {tokens} {dropout}", "",
     "axes.dropout: expected a finite number, got nan"),
    (LADDER_MODEL, "'2x' = [1]", "t {params} {tokens}", "",
     "axes.2x: a custom axis needs a name of letters, digits and _"),
    (LADDER_MODEL, "", "t {params} {tokens} {seed}", "",
     "train.command: placeholder {seed} has no value in this grid (list the seeds: [axes] "
     "seeds = [0, 1]); allowed here: {tokens}, {sweep}, {params}, {N}, {C}"),
    ("", "", "t {params} {tokens}", "",
     "train.command: placeholder {params} has no value in this grid (give an N ladder"),
    (LADDER_MODEL, "", "t {params} {tokens} {n_head}", "",
     "train.command: placeholder {n_head} has no value in this grid (a setting of the built-in "
     "trainer"),
    (LADDER_MODEL, "dropout = [0.1]", "t {params} {tokens} {width}", "",
     "train.command: unknown placeholder {width} in command; allowed here: {tokens}, {sweep}, "
     "{params}, {N}, {C}, {dropout}"),
    (LADDER_MODEL, "", "t {params:.0e} {tokens}", "",
     "train.command: placeholder {params:.0e} in command: format specs and conversions are not "
     "supported"),
    (LADDER_MODEL, "", "t {tokens}", "",
     "train.command: [model] params has 2 values but the command never uses {C} or {N} or "
     "{params}"),
    (LADDER_MODEL, "dropout = [0.0, 0.1]", "t {params} {tokens}", "",
     "train.command: [axes] dropout has 2 values but the command never uses {dropout}"),
    (LADDER_MODEL, "", "t {params} {tokens}", "batch_size = 8",
     "train.batch_size: a setting of the built-in trainer"),
    (LADDER_MODEL, "", "t {params} {tokens}", "[schedule]\nkind = 'wsd'",
     "schedule: only the built-in trainer reads [schedule]"),
    ("[data]\ncorpus = 'stdlib'\n" + LADDER_MODEL, "", "t {params} {tokens}", "",
     "data: a command cell whose model is its own reads its own data"),
    ("[model]\nfamily = 'mlp'\nparams = [1e6]", "", "t {params} {tokens}", "",
     "model.family: expected family 'gpt' or 'lstm' (or none"),
    ("[model]\nparams = [1e6, 1.5]", "", "t {params} {tokens}", "",
     "model.params: expected positive whole parameter counts (1.5 is not one)"),
    ("[model]\nparams = [1e6]\nsizes = [{a = 1}]", "", "t {params} {tokens}", "",
     "model: expected exactly one of params"),
    ("[model]\nsizes = [{a = 1}, {b = 2}]", "", "t {tokens}", "",
     "model.sizes: sizes[1] has keys b; expected the keys of sizes[0] (a)"),
]


@pytest.mark.parametrize(("model", "axes", "command", "extra", "expected"), MISTAKES)
def test_each_mistake_is_one_clear_line(model: str, axes: str, command: str, extra: str,
                                        expected: str) -> None:
    text = BASE.format(model=model, axes=axes, command=command, extra=extra)
    with pytest.raises(ConfigError) as err:
        cells(text)
    message = str(err.value)
    assert "\n" not in message and message.startswith("g.toml: "), message
    assert expected in message, message


def test_custom_axes_need_a_command() -> None:
    grid = BASE.format(model=GPT, axes="dropout = [0.1]", command="x", extra="").replace(
        "command = 'x'", "")
    with pytest.raises(ConfigError, match="axes.dropout: a custom axis is for a command"):
        cells(grid)


def test_sweep_validate_lists_a_standalone_grid(tmp_path: Path) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(LADDER)
    result = CliRunner().invoke(app, ["sweep", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "8 cells" in result.output and "N=1M" in result.output
    path.write_text(LADDER.replace("{dropout}", "{droput}"))
    result = CliRunner().invoke(app, ["sweep", "validate", str(path)])
    assert result.exit_code == 1
    assert "train.command: unknown placeholder {droput}" in result.output
