"""The demo's summary and its loss-vs-compute figure say the same thing: each prediction at
10x the largest compute names its law, the figure draws the compute law and marks every
quoted prediction at the value and 95% prediction interval printed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from rich.console import Console

from scaletrack.analysis.chinchilla import fit_chinchilla
from scaletrack.analysis.isoflop import compute_frontier
from scaletrack.analysis.optimal import compute_optimal
from scaletrack.analysis.powerlaw import fit_compute_law
from scaletrack.demo import DemoOutcome, loss_vs_compute_figure, print_summary
from scaletrack.number_format import fmt_number


@pytest.fixture(scope="module")
def points() -> pd.DataFrame:
    """A 4 x 5 grid on a Chinchilla surface with 0.4% scatter (N params, D tokens, C FLOPs)."""
    n, d = np.meshgrid(np.geomspace(3e3, 2e5, 4), np.geomspace(2e5, 3.2e6, 5))
    n, d = n.ravel(), d.ravel()
    noise = np.random.default_rng(1).normal(0, 0.004, n.size)
    loss = (0.6 + 100 * n**-0.8 + 5e3 * d**-0.8) * np.exp(noise)
    return pd.DataFrame({"N": n, "D": d, "C": 6 * n * d, "loss": loss})


@pytest.fixture(scope="module")
def fits(points: pd.DataFrame) -> dict:
    out = {"chinchilla": fit_chinchilla(points, n_bootstrap=50),
           "compute": fit_compute_law(compute_frontier(points), n_bootstrap=50)}
    assert all(not f.degenerate for f in out.values()), {k: f.status_reason
                                                         for k, f in out.items()}
    return out


def _interval_text(band: pd.Series) -> str:
    return f"{fmt_number(band['pred'])} [{fmt_number(band['lo'])}, {fmt_number(band['hi'])}]"


def _expected(points: pd.DataFrame, fits: dict) -> dict[str, pd.Series]:
    """What the library says at 10x the largest compute, per law."""
    c10 = 10 * float(points["C"].max())
    best = compute_optimal(fits["chinchilla"], c10).iloc[0]
    return {
        "compute": fits["compute"].predict_interval(c10).iloc[0],
        "chinchilla": fits["chinchilla"].predict_interval(best["N_opt"], best["D_opt"]).iloc[0],
    }


def test_summary_quotes_the_plotted_law_and_names_each_law(
    tmp_path: Path, points: pd.DataFrame, fits: dict
) -> None:
    outcome = DemoOutcome(out=tmp_path, store_url="sqlite:///x.db", points=points, fits=fits)
    console = Console(record=True, width=400)
    print_summary(outcome, console)
    lines = [x for x in console.export_text().splitlines() if x.startswith("predicted at 10x")]
    assert len(lines) == 2
    law_line, chinchilla_line = lines
    expected = _expected(points, fits)
    assert "by the compute law L(C):" in law_line and "loss_vs_compute" in law_line
    assert f": {_interval_text(expected['compute'])} nats/token" in law_line
    assert "by the Chinchilla fit L(N, D) at its compute-optimal" in chinchilla_line
    assert f": {_interval_text(expected['chinchilla'])} nats/token" in chinchilla_line
    assert "its curve not drawn" in chinchilla_line
    assert all("95% prediction interval" in line for line in lines)


def test_figure_draws_the_compute_law_and_marks_each_quoted_prediction(
    tmp_path: Path, points: pd.DataFrame, fits: dict
) -> None:
    outcome = DemoOutcome(out=tmp_path, store_url="sqlite:///x.db", points=points, fits=fits)
    ax = loss_vs_compute_figure(outcome).axes[0]
    c10 = 10 * float(points["C"].max())
    expected = _expected(points, fits)
    # the drawn extrapolation is the compute law: at 10x it passes through its prediction
    (curve,) = [line for line in ax.get_lines() if line.get_label() == "extrapolation"]
    x, y = (np.asarray(v, float) for v in curve.get_data())
    drawn = np.interp(np.log(c10), np.log(x), y)
    assert drawn == pytest.approx(expected["compute"]["pred"], rel=2e-3)
    # one marker per printed prediction, at the printed value, its bar the printed interval
    marks = {c.get_label(): c for c in ax.containers if isinstance(c, ErrorbarContainer)}
    assert len(marks) == 2
    for law, name in (("compute", "compute law L(C)"), ("chinchilla", "Chinchilla fit L(N, D)")):
        band = expected[law]
        container = marks[f"10x prediction, {name}: {_interval_text(band)}"]
        data_line, _, (bars,) = container.lines
        assert data_line.get_ydata()[0] == pytest.approx(band["pred"])
        (segment,) = bars.get_segments()
        assert sorted(segment[:, 1]) == pytest.approx([band["lo"], band["hi"]])
        assert data_line.get_xdata()[0] == pytest.approx(c10)
    labels = ax.get_legend_handles_labels()[1]
    assert any(label.startswith("10x prediction, Chinchilla") for label in labels)


def test_a_degenerate_compute_law_leaves_only_the_chinchilla_prediction(
    tmp_path: Path, points: pd.DataFrame, fits: dict
) -> None:
    import dataclasses

    broken = dataclasses.replace(fits["compute"], status="degenerate",
                                 status_reason="E sits at its bound")
    outcome = DemoOutcome(out=tmp_path, store_url="sqlite:///x.db", points=points,
                          fits={"chinchilla": fits["chinchilla"], "compute": broken})
    console = Console(record=True, width=400)
    print_summary(outcome, console)
    lines = [x for x in console.export_text().splitlines() if x.startswith("predicted at 10x")]
    assert len(lines) == 1 and "Chinchilla fit L(N, D)" in lines[0]
    ax = loss_vs_compute_figure(outcome).axes[0]
    labels = [c.get_label() for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(labels) == 1 and "Chinchilla fit L(N, D)" in labels[0]
    assert "extrapolation" not in [line.get_label() for line in ax.get_lines()]
    # no law is drawn out to 10x, yet the mark is in view
    assert ax.get_xlim()[1] > 10 * float(points["C"].max())
