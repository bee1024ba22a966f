"""One run's loss curves: the wide step table from the store's long metrics, and its figure."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CURVE_METRICS = ("train/loss", "val/loss", "tokens")
CURVE_COLUMNS = ["step", "tokens", "train/loss", "val/loss"]


def loss_curves(metrics: pd.DataFrame) -> pd.DataFrame:
    """Wide table step | tokens | train/loss | val/loss (nats/token) from a long metrics frame
    (columns step, name, value and tokens, as `Store.metrics` returns).

    tokens (tokens seen by that step) come from the tokens each metric row was logged with,
    whatever wrote the run (the built-in trainer, `scaletrack.init` + `log`, a command cell,
    an import); a metric named "tokens" fills steps whose rows carry none. Missing: <NA>.
    """
    if metrics.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    wide = metrics.pivot_table(index="step", columns="name", values="value", aggfunc="last")
    wide = wide.reset_index()
    for col in ("tokens", "train/loss", "val/loss"):
        if col not in wide.columns:
            wide[col] = float("nan")
    out = wide[CURVE_COLUMNS].copy()
    named = out["tokens"].astype("Float64").round().astype("Int64")
    if "tokens" in metrics.columns:
        logged = metrics.dropna(subset=["tokens"]).groupby("step")["tokens"].max()
        out["tokens"] = out["step"].map(logged).astype("Int64").fillna(named)
    else:
        out["tokens"] = named
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
