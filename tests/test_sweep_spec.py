"""Grid files: the examples validate; malformed grids give one clear ConfigError naming the field,
exit code 1 from the CLI without a traceback, and nothing in the store."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.errors import ConfigError
from scaletrack.sweeps.spec import GridSpec, load_spec, parse_spec_text

EXAMPLES = Path(__file__).resolve().parents[1] / "sweeps" / "examples"

VALID: dict[str, Any] = {
    "name": "spec-test",
    "data": {"corpus": "stdlib", "context": 16, "options": {"max_bytes": 200_000}},
    "model": {
        "family": "gpt",
        "sizes": [{"n_layer": 1, "n_head": 2, "d_model": 16}, {"n_layer": 2, "n_head": 2,
                                                               "d_model": 16}],
    },
    "axes": {"tokens": [640, 1280], "seeds": [0], "lrs": [0.003]},
    "train": {"batch_size": 4, "weight_decay": 0.1, "grad_clip": 1.0, "device": "cpu"},
    "schedule": {"kind": "cosine", "warmup_frac": 0.05, "min_lr_frac": 0.1},
    "eval": {"every": 5, "batches": 2},
    "checkpoint": {"every": 10},
    "executor": {"kind": "local", "workers": 1},
}


def to_toml(data: dict[str, Any]) -> str:
    """Minimal TOML writer: every table as an inline table (valid TOML, enough for tests)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            return repr(v) if v == v and abs(v) != float("inf") else str(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        raise TypeError(v)

    return "".join(f"{json.dumps(k)} = {value(v)}\n" for k, v in data.items())


def dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out


def get_parent(data: Any, path: tuple[Any, ...]) -> Any:
    for p in path[:-1]:
        data = data[p]
    return data


# -------------------------------------------------------------------------- valid grids


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_example_grids_parse(path: Path) -> None:
    spec = load_spec(path)
    assert isinstance(spec, GridSpec)
    assert spec.axes.tokens


def test_valid_dict_round_trips_through_toml() -> None:
    spec = parse_spec_text(to_toml(VALID), "valid.toml")
    assert spec.model.family == "gpt"
    assert spec.data.source() == {"corpus": "stdlib", "max_bytes": 200_000}
    assert spec.executor.order == "compute"


def test_demo_example_is_the_demo_grid() -> None:
    from scaletrack.demo import DEMO_GRID_TOML

    assert (EXAMPLES / "demo.toml").read_text() == DEMO_GRID_TOML


# -------------------------------------------------------------------------- specific errors

CASES = [
    (("model", "sizes", 0, "n_layer"), -1, "model.sizes[0].n_layer", "greater than 0"),
    (("model", "family"), "rnn", "model.family", "'gpt' or 'lstm'"),
    (("data", "context"), "32", "data.context", "valid integer"),
    (("axes", "tokens"), [], "axes.tokens", "at least 1"),
    (("axes", "tokens"), [640, 640], "axes.tokens", "distinct"),
    (("model", "sizes", 0, "d_model"), 15, "model.sizes[0]", "divisible by n_head"),
    (("name",), "has space", "name", "letters, digits"),
    (("schedule", "kind"), "linear", "schedule.kind", "cosine"),
    (("executor", "kind"), "pbs", "executor.kind", "'local'"),
    (("data", "options"), {"max_byte": 3}, "data.options.max_byte", "unknown key"),
    (("data", "options"), {"vocab_size": 300}, "data.options.vocab_size", "not an option"),
    (("eval", "tasks"), ["not a task"], "eval.tasks", "module:function"),
]


@pytest.mark.parametrize(("path", "value", "field", "words"), CASES)
def test_specific_errors_name_the_field(path, value, field, words) -> None:
    data = copy.deepcopy(VALID)
    get_parent(data, path)[path[-1]] = value
    with pytest.raises(ConfigError) as info:
        parse_spec_text(to_toml(data), "grid.toml")
    message = str(info.value)
    assert message.startswith(f"grid.toml: {field}:"), message
    assert words in message


def test_wsd_fractions_must_fit() -> None:
    data = copy.deepcopy(VALID)
    data["schedule"] = {"kind": "wsd", "warmup_frac": 0.5, "decay_frac": 0.6}
    with pytest.raises(ConfigError, match=r"schedule: expected warmup_frac \+ decay_frac <= 1"):
        parse_spec_text(to_toml(data), "grid.toml")


def test_sizes_and_targets_are_exclusive() -> None:
    data = copy.deepcopy(VALID)
    data["model"]["target_params"] = [10_000]
    with pytest.raises(ConfigError, match="model: expected exactly one of sizes"):
        parse_spec_text(to_toml(data), "grid.toml")


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[data\ncorpus = "stdlib"\n')
    with pytest.raises(ConfigError) as info:
        load_spec(bad)
    assert str(info.value).startswith(f"{bad}: TOML syntax error")
    assert "line 2" in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="grid file not found"):
        load_spec(tmp_path / "nope.toml")


# -------------------------------------------------------------------------- generated bad grids

REQUIRED = [
    ("name",), ("data",), ("model",), ("axes",), ("model", "family"), ("axes", "tokens"),
    ("model", "sizes", 0, "n_layer"), ("model", "sizes", 1, "n_head"),
    ("model", "sizes", 0, "d_model"),
]
INT_LEAVES = [
    ("data", "context"), ("model", "sizes", 0, "n_layer"), ("model", "sizes", 1, "d_model"),
    ("model", "sizes", 0, "n_head"), ("axes", "tokens", 0), ("axes", "tokens", 1),
    ("axes", "seeds", 0), ("train", "batch_size"), ("eval", "every"), ("eval", "batches"),
    ("checkpoint", "every"), ("executor", "workers"), ("data", "options", "max_bytes"),
]
POSITIVE_LEAVES = [p for p in INT_LEAVES if p != ("axes", "seeds", 0)] + [("axes", "lrs", 0)]
FLOAT_LEAVES = [
    ("axes", "lrs", 0), ("train", "weight_decay"), ("train", "grad_clip"),
    ("schedule", "warmup_frac"), ("schedule", "min_lr_frac"),
]
STR_LEAVES = [
    ("name",), ("data", "corpus"), ("model", "family"), ("train", "device"),
    ("schedule", "kind"), ("executor", "kind"),
]
LIST_LEAVES = [("axes", "tokens"), ("axes", "seeds"), ("axes", "lrs"), ("model", "sizes")]
TABLES = [(), ("data",), ("model",), ("axes",), ("train",), ("schedule",), ("eval",),
          ("checkpoint",), ("executor",), ("model", "sizes", 0)]

texts = st.text(alphabet="abcxyz 12", min_size=1, max_size=6)
non_integer_floats = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda x: x != int(x)
)
unknown_keys = st.text(alphabet="qwvjk_", min_size=1, max_size=8)


@st.composite
def mutation(draw: st.DrawFn) -> tuple[str, str, str | None]:
    """(grid text, description, dotted field the error must name — None for TOML errors)."""
    data = copy.deepcopy(VALID)
    kind = draw(st.sampled_from(["missing", "int", "float", "str", "list", "negative",
                                 "unknown", "toml"]))
    if kind == "missing":
        path = draw(st.sampled_from(REQUIRED))
        del get_parent(data, path)[path[-1]]
        field = dotted(path)
    elif kind == "int":
        path = draw(st.sampled_from(INT_LEAVES))
        get_parent(data, path)[path[-1]] = draw(
            st.one_of(texts, non_integer_floats, st.booleans(), st.lists(st.integers(1, 9),
                                                                         max_size=2))
        )
        field = dotted(path)
    elif kind == "float":
        path = draw(st.sampled_from(FLOAT_LEAVES))
        get_parent(data, path)[path[-1]] = draw(st.one_of(texts, st.booleans()))
        field = dotted(path)
    elif kind == "str":
        path = draw(st.sampled_from(STR_LEAVES))
        get_parent(data, path)[path[-1]] = draw(st.one_of(st.integers(), st.floats(
            allow_nan=False), st.lists(texts, max_size=2)))
        field = dotted(path)
    elif kind == "list":
        path = draw(st.sampled_from(LIST_LEAVES))
        get_parent(data, path)[path[-1]] = draw(st.one_of(st.integers(), texts))
        field = dotted(path)
    elif kind == "negative":
        path = draw(st.sampled_from(POSITIVE_LEAVES))
        get_parent(data, path)[path[-1]] = draw(st.integers(-10**6, 0))
        field = dotted(path)
    elif kind == "unknown":
        table = draw(st.sampled_from(TABLES))
        key = draw(unknown_keys)
        parent = data
        for p in table:
            parent = parent[p]
        parent[key] = draw(st.one_of(st.integers(), texts))
        field = dotted((*table, key))
    else:
        text = to_toml(data)
        lines = text.splitlines()
        i = draw(st.integers(0, len(lines) - 1))
        breakage = draw(st.sampled_from(["unclosed", "no-value", "bad-key", "dup", "junk"]))
        if breakage == "unclosed":
            lines[i] = lines[i][:-1]  # drop the closing quote, brace or bracket
        elif breakage == "no-value":
            lines[i] = lines[i].split("=")[0] + "="
        elif breakage == "bad-key":
            lines[i] = "bad key with spaces " + lines[i]
        elif breakage == "dup":
            lines.insert(i, lines[i])
        else:
            lines[i] = lines[i] + " @@"
        return "\n".join(lines) + "\n", f"toml {breakage} line {i + 1}", None
    return to_toml(data), f"{kind} {field}", field


def _check_message(message: str, source: str, field: str | None) -> None:
    first = message.splitlines()[0]
    assert first.startswith(f"{source}: "), message
    assert len(message.splitlines()) <= 4, message
    if field is None:
        assert "TOML syntax error" in first and "line" in first, message
    else:
        assert f": {field}" in message or f": {field}." in message or f": {field}[" in message, (
            f"expected the message to name {field!r}: {message}"
        )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutation())
def test_malformed_grids_fail_clearly_via_api_and_cli(case: tuple[str, str, str | None]) -> None:
    text, what, field = case
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        grid = Path(tmp) / "grid.toml"
        grid.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            load_spec(grid)
        _check_message(str(info.value), str(grid), field)

        db = Path(tmp) / "store.db"
        result = runner.invoke(app, ["sweep", "run", str(grid), "--store", f"sqlite:///{db}"])
        output = result.output + (result.stderr if result.stderr_bytes else "")
        assert result.exit_code == 1, (what, output)
        assert "Traceback" not in output
        assert "error:" in output
        assert not db.exists(), f"{what}: a rejected grid wrote the store"


def test_cli_subprocess_rejects_bad_grid_without_traceback(tmp_path: Path) -> None:
    data = copy.deepcopy(VALID)
    data["model"]["sizes"][0]["n_layer"] = -3
    grid = tmp_path / "grid.toml"
    grid.write_text(to_toml(data))
    db = tmp_path / "s.db"
    for verb in (["sweep", "run", str(grid), "--store", f"sqlite:///{db}"],
                 ["sweep", "validate", str(grid)]):
        proc = subprocess.run([sys.executable, "-m", "scaletrack.cli.main", *verb],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
        assert "model.sizes[0].n_layer" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) <= 3
    assert not db.exists()
