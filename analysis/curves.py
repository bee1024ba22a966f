"""One run's loss curves: the wide step table from the store's long metrics, and its figure."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CURVE_METRICS = ("train/loss", "val/loss", "tokens")


def loss_curves(metrics: pd.DataFrame) -> pd.DataFrame:
    """Wide table step | tokens | train/loss | val/loss (nats/token) from a long metrics frame
    (columns step, name, value, as `Store.metrics` returns)."""
    if metrics.empty:
        return pd.DataFrame(columns=["step", "tokens", "train/loss", "val/loss"])
    wide = metrics.pivot_table(index="step", columns="name", values="value", aggfunc="last")
    wide = wide.reset_index()
    for col in ("tokens", "train/loss", "val/loss"):
        if col not in wide.columns:
            wide[col] = float("nan")
    out = wide[["step", "tokens", "train/loss", "val/loss"]].copy()
    out["tokens"] = out["tokens"].astype("Float64").round().astype("Int64")
    return out.sort_values("step").reset_index(drop=True)


def thin_curves(curves: pd.DataFrame, rows: int) -> pd.DataFrame:
    """At most `rows` rows, evenly spread: rows with a validation loss preferred, last kept."""
    with_val = curves[curves["val/loss"].notna()]
    base = with_val if len(with_val) >= 2 else curves
    if len(base) <= rows:
        return base
    idx = sorted({int(round(i * (len(base) - 1) / (rows - 1))) for i in range(rows)})
    return base.iloc[idx]


def plot_loss_curves(curves: pd.DataFrame, *, title: str = "", ax: Axes | None = None
                     ) -> Figure:
    """Train and validation loss (nats/token) against step. Draws on `ax` (else a new figure)
    and returns the Figure; `analysis.figures.save_figure` writes it."""
    from scaletrack.analysis.figures import figure_axes

    fig, (ax,), created = figure_axes(ax, figsize=(6, 4))
    train = curves[curves["train/loss"].notna()]
    val = curves[curves["val/loss"].notna()]
    ax.plot(train["step"], train["train/loss"], label="train", alpha=0.7)
    if not val.empty:
        ax.plot(val["step"], val["val/loss"], "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title)
    ax.legend()
    if created:
        fig.tight_layout()
    return fig
