"""`scaletrack plan` with a target beyond what it can design for says so in one line naming the
flag and the limit, and writes no grid file."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.cli.plan import MAX_TARGET_COMPUTE

runner = CliRunner()


@pytest.mark.parametrize(("args", "expected"), [
    (["--target-compute", "1e300"], "--target-compute: 1e300 FLOPs is beyond the range the "
                                    "planner can design for (at most 1e30 FLOPs)"),
    (["--target-compute", "1e31"], "--target-compute: 1e31 FLOPs is beyond"),
    (["--target-compute", "1e30", "--target-d", "1e25"], "--target-d: 1e25 is beyond the "
                                                         "range the planner can design for"),
    (["--target-compute", "1e30", "--target-n", "1e3"], "--target-n: 1000 with "
                                                        "--target-compute 1e30 FLOPs leaves the "
                                                        "target at 1.67e26 tokens, beyond"),
    (["--target-compute", "1e30", "--sizes", "1e19,2e19,4e19"],
     "--target-compute: 1e30 FLOPs (with these --target-n, --target-d, --sizes) is beyond"),
])
def test_an_out_of_range_target_is_one_line_naming_the_flag(tmp_path, args, expected) -> None:
    out = tmp_path / "next.toml"
    res = runner.invoke(app, ["plan", *args, "--budget", "1e12", "--simulations", "0",
                              "-o", str(out)])
    assert res.exit_code == 1, res.output
    text = " ".join(res.output.split())
    assert text.startswith("error: ") and expected in text
    assert res.output.count("\n") == 1 and "<plan>" not in res.output
    assert not out.exists()


def test_the_largest_target_is_still_planned(tmp_path) -> None:
    out = tmp_path / "next.toml"
    res = runner.invoke(app, ["plan", "--target-compute", f"{MAX_TARGET_COMPUTE:g}",
                              "--budget", "1e29", "--simulations", "0", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.is_file()



def test_budget_errors_write_numbers_by_the_project_rule(tmp_path: Path) -> None:
    out = runner.invoke(app, ["plan", "--target-compute", "1e14", "--budget", "1e15",
                              "-o", str(tmp_path / "next.toml")])
    assert out.exit_code == 1
    assert "--budget 1e15 FLOPs is not below --target-compute 1e14" in out.output
    assert "e+" not in out.output
