"""Grid expansion: deterministic run keys, compute ordering, ladder sizes, full validation."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from test_sweep_spec import EXAMPLES, VALID, to_toml
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.errors import ConfigError
from scaletrack.workflows import load_grid


def write(tmp_path: Path, data: dict, name: str = "grid.toml") -> Path:
    path = tmp_path / name
    path.write_text(to_toml(data))
    return path


def grid_data(**changes) -> dict:
    data = copy.deepcopy(VALID)
    for dotted, value in changes.items():
        keys = dotted.split("__")
        target = data
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return data


def test_cells_are_the_product_of_the_axes(tmp_path: Path) -> None:
    grid = load_grid(write(tmp_path, grid_data(axes__seeds=[0, 1], axes__lrs=[1e-3, 3e-3])))
    assert len(grid.cells) == 2 * 2 * 2 * 2
    assert len({c.run_key for c in grid.cells}) == len(grid.cells)
    assert {(c.D, c.seed, c.lr) for c in grid.cells} == {
        (d, s, lr) for d in (640, 1280) for s in (0, 1) for lr in (1e-3, 3e-3)
    }


def test_run_keys_do_not_depend_on_axis_or_table_order(tmp_path: Path) -> None:
    a = grid_data(axes__seeds=[0, 1], axes__lrs=[1e-3, 3e-3])
    b = copy.deepcopy(a)
    b["axes"] = {"lrs": [3e-3, 1e-3], "seeds": [1, 0], "tokens": [1280, 640]}
    b["model"]["sizes"] = list(reversed(b["model"]["sizes"]))
    b = dict(reversed(list(b.items())))  # tables in another order too
    ga = load_grid(write(tmp_path, a, "a.toml"))
    gb = load_grid(write(tmp_path, b, "b.toml"))
    keyed_a = {(c.size_label, c.D, c.seed, c.lr): c.run_key for c in ga.cells}
    keyed_b = {(c.size_label, c.D, c.seed, c.lr): c.run_key for c in gb.cells}
    assert keyed_a == keyed_b
    # and again from the same file: same keys every time
    assert [c.run_key for c in load_grid(write(tmp_path, a, "a.toml")).cells] == [
        c.run_key for c in ga.cells
    ]


def test_run_keys_change_with_sweep_and_config_but_not_device(tmp_path: Path) -> None:
    base = {c.run_key for c in load_grid(write(tmp_path, grid_data())).cells}
    renamed = {c.run_key for c in load_grid(write(tmp_path, grid_data(name="other"))).cells}
    other_bs = {c.run_key for c in load_grid(write(tmp_path, grid_data(train__batch_size=2))).cells}
    on_auto = {c.run_key for c in load_grid(write(tmp_path, grid_data(train__device="auto"))).cells}
    assert base.isdisjoint(renamed)
    assert base.isdisjoint(other_bs)
    assert base == on_auto


def test_cells_are_scheduled_largest_compute_last(tmp_path: Path) -> None:
    data = grid_data()
    data["model"]["sizes"] = list(reversed(data["model"]["sizes"]))
    data["axes"]["tokens"] = [1280, 640]
    grid = load_grid(write(tmp_path, data))
    compute = [c.C for c in grid.cells]
    assert compute == sorted(compute)
    assert max(c.N for c in grid.cells) == grid.cells[-1].N
    assert grid.cells[-1].D == 1280
    data["executor"]["order"] = "file"
    as_written = load_grid(write(tmp_path, data))
    assert [c.D for c in as_written.cells] == [1280, 640, 1280, 640]


def test_cell_records_carry_planned_size_and_compute(tmp_path: Path) -> None:
    grid = load_grid(write(tmp_path, grid_data()))
    for cell in grid.cells:
        record = cell.record()
        assert record.run_key == cell.run_key and record.sweep == "spec-test"
        assert record.N == cell.N > 0 and record.D == cell.D and pytest.approx(cell.C) == record.C
        assert record.config["tokens"] == cell.D
        assert cell.steps == -(-cell.D // (4 * 16))


def test_target_params_resolve_through_the_ladder(tmp_path: Path) -> None:
    data = grid_data()
    data["model"] = {"family": "gpt", "target_params": [20_000, 200_000]}
    grid = load_grid(write(tmp_path, data))
    sizes = sorted({c.N for c in grid.cells})
    assert len(sizes) == 2
    for target, n in zip([20_000, 200_000], sizes, strict=True):
        assert target / 2 < n < target * 2
    assert all("n_layer" in c.config.model for c in grid.cells)


@pytest.mark.parametrize("name", ["lstm.toml", "targets.toml", "tiny-cpu.toml", "demo.toml"])
def test_example_grids_expand(name: str) -> None:
    grid = load_grid(EXAMPLES / name)
    assert grid.cells and all(c.N > 0 for c in grid.cells)


def bad_grids(tmp_path: Path) -> list[tuple[dict, str]]:
    same_shape = grid_data()
    same_shape["model"] = {"family": "gpt", "target_params": [20_000, 20_001]}
    lstm_bad = grid_data()
    lstm_bad["model"] = {"family": "lstm", "target_params": [10]}
    return [
        (grid_data(data={"path": "missing.txt", "context": 16}), "data.path"),
        (grid_data(data={"tokens": str(tmp_path / "nope.bin"), "context": 16}), "data.tokens"),
        (grid_data(data={"task": "no-such-task", "context": 16}), "data.task"),
        (grid_data(axes__tokens=[32, 1280]), "axes.tokens[0]"),
        (grid_data(eval={"tasks": ["no_such_builtin"]}), "eval.tasks[0]"),
        (grid_data(eval={"tasks": ["no_such_module_xyz:fn"]}), "eval.tasks[0]"),
        (same_shape, "model.target_params"),
        (lstm_bad, "model.target_params[0]"),
    ]


def test_expansion_errors_name_the_field_and_write_nothing(tmp_path: Path) -> None:
    runner = CliRunner()
    for i, (data, field) in enumerate(bad_grids(tmp_path)):
        path = write(tmp_path, data, f"bad{i}.toml")
        with pytest.raises(ConfigError) as info:
            load_grid(path)
        assert str(info.value).startswith(f"{path}: {field}:"), str(info.value)
        db = tmp_path / f"bad{i}.db"
        result = runner.invoke(app, ["sweep", "run", str(path), "--store", f"sqlite:///{db}"])
        assert result.exit_code == 1
        assert "Traceback" not in result.output
        assert not db.exists()


def test_relative_data_path_is_relative_to_the_grid_file(tmp_path: Path) -> None:
    (tmp_path / "corpus.txt").write_text("hello world\n" * 2000)
    other = tmp_path / "elsewhere"
    other.mkdir()
    grid = load_grid(write(tmp_path, grid_data(data={"path": "corpus.txt", "context": 16})))
    assert grid.cells[0].config.data["path"] == str(tmp_path / "corpus.txt")


def test_validate_cli_lists_cells(tmp_path: Path) -> None:
    path = write(tmp_path, grid_data())
    result = CliRunner().invoke(app, ["sweep", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "4 cells" in result.output
