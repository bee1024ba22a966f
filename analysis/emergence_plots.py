"""Figures for emergence: metric vs scale per task, and an idea's attempts over time.

Every function draws on `ax=` (a caller's Axes, or one Axes per panel) or on a new Figure
and returns the Figure; `scaletrack.analysis.figures.save_figure` writes it as PNG + SVG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from scaletrack.analysis.classify import TaskClassification
from scaletrack.analysis.figures import figure_axes
from scaletrack.analysis.number_ticks import label_log_axis
from scaletrack.errors import DataError
from scaletrack.number_format import fmt_number

_LABEL_COLOURS = {"past": "#2a9d8f", "near": "#e9a23b", "far": "#8d99ae"}


def _draw_task(
    ax: Axes, x: np.ndarray, y: np.ndarray, result: TaskClassification, x_label: str
) -> None:
    colour = _LABEL_COLOURS.get(result.label, "#333333")
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
    x, y = x[keep], y[keep]
    if x.size == 0:
        raise DataError(f"task {result.task!r}: no finite points to plot")
    ax.scatter(x, y, s=14, color="#264653", alpha=0.7, label="observed", zorder=3)
    fit = result.fit
    lo_x = float(np.min(x))
    hi_x = float(np.max(x))
    if fit is not None:
        right = hi_x * 30.0
        if math.isfinite(result.crossing) and result.crossing > 0:
            right = max(right, result.crossing * 3.0)
        right = min(right, hi_x * 1e4)
        grid = np.logspace(math.log10(lo_x) - 0.2, math.log10(right), 200)
        ax.plot(grid, fit.predict(grid), color=colour, lw=2, label="floored sigmoid fit")
        band = fit.predict_interval(grid, kind="confidence")
        if band["lo"].notna().all():
            ax.fill_between(grid, band["lo"], band["hi"], color=colour, alpha=0.15, lw=0)
    if math.isfinite(result.threshold):
        ax.axhline(result.threshold, color="#e76f51", ls="--", lw=1,
                   label=f"threshold ({result.threshold_source}) {fmt_number(result.threshold)}")
    ax.axvline(hi_x, color="#555555", ls=":", lw=1, label="largest tried")
    c_lo, c_hi = result.crossing_ci95
    if math.isfinite(result.crossing) and result.crossing > 0:
        ax.axvline(result.crossing, color=colour, lw=1.2,
                   label=f"predicted crossing {fmt_number(result.crossing)}")
        span_lo = c_lo if math.isfinite(c_lo) and c_lo > 0 else result.crossing
        span_hi = c_hi if math.isfinite(c_hi) else ax.get_xlim()[1]
        ax.axvspan(span_lo, span_hi, color=colour, alpha=0.1, label="crossing 95% interval")
    ax.set_xscale("log")
    label_log_axis(ax.xaxis)
    ax.set_xlabel(x_label)
    tag = " (emergent)" if result.emergent else ""
    ax.set_title(f"{result.title}: {result.label}{tag}", fontsize=9)
    ax.grid(alpha=0.3, which="both", lw=0.4)


def plot_task_emergence(
    x: np.ndarray, y: np.ndarray, result: TaskClassification,
    *, x_label: str = "training compute C (FLOPs)", ax: Axes | None = None,
) -> Figure:
    """One task: points, fitted sigmoid with band, threshold line, crossing and interval.
    Draws on `ax` (else a new figure) and returns the Figure."""
    fig, (ax,), _ = figure_axes(ax, figsize=(6.4, 4.2), dpi=130)
    _draw_task(ax, np.asarray(x, float), np.asarray(y, float), result, x_label)
    ax.set_ylabel(result.metric)
    ax.legend(fontsize=7, loc="best")
    return fig


def plot_tasks_emergence(
    df: pd.DataFrame,
    results: Mapping[Any, TaskClassification],
    *,
    task_col: str = "task",
    x_col: str = "C",
    value_col: str = "value",
    x_label: str = "training compute C (FLOPs)",
    ncols: int = 3,
    metric_col: str | None = "metric",
    shot_col: str | None = "n_shot",
    ax: Sequence[Axes] | None = None,
) -> Figure:
    """A grid of panels, one per classified curve in `results` (values: classifications; keys
    are not read). Each panel draws only its own curve's rows: the result's task, and its
    metric and shot count where `metric_col` / `shot_col` are columns of `df`, so metrics and
    shot counts are never mixed in one panel. Draws on `ax` (one Axes per result; else a new
    figure, `ncols` panels wide) and returns the Figure."""
    if not results:
        raise DataError("no task results to plot")
    items = list(results.values())
    nrows = math.ceil(len(items) / ncols)
    fig, axes, created = figure_axes(ax, len(items), figsize=(4.6 * ncols, 3.4 * nrows),
                                     nrows=nrows, ncols=ncols, dpi=130)
    for panel, result in zip(axes, items, strict=False):
        keep = (df[task_col].astype(str) == result.task).to_numpy().copy()
        if metric_col is not None and metric_col in df.columns:
            keep &= (df[metric_col].astype(str) == result.metric).to_numpy()
        if shot_col is not None and shot_col in df.columns and result.shot is not None:
            keep &= (pd.to_numeric(df[shot_col], errors="coerce") == result.shot).to_numpy()
        g = df[keep]
        _draw_task(panel, g[x_col].to_numpy(float), g[value_col].to_numpy(float), result,
                   x_label)
        panel.set_ylabel(result.metric, fontsize=8)
    for panel in axes[len(items):]:
        panel.set_visible(False)
    axes[0].legend(fontsize=6, loc="upper left")
    if created:
        fig.tight_layout()
    return fig


def plot_idea_timeline(
    attempts_df: pd.DataFrame, ideas_df: pd.DataFrame, *, ax: Sequence[Axes] | None = None,
) -> Figure:
    """Each idea's attempts: value against the compute (FLOPs) it was tried at, in the order
    tried, with its threshold; passed attempts filled, failed ones hollow. Draws on `ax` (one
    Axes per idea; else a new figure, one row per idea) and returns the Figure.

    attempts_df: idea_id, flops, value, passed, created_at. ideas_df: id, title, threshold,
    direction ("above" | "below"), status.
    """
    for col in ("idea_id", "flops", "value", "passed", "created_at"):
        if col not in attempts_df.columns:
            raise DataError(f"attempts table lacks column {col!r}")
    for col in ("id", "title", "threshold", "direction", "status"):
        if col not in ideas_df.columns:
            raise DataError(f"ideas table lacks column {col!r}")
    ideas = ideas_df.sort_values("id")
    n = max(len(ideas), 1)
    fig, axes, created = figure_axes(ax, len(ideas), figsize=(7.0, 2.6 * n), nrows=n, dpi=130)
    for panel, idea in zip(axes, ideas.itertuples(index=False), strict=False):
        att = attempts_df[attempts_df["idea_id"] == idea.id].sort_values("created_at")
        panel.axhline(float(idea.threshold), color="#e76f51", ls="--", lw=1,
                   label=f"threshold ({idea.direction}) {fmt_number(float(idea.threshold))}")
        if len(att):
            flops = att["flops"].astype(float).to_numpy()
            vals = att["value"].astype(float).to_numpy()
            passed = att["passed"].astype(bool).to_numpy()
            ok = np.isfinite(flops) & (flops > 0)
            panel.plot(flops[ok], vals[ok], color="#264653", lw=0.8, alpha=0.6)
            panel.scatter(flops[ok & passed], vals[ok & passed], color="#2a9d8f", s=36,
                       zorder=3, label="passed")
            panel.scatter(flops[ok & ~passed], vals[ok & ~passed], facecolors="none",
                       edgecolors="#9b2226", s=36, zorder=3, label="not yet")
            for i, (fx, vy) in enumerate(zip(flops[ok], vals[ok], strict=True), start=1):
                panel.annotate(str(i), (fx, vy), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
            if ok.any():
                panel.set_xscale("log")
                label_log_axis(panel.xaxis)
        else:
            panel.text(0.5, 0.5, "no attempts yet", transform=panel.transAxes, ha="center",
                    va="center", fontsize=9, color="#777777")
        panel.set_title(f"#{idea.id} {idea.title} — {idea.status}", fontsize=9)
        panel.set_ylabel("value")
        panel.grid(alpha=0.3, lw=0.4)
        panel.legend(fontsize=7, loc="best")
    axes[max(len(ideas), 1) - 1].set_xlabel(
        "compute of the checkpoint tried (FLOPs); numbers = order tried")
    if created:
        fig.tight_layout()
    return fig
