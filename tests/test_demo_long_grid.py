"""sweeps/examples/demo-long.toml: a valid branch grid on natural text, reaching past the demo."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "sweeps" / "examples"


def test_demo_long_is_a_branch_grid_reaching_past_the_demo() -> None:
    from scaletrack.demo import DEMO_GRID_TOML
    from scaletrack.sweeps.grid import load_grid
    from scaletrack.sweeps.spec import parse_spec_text

    grid = load_grid(EXAMPLES / "demo-long.toml")
    demo = parse_spec_text(DEMO_GRID_TOML, "<demo>")
    assert grid.name == "demo-long"
    assert grid.spec.schedule.branches and grid.spec.schedule.kind == "wsd"
    roles = [c.role for c in grid.cells]
    assert roles.count("trunk") == 5 and roles.count("branch") == 25
    points = [c for c in grid.cells if c.role == "branch"]
    assert min(c.N for c in points) < 5_000 and max(c.N for c in points) > 90_000
    assert max(grid.spec.axes.tokens) == 6_400_000 > max(demo.axes.tokens)
    assert grid.spec.data.corpus == "stdlib" and demo.data.corpus == "zipf-words"
    assert list(grid.spec.axes.lrs) == [3e-3]  # the stdlib pilot's LR
    assert grid.spec.schedule == demo.schedule
