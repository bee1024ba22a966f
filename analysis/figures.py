"""Figures: where a plot draws, and how a drawn figure is saved.

Every plot in scaletrack takes `ax=` (a matplotlib Axes, or one Axes per panel for the
multi-panel ones) and returns the Figure it drew on, as matplotlib users expect in a
notebook; without `ax` it draws on a new Figure that no pyplot window tracks. Saving is a
separate, optional step: `save_figure(fig, "loss.png")` writes loss.png and loss.svg.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaletrack.errors import DataError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 150  # pixels per inch of the PNG for figures scaletrack creates


def figure_axes(
    ax: Axes | Sequence[Axes] | None, panels: int = 1, *, figsize: tuple[float, float],
    nrows: int = 1, ncols: int = 1, dpi: float = DPI, sharex: bool = False,
) -> tuple[Figure, list[Axes], bool]:
    """(figure, axes, created): the caller's Axes when `ax` is given (one per panel), else a
    new Figure with an nrows x ncols grid. A wrong `ax` is a DataError naming what is wrong."""
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    if ax is None:
        fig = Figure(figsize=figsize, dpi=dpi)
        grid = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex)
        return fig, list(grid.flat), True
    given = [ax] if isinstance(ax, Axes) else list(_flat(ax))
    if not all(isinstance(a, Axes) for a in given):
        raise DataError("ax must be a matplotlib Axes or a sequence of Axes")
    if len(given) < panels:
        raise DataError(f"this plot draws {panels} panel(s); ax= holds {len(given)} Axes")
    root = given[0].get_figure(root=True)
    if not isinstance(root, Figure):
        raise DataError("ax must belong to a matplotlib Figure")
    return root, given, False


def _flat(items: Any) -> list[Any]:
    out: list[Any] = []
    for item in items.flat if hasattr(items, "flat") else items:
        out.extend(_flat(item) if isinstance(item, (list, tuple)) else [item])
    return out


def save_figure(fig: Figure, path: str | Path, *, dpi: float | str = "figure") -> list[Path]:
    """Write `fig` as PNG and SVG at `path` (`loss.png`, `loss.svg` or `loss` all give
    loss.png + loss.svg); return the paths, the one named by `path` first.

    Each file is written to a temporary name beside it and renamed into place, so a reader
    never sees half a figure. SVG text stays text. `dpi` applies to the PNG (default: the
    figure's own). A folder or file that cannot be written is a DataError.
    """
    import matplotlib

    path = Path(path)
    base = path.with_suffix("") if path.suffix.lower() in (".png", ".svg") else path
    outs = [base.with_suffix(".png"), base.with_suffix(".svg")]
    if path.suffix.lower() == ".svg":
        outs.reverse()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            for out in outs:
                fmt = out.suffix[1:]
                tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
                try:
                    if fmt == "png":
                        fig.savefig(tmp, format=fmt, bbox_inches="tight", dpi=dpi)
                    else:
                        fig.savefig(tmp, format=fmt, bbox_inches="tight")
                    os.replace(tmp, out)
                finally:
                    tmp.unlink(missing_ok=True)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot write the figure {path}: {exc}") from None
    return outs
