"""Emergence tables from a CSV: a value too large to be a metric is refused in one line naming
the file line, values are printed as plain numbers, and the sigmoid fit on finite input lets
no numpy RuntimeWarning out."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from scaletrack.analysis.emergence import fit_floored_sigmoid
from scaletrack.analysis.sigmoid_batch import solve_batch
from scaletrack.cli.main import app

runner = CliRunner()
SCALES = (1e18, 1e19, 1e20, 1e21, 1e22)
GOOD = (0.1, 0.2, 0.5, 0.9, 0.95)


def _table(tmp_path: Path, values: tuple[str, ...]) -> Path:
    path = tmp_path / "em.csv"
    rows = "".join(f"t,{c:g},{v}\n" for c, v in zip(SCALES, values, strict=True))
    path.write_text("task,flops,acc\n" + rows)
    return path


def _emergence(path: Path) -> object:
    return runner.invoke(app, ["emergence", "--csv", str(path), "--x-col", "flops",
                               "--value-col", "acc", "--bootstrap", "0"])


@pytest.mark.parametrize("huge", ["1e300", "-1e200", "1.5e101"])
def test_a_value_too_large_for_a_metric_is_refused_by_line(tmp_path: Path, huge: str) -> None:
    values = tuple(str(v) for v in GOOD[:2]) + (huge,) + tuple(str(v) for v in GOOD[3:])
    res = _emergence(_table(tmp_path, values))
    assert res.exit_code == 1 and "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    assert "column 'acc'" in lines[0] and "line 4" in lines[0]
    assert f"{float(huge):g}" in lines[0] and "RuntimeWarning" not in res.output


@pytest.mark.parametrize("bad", ["nan", "", "inf"])
def test_a_missing_value_is_printed_as_a_plain_number(tmp_path: Path, bad: str) -> None:
    values = tuple(str(v) for v in GOOD[:3]) + (bad,) + (str(GOOD[4]),)
    res = _emergence(_table(tmp_path, values))
    assert res.exit_code == 1 and "line 5" in res.output
    assert "np.float64" not in res.output and f"({float(bad or 'nan'):g})" in res.output


def test_a_large_finite_value_below_the_limit_is_fitted(tmp_path: Path) -> None:
    """A perplexity-sized value (1e6) is a plausible metric: classified, not refused."""
    res = runner.invoke(app, ["emergence", "--csv", str(_table(tmp_path, ("1e6", "3e5", "1e4",
                                                                       "300", "20"))),
                              "--x-col", "flops", "--value-col", "acc", "--bootstrap", "0",
                              "--lower-is-better", "value"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("huge", [1e300, 1e160])
def test_the_sigmoid_fit_lets_no_runtime_warning_out(huge: float) -> None:
    y = np.array([*GOOD[:2], huge, *GOOD[3:]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fit = fit_floored_sigmoid(np.array(SCALES), y, n_bootstrap=20, seed=0)
        lx = np.log10(np.array(SCALES))
        lo, hi = np.array([-1.0, 0.0, 0.01, 10.0]), np.array([1.0, 1.0, 10.0, 30.0])
        theta, cost = solve_batch(lx, np.tile(y, (3, 1)),
                                  np.array([[0.0, 0.5, 1.0, 20.0]] * 3), lo, hi,
                                  fixed_floor=None, limit=1.0)
    assert fit.n_points == len(SCALES)
    assert theta.shape == (3, 4) and cost.shape == (3,)
