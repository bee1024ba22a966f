"""The demo's LR pilot (scripts/demo_pilot.py): its grid, its selection rule, its bad input."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "demo_pilot.py"


@pytest.fixture(scope="module")
def pilot() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_pilot", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["demo_pilot"] = module
    spec.loader.exec_module(module)
    return module


def test_pilot_grid_is_the_demo_narrowed_to_sizes_lrs_and_one_unreported_budget(
    pilot: ModuleType,
) -> None:
    from scaletrack.demo import DEMO_GRID_TOML
    from scaletrack.sweeps.grid import expand
    from scaletrack.sweeps.spec import parse_spec_text

    toml = pilot.pilot_grid_toml(DEMO_GRID_TOML, (0, 3), (1e-3, 3e-3, 1e-2), 283_000)
    spec = parse_spec_text(toml, "<pilot>")
    demo = parse_spec_text(DEMO_GRID_TOML, "<demo>")
    assert spec.axes.tokens == [283_000] and 283_000 not in demo.axes.tokens
    assert list(spec.axes.lrs) == [1e-3, 3e-3, 1e-2]
    assert [s.d_model for s in spec.model.sizes] == [16, 96]  # smallest and largest
    # the demo's schedule, trained from scratch: one run per size x LR, no trunks
    assert spec.schedule.kind == "wsd" and not spec.schedule.branches
    assert spec.schedule.cooldown == demo.schedule.cooldown
    assert spec.schedule.decay_frac == demo.schedule.decay_frac
    assert spec.schedule.warmup_steps == demo.schedule.warmup_steps
    cells = expand(spec, "<pilot>").cells
    assert len(cells) == 6 and {c.role for c in cells} == {"cell"}


def test_pilot_refuses_a_reported_budget_and_unknown_sizes(pilot: ModuleType) -> None:
    from scaletrack.demo import DEMO_GRID_TOML

    with pytest.raises(ValueError, match="reported budgets"):
        pilot.pilot_grid_toml(DEMO_GRID_TOML, (0,), (3e-3,), 400_000)
    with pytest.raises(ValueError, match="indices in 0..3"):
        pilot.pilot_grid_toml(DEMO_GRID_TOML, (0, 7), (3e-3,), 283_000)


def test_pick_is_the_lowest_mean_loss_not_one_size_best(pilot: ModuleType) -> None:
    # the small model prefers 1e-2 by a hair, the large one 3e-3 by a lot: 3e-3 wins
    points = pd.DataFrame({
        "N": [1e4, 1e4, 1e4, 3e5, 3e5, 3e5],
        "lr": [1e-3, 3e-3, 1e-2, 1e-3, 3e-3, 1e-2],
        "loss": [2.60, 2.41, 2.40, 2.30, 2.05, 2.25],
    })
    best, table = pilot.pick_lr(points)
    assert best == 3e-3
    assert table.loc["mean", 3e-3] == pytest.approx((2.41 + 2.05) / 2)
    assert table.loc[1e4].idxmin() == 1e-2


def test_pick_disqualifies_an_lr_missing_at_some_size(pilot: ModuleType) -> None:
    # 1e-2 is best where it finished but diverged at the large size
    points = pd.DataFrame({"N": [1e4, 1e4, 3e5], "lr": [3e-3, 1e-2, 3e-3],
                           "loss": [2.5, 2.0, 2.1]})
    best, _ = pilot.pick_lr(points)
    assert best == 3e-3
    with pytest.raises(ValueError, match="no finished"):
        pilot.pick_lr(points.iloc[0:0])


def test_bad_arguments_are_one_line(pilot: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        pilot.main(["--lrs", "fast"])
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("expected comma-separated numbers, got 'fast'")
    assert "Traceback" not in "\n".join(err)
    assert pilot.main(["--tokens", "400000"]) == 2
    assert capsys.readouterr().err.strip() == (
        "demo_pilot: tokens: 400,000 is one of the demo's reported budgets")


@pytest.mark.slow
def test_pilot_trains_two_tiny_cells_and_picks_one(
    pilot: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pilot.main(["--sizes", "0", "--lrs", "1e-3,1e-2", "--tokens", "3072",
                       "--workers", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "pick (lowest mean loss): lr " in out
    assert (tmp_path / "pilot.db").exists()
