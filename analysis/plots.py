"""Figures for scaling-law work (matplotlib). Each function takes frames / fits, draws on
`ax=` (a caller's Axes; `plot_optimal` takes two) or on a new Figure, and returns the Figure;
`scaletrack.analysis.figures.save_figure(fig, path)` writes it as PNG + SVG.

- `plot_loss_vs_compute`: every run's loss vs compute (log-log) coloured by model size, the
  compute-efficient frontier, and a fitted law with its extrapolation and bootstrap band.
- `plot_isoflop`: loss vs N per compute budget with the fitted parabolas and their minima.
- `plot_optimal`: N_opt and D_opt vs compute for one or more fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter

from scaletrack.analysis.figures import figure_axes
from scaletrack.analysis.io import validate_frame
from scaletrack.analysis.isoflop import compute_frontier, isoflop_minima
from scaletrack.analysis.number_ticks import label_log_axis, number_formatter
from scaletrack.analysis.optimal import chinchilla_allocation, compute_optimal
from scaletrack.analysis.result import FitResult
from scaletrack.errors import DataError
from scaletrack.number_format import fmt_number

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

FIT_COLOR = "#d62728"
FRONTIER_COLOR = "#222222"
_STYLE: dict[RcKeyType, Any] = {
    "font.size": 11, "axes.titlesize": 13, "axes.labelsize": 12, "legend.fontsize": 10,
    "axes.grid": True, "grid.alpha": 0.25, "grid.linestyle": "-", "axes.spines.top": False,
    "axes.spines.right": False, "savefig.dpi": 150, "svg.fonttype": "none",
}


def _plain_loss_axis(ax: Axes) -> None:
    ax.yaxis.set_major_formatter(number_formatter())
    ax.yaxis.set_minor_formatter(number_formatter())
    ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)))
    ymin, ymax = ax.get_ylim()
    if ymax / ymin > 4:
        ax.yaxis.set_minor_formatter(NullFormatter())


def _band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore"):
        return np.nanpercentile(curves, 2.5, axis=0), np.nanpercentile(curves, 97.5, axis=0)


def _law_curve(fit: FitResult, c: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Loss along compute for a loss law: (central, bootstrap curves or None, label)."""
    rows = fit.boot_params
    p = fit.params
    if fit.form == "compute":
        central = fit.predict(c)
        label = (f"fit: $L = {fmt_number(p['E'])} + \\mathrm{{{fmt_number(p['a'])}}}"
                 f"\\,C^{{-{p['alpha']:.3f}}}$")
        curves = None
        if rows.size:
            e, a, al = rows[:, 0:1], rows[:, 1:2], rows[:, 2:3]
            with np.errstate(over="ignore", invalid="ignore"):  # wild resamples -> nan, dropped
                curves = e + a * c[None, :] ** (-al)
        return central, curves, label
    if fit.form == "chinchilla":
        n_opt, d_opt = chinchilla_allocation(dict(p), c)
        central = fit.predict(n_opt, d_opt)
        label = (f"Chinchilla fit at $N_{{opt}}(C)$\n"
                 f"E={p['E']:.3g}, α={p['alpha']:.3f}, β={p['beta']:.3f}")
        curves = None
        if rows.size:
            curves = np.empty((rows.shape[0], c.size))
            for i, (e, a, b, al, be) in enumerate(rows):
                n_i, d_i = chinchilla_allocation({"A": a, "B": b, "alpha": al, "beta": be}, c)
                curves[i] = e + a * n_i ** (-al) + b * d_i ** (-be)
        return central, curves, label
    raise DataError(f"loss-vs-compute plot draws 'compute' or 'chinchilla' fits, not {fit.form!r}")


def plot_loss_vs_compute(
    df: pd.DataFrame,
    *,
    fit: FitResult | None = None,
    extrapolate_to: float | None = None,
    floor: float | None = None,
    title: str = "Loss vs training compute",
    ax: Axes | None = None,
) -> Figure:
    """Scatter of every run (N params, C FLOPs, loss nats) coloured by N, the frontier, and
    `fit` ("compute" or "chinchilla") drawn to `extrapolate_to` FLOPs (default 30x the
    largest run) with its 95% bootstrap band. `floor`: a loss known to be the best possible
    (nats/token, e.g. a synthetic corpus's), drawn as a line. Draws on `ax` (else a new
    figure) and returns the Figure."""
    data = validate_frame(df, ("N", "loss") + (("C",) if "D" not in df.columns else ("D",)))
    if floor is not None and not (np.isfinite(floor) and floor > 0):
        raise DataError(f"floor must be a finite loss > 0 nats/token, got {floor!r}")
    c_min, c_max = float(data["C"].min()), float(data["C"].max())
    c_end = float(extrapolate_to) if extrapolate_to else c_max * 30.0
    with matplotlib.rc_context(_STYLE):
        fig, (ax,), _ = figure_axes(ax, figsize=(8.5, 5.6))
        order = data.sort_values("N", ascending=False)
        sc = ax.scatter(order["C"], order["loss"], c=order["N"], cmap="viridis",
                        norm=LogNorm(order["N"].min(), order["N"].max()), s=22, alpha=0.85,
                        edgecolors="white", linewidths=0.4, zorder=3)
        ax.scatter([], [], s=22, color="0.55", edgecolors="white",
                   label=f"runs ({len(data)}; colour = N)")  # neutral legend entry
        cbar = fig.colorbar(sc, ax=ax, pad=0.02)
        cbar.set_label("model size N (parameters)")
        label_log_axis(cbar.ax.yaxis)
        front = compute_frontier(data)
        if len(front) >= 2:
            ax.plot(front["C"], front["loss"], color=FRONTIER_COLOR, lw=1.4, ls="-",
                    marker="o", ms=3, zorder=4, label="compute-efficient frontier")
        if fit is not None and fit.degenerate:
            ax.text(0.02, 0.03, f"degenerate {fit.form} fit not drawn: {fit.status_reason}",
                    transform=ax.transAxes, fontsize=8, color="0.3", wrap=True)
        elif fit is not None:
            grid = np.geomspace(c_min, max(c_end, c_max), 300)
            central, curves, label = _law_curve(fit, grid)
            inside = grid <= c_max
            ax.plot(grid[inside], central[inside], color=FIT_COLOR, lw=2.2, zorder=5, label=label)
            ax.plot(grid[~inside], central[~inside], color=FIT_COLOR, lw=2.2, ls="--", zorder=5,
                    label="extrapolation")
            if curves is not None:
                lo, hi = _band(curves)
                ax.fill_between(grid, lo, hi, color=FIT_COLOR, alpha=0.18, lw=0, zorder=2,
                                label=f"95% confidence band ({curves.shape[0]} resamples)")
            if fit.form == "compute":
                band = fit.predict_interval(grid, kind="prediction")
                ax.plot(grid, band["lo"], color=FIT_COLOR, lw=0.9, ls=":", zorder=2,
                        label="95% prediction band (new runs)")
                ax.plot(grid, band["hi"], color=FIT_COLOR, lw=0.9, ls=":", zorder=2)
            if c_end > c_max:
                ax.axvline(c_max, color="0.5", lw=0.8, ls=":", zorder=1)
                ax.annotate("extrapolation →", xy=(c_max, 0),
                            xycoords=("data", "axes fraction"), xytext=(-4, 6),
                            textcoords="offset points", color="0.35", fontsize=9, ha="left")
        if floor is not None:
            ax.axhline(floor, color="0.25", lw=1.0, ls="--", zorder=1,
                       label=f"best possible loss ({floor:.3f}, known)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        label_log_axis(ax.xaxis)
        ax.set_xlabel("training compute C (FLOPs)")
        ax.set_ylabel("final loss (nats/token)")
        ax.set_title(title)
        _plain_loss_axis(ax)
        ax.legend(loc="upper right", frameon=True, framealpha=0.9)
        return fig


def plot_isoflop(
    df: pd.DataFrame,
    *,
    budget_col: str | None = None,
    min_points: int = 3,
    title: str = "IsoFLOP profiles",
    ax: Axes | None = None,
) -> Figure:
    """Loss vs N per compute budget (colour = budget), each budget's parabola in log N and
    its minimum (star). Draws on `ax` (else a new figure) and returns the Figure."""
    data = validate_frame(df, ("N", "loss") + (("C",) if "D" not in df.columns else ("D",)))
    minima = isoflop_minima(data, budget_col=budget_col, min_points=min_points)
    if minima.empty:
        raise DataError("no budget has enough runs for an IsoFLOP parabola")
    from scaletrack.analysis.isoflop import snap_budgets

    budgets = data[budget_col].to_numpy(float) if budget_col else snap_budgets(data["C"])
    norm = LogNorm(minima["C"].min(), minima["C"].max() * 1.0001)
    cmap = matplotlib.colormaps["plasma_r"]
    with matplotlib.rc_context(_STYLE):
        fig, (ax,), _ = figure_axes(ax, figsize=(8.5, 5.6))
        for row in minima.itertuples(index=False):
            color = cmap(0.1 + 0.85 * norm(row.C))
            part = data[budgets == row.C]
            ax.scatter(part["N"], part["loss"], color=color, s=20, alpha=0.8, zorder=3)
            u = np.linspace(np.log(row.N_min) - 0.15, np.log(row.N_max) + 0.15, 100)
            ax.plot(np.exp(u), np.polyval(row.coef, u - row.logN_center), color=color, lw=1.6,
                    label=f"C = {fmt_number(row.C)}" if len(minima) <= 10 else None)
        ax.scatter(minima["N_opt"], minima["loss_opt"], marker="*", s=170, color="black",
                   edgecolors="white", linewidths=0.8, zorder=6, label="minimum N_opt(C)")
        ax.plot(minima["N_opt"], minima["loss_opt"], color="black", lw=0.8, ls=":", zorder=5)
        ax.set_xscale("log")
        label_log_axis(ax.xaxis)
        ax.set_xlabel("model size N (parameters)")
        ax.set_ylabel("final loss (nats/token)")
        lo = min(data["loss"].min(), minima["loss_opt"].min())
        hi = np.percentile(data["loss"], 98)
        ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.08 * (hi - lo))
        ax.set_title(title)
        if len(minima) <= 10:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="budget (FLOPs)",
                      frameon=False)
        else:  # many budgets: a colour bar reads better than a long legend
            mappable = ScalarMappable(norm=norm, cmap=_truncated(cmap))
            budget_bar = fig.colorbar(mappable, ax=ax, pad=0.02)
            budget_bar.set_label("compute budget C (FLOPs)")
            label_log_axis(budget_bar.ax.yaxis)
            ax.legend(loc="upper right", frameon=True, framealpha=0.9)
        return fig


def plot_optimal(
    fits: FitResult | Sequence[FitResult],
    *,
    compute_range: tuple[float, float] | None = None,
    title: str = "Compute-optimal allocation",
    ax: Sequence[Axes] | None = None,
) -> Figure:
    """N_opt(C) and D_opt(C) (log-log, two panels) for each fit ("chinchilla", "isoflop",
    "envelope"), with the fits' own minima/frontier points and 95% bootstrap bands where
    available. Draws on `ax` (two Axes: N_opt, D_opt; else a new figure) and returns the
    Figure."""
    fit_list = [fits] if isinstance(fits, FitResult) else list(fits)
    if not fit_list:
        raise DataError("plot_optimal needs at least one fit")
    pts = [pd.DataFrame(f.extra.get("points") or []) for f in fit_list]
    if compute_range is None:
        cs = [p["C"].to_numpy(float) for p in pts if "C" in p.columns and len(p)]
        lo, hi = (min(c.min() for c in cs), max(c.max() for c in cs)) if cs else (1e18, 1e22)
        compute_range = (lo / 3.0, hi * 100.0)
    grid = np.geomspace(*compute_range, 200)
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    with matplotlib.rc_context(_STYLE):
        fig, axes, created = figure_axes(ax, 2, figsize=(11, 4.6), ncols=2, sharex=True)
        axes = axes[:2]
        for i, (fit, points) in enumerate(zip(fit_list, pts, strict=True)):
            color = colors[i % len(colors)]
            opt = compute_optimal(fit, grid)
            if fit.form == "chinchilla":
                p = fit.params
                s = p["beta"] / (p["alpha"] + p["beta"])
                name = f"Chinchilla fit ($N\\propto C^{{{s:.3f}}}$, $D\\propto C^{{{1 - s:.3f}}}$)"
            else:
                a, b = fit.params["a"], fit.params["b"]
                name = f"{fit.form} ($N\\propto C^{{{a:.3f}}}$, $D\\propto C^{{{b:.3f}}}$)"
            bands = _allocation_bands(fit, grid)
            for panel, col in zip(axes, ("N_opt", "D_opt"), strict=True):
                panel.plot(grid, opt[col], color=color, lw=2, label=name)
                if bands is not None:
                    lo_b, hi_b = bands[col]
                    panel.fill_between(grid, lo_b, hi_b, color=color, alpha=0.15, lw=0)
                if len(points) and col in points.columns:
                    panel.scatter(points["C"], points[col], color=color, s=28, zorder=4,
                               edgecolors="white", linewidths=0.5)
        for panel, what in zip(axes, ("N_opt (parameters)", "D_opt (tokens)"), strict=True):
            panel.set_xscale("log")
            panel.set_yscale("log")
            label_log_axis(panel.xaxis)
            label_log_axis(panel.yaxis)
            panel.set_xlabel("training compute C (FLOPs)")
            panel.set_ylabel(what)
        axes[0].legend(loc="upper left", frameon=False)
        if created:
            fig.suptitle(title)
            fig.tight_layout()
        else:
            axes[0].set_title(title)
        return fig


def _truncated(cmap: matplotlib.colors.Colormap) -> matplotlib.colors.Colormap:
    """The 0.1-0.95 part of `cmap`, as used for the budget colours."""
    from matplotlib.colors import ListedColormap

    return ListedColormap(cmap(np.linspace(0.1, 0.95, 256)))


def _allocation_bands(fit: FitResult, grid: np.ndarray) -> dict | None:
    rows = fit.boot_params
    if not rows.size:
        return None
    if fit.form in ("isoflop", "envelope"):
        k_n, a, k_d, b = (rows[:, i : i + 1] for i in range(4))
        return {"N_opt": _band(k_n * grid**a), "D_opt": _band(k_d * grid**b)}
    if fit.form != "chinchilla":
        return None
    ns = np.empty((rows.shape[0], grid.size))
    ds = np.empty_like(ns)
    for i, (_, a, b, al, be) in enumerate(rows):
        ns[i], ds[i] = chinchilla_allocation({"A": a, "B": b, "alpha": al, "beta": be}, grid)
    return {"N_opt": _band(ns), "D_opt": _band(ds)}


def plot_backtest(df: pd.DataFrame, result: object, *, ax: Axes | None = None) -> Figure:
    """Held-out runs against their predictions with 95% prediction (bars) and confidence
    bands (loss in nats, C in FLOPs): the picture of a `BacktestResult`. Draws on `ax` (else
    a new figure) and returns the Figure."""
    frame = result.frame  # type: ignore[attr-defined]
    summary = result.summary  # type: ignore[attr-defined]
    data = validate_frame(df, ("C", "loss"), add_compute=False)
    with matplotlib.rc_context(_STYLE):
        fig, (ax,), _ = figure_axes(ax, figsize=(8.5, 5.6))
        train = data[data["C"] < summary["threshold_C"]]
        ax.scatter(train["C"], train["loss"], s=14, color="0.6", label=f"fitted ({len(train)})")
        ax.errorbar(frame["C"], frame["predicted"],
                    yerr=[frame["predicted"] - frame["pred_lo"],
                          frame["pred_hi"] - frame["predicted"]],
                    fmt="none", ecolor=FIT_COLOR, alpha=0.5, lw=1,
                    label="95% prediction interval")
        ax.scatter(frame["C"], frame["loss"], s=18, color=FRONTIER_COLOR, zorder=4,
                   label=f"held out ({len(frame)})")
        ax.axvline(summary["threshold_C"], color="0.5", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        label_log_axis(ax.xaxis)
        ax.set_xlabel("training compute C (FLOPs)")
        ax.set_ylabel("final loss (nats/token)")
        ax.set_title(f"{summary['form']} back-test: MAPE {100 * summary['mape']:.2f}%, "
                     f"prediction coverage {100 * summary['coverage_prediction']:.0f}%")
        _plain_loss_axis(ax)
        ax.legend(loc="upper right", frameon=True, framealpha=0.9)
        return fig
