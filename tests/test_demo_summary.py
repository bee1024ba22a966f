"""The demo's summary: a degenerate fit is one reason + remedy line, an ok fit its numbers."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from scaletrack.analysis.result import FitResult
from scaletrack.demo import DemoOutcome, print_summary


def _fit(form: str, params: dict[str, float], status: str = "ok", reason: str = "") -> FitResult:
    ci = {k: (0.9 * v, 1.1 * v) for k, v in params.items()}
    return FitResult(form=form, params=params, ci95=ci, residuals=(), selection={},
                     n_points=20, status=status, status_reason=reason)


def test_degenerate_fit_prints_only_its_reason_and_remedy(tmp_path: Path) -> None:
    chinchilla = _fit("chinchilla", {"E": 1.1e-9, "A": 37.0, "alpha": 0.31, "B": 812.0,
                                     "beta": 0.37},
                      "degenerate", "E = 1.1e-09 sits at its bound 0 (no irreducible loss "
                      "identified)")
    compute = _fit("compute", {"E": 1.2, "a": 40.0, "b": 0.11})
    outcome = DemoOutcome(out=tmp_path, store_url="sqlite:///x.db",
                          fits={"chinchilla": chinchilla, "compute": compute})
    console = Console(record=True, width=400)
    print_summary(outcome, console)
    lines = console.export_text().splitlines()
    chin = [line for line in lines if "chinchilla" in line]
    assert len(chin) == 1
    assert chin[0].startswith("fit chinchilla: chinchilla fit is degenerate: E = 1.1e-09")
    assert "Remedy:" in chin[0]
    assert not any("alpha=" in line or "812" in line for line in lines)  # no parameter table
    # the compute law is ok: its numbers with intervals stay
    assert any(line.startswith("fit compute (95% intervals): E=1.2 [1.08, 1.32]")
               for line in lines)


def _floor_lines(tmp_path: Path, fit: FitResult, floor: float) -> list[str]:
    outcome = DemoOutcome(out=tmp_path, store_url="sqlite:///x.db",
                          fits={"chinchilla": fit}, loss_floor=floor)
    console = Console(record=True, width=400)
    print_summary(outcome, console)
    return [line for line in console.export_text().splitlines() if "loss floor" in line]


def test_known_floor_is_set_against_the_fitted_e(tmp_path: Path) -> None:
    params = {"E": 0.6, "A": 100.0, "alpha": 0.8, "B": 5e3, "beta": 0.8}
    inside = _floor_lines(tmp_path, _fit("chinchilla", params), 0.58)  # E in [0.54, 0.66]
    assert len(inside) == 1
    assert "below 0.580 nats/token" in inside[0]
    assert "E = 0.600 [0.54, 0.66]" in inside[0] and "inside that interval" in inside[0]
    outside = _floor_lines(tmp_path, _fit("chinchilla", params), 0.5)
    assert "outside that interval" in outside[0]
    degenerate = _floor_lines(
        tmp_path, _fit("chinchilla", params, "degenerate", "E sits at its bound"), 0.5)
    assert len(degenerate) == 1 and "E =" not in degenerate[0]
