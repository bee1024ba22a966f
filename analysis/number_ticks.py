"""Tick labels written by scaletrack's one number rule (`scaletrack.number_format`).

Every count axis and colour bar of every figure (N parameters, D tokens, C FLOPs) labels its
ticks "1e8", "3e8", "1e9" — the same text the CLI and the dashboard print for those values —
and loss axes "2.5", "3". `LogNumberFormatter` keeps matplotlib's choice of which log ticks
carry a label (every decade; minor ticks only where the axis spans few decades) and changes
only how a label is written.
"""

from __future__ import annotations

from matplotlib.axis import Axis
from matplotlib.ticker import FuncFormatter, LogFormatter

from scaletrack.number_format import fmt_number


class LogNumberFormatter(LogFormatter):
    """Log-axis tick labels by `fmt_number`; which ticks are labelled is LogFormatter's rule."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return fmt_number(x) if super().__call__(x, pos) else ""


def number_formatter() -> FuncFormatter:
    """A formatter that labels every tick by `fmt_number` (linear axes, loss axes)."""
    return FuncFormatter(lambda value, _pos: fmt_number(value))


def label_log_axis(axis: Axis) -> None:
    """Major and minor tick labels of a log-scaled `axis` (ax.xaxis, ax.yaxis, or a colour
    bar's cbar.ax.yaxis) written by `fmt_number`, so a colour bar never mixes styles."""
    axis.set_major_formatter(LogNumberFormatter())
    axis.set_minor_formatter(LogNumberFormatter())
