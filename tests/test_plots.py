"""Plots: files are written (PNG + SVG) and contain what they should."""

from __future__ import annotations

import matplotlib.image as mpimg
import pandas as pd
import pytest
from test_fit_chinchilla import synthetic_runs
from test_fit_isoflop import isoflop_runs

from scaletrack.analysis import (
    compute_frontier,
    fit_chinchilla,
    fit_compute_law,
    fit_isoflop,
    fit_power_law,
)
from scaletrack.analysis.figures import save_figure
from scaletrack.analysis.plots import (
    plot_backtest,
    plot_isoflop,
    plot_loss_vs_compute,
    plot_optimal,
)
from scaletrack.errors import DataError
from scaletrack.number_format import fmt_number


def _check(paths, stem):
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert all(p.stem == stem for p in paths)
    img = mpimg.imread(paths[0])
    assert img.shape[0] > 400 and img.shape[1] > 600
    assert img[..., :3].std() > 0.05  # not blank
    return paths[1].read_text()


def test_loss_vs_compute_with_compute_law(tmp_path):
    df = isoflop_runs()
    fit = fit_compute_law(compute_frontier(df.assign(C=6 * df.N * df.D)), n_bootstrap=50)
    svg = _check(save_figure(plot_loss_vs_compute(df, fit=fit), tmp_path / "loss.png"), "loss")
    assert "compute-efficient frontier" in svg
    assert "95% confidence band" in svg and "95% prediction band" in svg
    assert "model size N" in svg


def test_known_floor_is_drawn_and_checked(tmp_path):
    df = isoflop_runs()
    svg = _check(save_figure(plot_loss_vs_compute(df, floor=0.568), tmp_path / "floor.png"),
                 "floor")
    assert "best possible loss (0.568, known)" in svg
    plain = _check(save_figure(plot_loss_vs_compute(df), tmp_path / "plain.png"), "plain")
    assert "best possible loss" not in plain
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(DataError, match="floor must be"):
            plot_loss_vs_compute(df, floor=bad)


def test_degenerate_law_is_not_drawn(tmp_path):
    df = pd.DataFrame({"N": [1e4, 2e4, 4e4, 8e4, 1.6e5, 3.2e5], "D": [1e6] * 6,
                       "loss": [3.50, 3.49, 3.21, 3.22, 3.23, 2.90]})
    fit = fit_compute_law(df.assign(C=6 * df.N * df.D), n_bootstrap=30)
    assert fit.degenerate
    svg = _check(save_figure(plot_loss_vs_compute(df, fit=fit), tmp_path / "deg.png"), "deg")
    assert "not drawn" in svg and "extrapolation" not in svg


def test_loss_vs_compute_with_chinchilla_fit(tmp_path):
    df = synthetic_runs(n=60)
    fit = fit_chinchilla(df, n_bootstrap=30)
    svg = _check(save_figure(plot_loss_vs_compute(df, fit=fit, extrapolate_to=1e25),
                             tmp_path / "chin.svg")
                 [::-1], "chin")
    assert "extrapolation" in svg


def test_loss_plot_rejects_allocation_fit(tmp_path):
    df = isoflop_runs()
    with pytest.raises(DataError, match="not 'isoflop'"):
        plot_loss_vs_compute(df, fit=fit_isoflop(df, n_bootstrap=0))
    with pytest.raises(DataError):
        plot_loss_vs_compute(df, fit=fit_power_law(df, x="N", n_bootstrap=0))


def test_isoflop_and_optimal_plots(tmp_path):
    df = isoflop_runs()
    svg = _check(save_figure(plot_isoflop(df), tmp_path / "iso.png"), "iso")
    assert "minimum" in svg and f"C = {fmt_number(1e19)}" in svg
    fits = [fit_isoflop(df, n_bootstrap=30), fit_chinchilla(df, n_bootstrap=20)]
    svg = _check(save_figure(plot_optimal(fits), tmp_path / "opt.png"), "opt")
    assert "D_opt (tokens)" in svg and "Chinchilla fit" in svg


def _seeds_and_lrs(tmp_path):
    """isoflop_runs with 2 seeds x 2 learning rates per (N, D); lr 3e-3 is 0.3 nats worse."""
    import numpy as np

    rng = np.random.default_rng(1)
    base = isoflop_runs()
    parts = [base.assign(seed=s, lr=lr, loss=base["loss"] + (0.3 if lr == 3e-3 else 0.0)
                         + rng.normal(0, 0.002, len(base)))
             for s in (0, 1) for lr in (1e-3, 3e-3)]
    path = tmp_path / "runs.csv"
    pd.concat(parts, ignore_index=True).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("kind", "form"), [("compute", "compute"), ("isoflop", "isoflop"),
                                            ("optimal", "isoflop")])
def test_plot_cli_uses_the_fit_point_selection(tmp_path, kind, form):
    from typer.testing import CliRunner

    from scaletrack.cli.main import app

    csv = _seeds_and_lrs(tmp_path)
    runner = CliRunner()
    fit = runner.invoke(app, ["fit", "--form", form, "--csv", str(csv), "--bootstrap", "0"])
    assert fit.exit_code == 0, fit.output
    want = next(line for line in fit.stdout.splitlines() if line.startswith("points: "))
    assert "seeds averaged -> 126 points" in want and "best of 2 learning rates" in want
    out = tmp_path / f"{kind}.png"
    res = runner.invoke(app, ["plot", kind, "-o", str(out), "--csv", str(csv),
                              "--bootstrap", "10"])
    assert res.exit_code == 0, res.output
    assert want in res.stdout.splitlines()
    _check([out, out.with_suffix(".svg")], kind)


def test_plot_cli_keeps_a_budget_column_through_seed_averaging(tmp_path):
    from typer.testing import CliRunner

    from scaletrack.analysis import snap_budgets
    from scaletrack.cli.main import app

    df = pd.read_csv(_seeds_and_lrs(tmp_path))
    csv = tmp_path / "budgets.csv"
    df.assign(budget=snap_budgets(6 * df["N"] * df["D"])).to_csv(csv, index=False)
    out = tmp_path / "iso.png"
    res = CliRunner().invoke(app, ["plot", "isoflop", "-o", str(out), "--csv", str(csv),
                                   "--budget-col", "budget"])
    assert res.exit_code == 0, res.output
    assert "seeds averaged -> 126 points" in res.stdout
    _check([out, out.with_suffix(".svg")], "iso")


def test_plots_draw_on_the_callers_axes_and_return_its_figure(tmp_path):
    import matplotlib.pyplot as plt

    from scaletrack.analysis import backtest

    df = isoflop_runs()
    runs = df.assign(C=6 * df.N * df.D)
    fit = fit_compute_law(compute_frontier(runs), n_bootstrap=20)
    fig, axes = plt.subplots(2, 3, figsize=(18, 9))
    try:
        drawn = [
            plot_loss_vs_compute(df, fit=fit, ax=axes[0, 0]),
            plot_isoflop(df, ax=axes[0, 1]),
            plot_backtest(runs, backtest(runs, "compute", holdout_top=0.3, n_bootstrap=20),
                          ax=axes[0, 2]),
            plot_optimal([fit_isoflop(df, n_bootstrap=20)], ax=axes[1, :2]),
        ]
        assert all(f is fig for f in drawn)  # the caller's figure, no new one
        assert plt.get_fignums() == [fig.number]
        assert axes[0, 0].get_xscale() == "log" and axes[0, 0].get_title()
        assert axes[1, 0].get_lines() and axes[1, 1].get_lines()
        assert not axes[1, 2].get_lines()  # untouched
        paths = save_figure(fig, tmp_path / "panels.png")
        assert [p.name for p in paths] == ["panels.png", "panels.svg"]
        assert all(p.stat().st_size > 0 for p in paths)
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    finally:
        plt.close(fig)
    with pytest.raises(DataError, match="2 panel"):
        plot_optimal([fit_isoflop(df, n_bootstrap=0)], ax=axes[0, 0])


def test_a_plot_without_ax_is_a_figure_pyplot_does_not_track():
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    before = plt.get_fignums()
    fig = plot_isoflop(isoflop_runs())
    assert isinstance(fig, Figure) and len(fig.axes) >= 1
    assert plt.get_fignums() == before


def test_save_figure_names_an_unwritable_path(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="cannot write the figure"):
        save_figure(plot_isoflop(isoflop_runs()), tmp_path / "file" / "iso.png")
