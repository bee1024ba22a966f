"""The demo's summary: a degenerate fit is one reason + remedy line, an ok fit its numbers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from rich.console import Console

from scaletrack.analysis.result import FitResult
from scaletrack.demo import DemoOutcome, print_summary
from scaletrack.number_format import fmt_number


def _fit(form: str, params: dict[str, float], status: str = "ok", reason: str = "") -> FitResult:
    ci = {k: (0.9 * v, 1.1 * v) for k, v in params.items()}
    return FitResult(form=form, params=params, ci=ci, residuals=(), selection={},
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
    assert "below 0.58 nats/token" in inside[0]
    assert "E = 0.6 [0.54, 0.66]" in inside[0] and "inside that interval" in inside[0]
    outside = _floor_lines(tmp_path, _fit("chinchilla", params), 0.5)
    assert "outside that interval" in outside[0]
    degenerate = _floor_lines(
        tmp_path, _fit("chinchilla", params, "degenerate", "E sits at its bound"), 0.5)
    assert len(degenerate) == 1 and "E =" not in degenerate[0]


def test_a_compute_law_whose_e_excludes_the_floor_is_labelled(tmp_path: Path) -> None:
    law = {"E": 0.642, "a": 40.0, "alpha": 0.66}
    outcome = DemoOutcome(out=tmp_path, store_url="sqlite:///x.db",
                          fits={"compute": _fit("compute", law)}, loss_floor=0.568)
    console = Console(record=True, width=400)
    print_summary(outcome, console)
    lines = [line for line in console.export_text().splitlines() if "loss floor" in line]
    assert len(lines) == 1
    assert "the compute law's E = 0.642" in lines[0]
    assert "outside that interval" in lines[0]
    assert "does not identify the floor" in lines[0]
    held = dataclasses.replace(outcome, loss_floor=0.65)  # inside [0.578, 0.706]
    console = Console(record=True, width=400)
    print_summary(held, console)
    text = console.export_text()
    assert "inside that interval" in text and "does not identify" not in text


def test_prediction_at_ten_times_compute_comes_from_a_chinchilla_fit_that_holds(
    tmp_path: Path,
) -> None:
    import numpy as np
    import pandas as pd

    from scaletrack.analysis.chinchilla import fit_chinchilla
    from scaletrack.analysis.optimal import compute_optimal

    n, d = np.meshgrid(np.geomspace(3e3, 2e5, 4), np.geomspace(2e5, 3.2e6, 5))
    n, d = n.ravel(), d.ravel()
    noise = np.random.default_rng(0).normal(0, 0.004, n.size)
    loss = (0.6 + 100 * n**-0.8 + 5e3 * d**-0.8) * np.exp(noise)
    points = pd.DataFrame({"N": n, "D": d, "C": 6 * n * d, "loss": loss})
    fit = fit_chinchilla(points, n_bootstrap=50)
    assert fit.status == "ok"
    outcome = DemoOutcome(out=tmp_path, store_url="sqlite:///x.db", points=points,
                          fits={"chinchilla": fit})
    console = Console(record=True, width=400)
    print_summary(outcome, console)
    lines = [x for x in console.export_text().splitlines() if x.startswith("predicted at 10x")]
    assert len(lines) == 1 and "by the Chinchilla fit L(N, D)" in lines[0]
    assert "(95% prediction interval;" in lines[0]
    best = compute_optimal(fit, 10 * points["C"].max()).iloc[0]
    assert f"N = {fmt_number(best['N_opt'])} parameters" in lines[0]
    pred, lo, hi = (float(v) for v in lines[0].split(": ")[-1].split(" nats")[0]
                    .replace("[", "").replace("]", "").replace(",", "").split())
    assert lo < pred < hi and pred == pytest.approx(best["loss_opt"], abs=5e-4)
    # a degenerate Chinchilla fit gives no prediction of its own
    outcome.fits = {"chinchilla": dataclasses.replace(fit, status="degenerate",
                                                      status_reason="E sits at its bound")}
    console = Console(record=True, width=400)
    print_summary(outcome, console)
    assert "predicted at 10x" not in console.export_text()


def test_paths_and_messages_are_printed_as_typed(tmp_path: Path) -> None:
    out = tmp_path / "x[/]y"
    outcome = DemoOutcome(out=out, store_url=f"sqlite:///{out}/scaletrack.db",
                          files=[out / "loss_vs_compute.png"],
                          skipped=["fit: sweep '[bold]a[/bold]' has no finished runs"])
    console = Console(record=True, width=400)
    print_summary(outcome, console)
    text = console.export_text()
    assert f"store sqlite:///{out}/scaletrack.db; files: {out}/loss_vs_compute.png" in text
    assert f"--store sqlite:///{out}/scaletrack.db" in text
    assert "skipped fit: sweep '[bold]a[/bold]' has no finished runs" in text
