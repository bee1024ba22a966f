"""Saving figures: every plot in scaletrack writes a PNG and an SVG beside it.

The one place that decides file names, folders and formats, so every figure command
behaves the same: `loss.png`, `loss.svg` or `loss` all give loss.png + loss.svg.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaletrack.errors import DataError


def save_figure(fig: Any, path: str | Path, *, dpi: float | None = None) -> list[Path]:
    """Write `fig` (a matplotlib Figure) as PNG and SVG at `path`; close it; return the paths.

    The file named by `path` comes first in the result. `dpi` applies to the PNG (default:
    matplotlib's savefig.dpi). A folder or file that cannot be written is a DataError.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    base = path.with_suffix("") if path.suffix.lower() in (".png", ".svg") else path
    outs = [base.with_suffix(".png"), base.with_suffix(".svg")]
    if path.suffix.lower() == ".svg":
        outs.reverse()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for out in outs:
            png = out.suffix == ".png"
            fig.savefig(out, bbox_inches="tight", **({"dpi": dpi} if png and dpi else {}))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot write the figure {path}: {exc}") from None
    finally:
        plt.close(fig)
    return outs
