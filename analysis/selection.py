"""One point selection for `fit`, `plot` and `backtest` (N params, D tokens, C FLOPs, loss nats).

1. Seeds: runs that differ only by seed are averaged (loss mean over seeds) — `seeds="mean"`;
   `seeds="all"` keeps every run as its own point. Averaging keeps each point's n_seeds and
   seed_log_var (sample variance of log loss over its seeds), from which the fits learn the
   per-run scatter a single new run has (`calibration.seed_scatter`).
2. Learning rates: where runs of the same (N, D) used several learning rates, the one with the
   lowest (seed-averaged) loss is kept — `lr="best"`; `lr="all"` keeps them all (and says so).
3. Compute laws (`compute`, `power_*`) are fitted on the compute-efficient frontier by default
   (`frontier=True`): the loss-vs-C law describes the best loss at each budget, not the mean
   of every allocation tried. Chinchilla and IsoFLOP fits use all selected runs.

`select_points` returns the frame and a one-line description that the CLI prints.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from scaletrack.analysis.isoflop import compute_frontier
from scaletrack.errors import DataError

FRONTIER_FORMS = ("compute", "power_N", "power_D")


def select_points(
    df: pd.DataFrame, form: str, *, lr: str = "best", seeds: str = "mean",
    frontier: bool | None = None, keep: Sequence[str] = (),
) -> tuple[pd.DataFrame, str]:
    """Rows to fit `form` on and a description of how they were chosen. `keep`: further
    columns (e.g. a nominal budget) carried through seed averaging (first value per point)."""
    if lr not in ("best", "all"):
        raise DataError(f"lr selection must be 'best' or 'all', got {lr!r}")
    if seeds not in ("mean", "all"):
        raise DataError(f"seed selection must be 'mean' or 'all', got {seeds!r}")
    data = df.copy()
    notes = [f"{len(data)} runs"]
    keys = [c for c in ("N", "D") if c in data.columns] or ["C"]
    has_lr = "lr" in data.columns and data["lr"].notna().any()
    if seeds == "mean" and "seed" in data.columns and data["seed"].nunique() > 1:
        group = keys + (["lr"] if has_lr else [])
        data = (data.assign(lr=data["lr"].fillna(-1.0)) if has_lr else data)
        carried = {c: (c, "first") for c in keep if c in data.columns and c not in group}
        data = data.assign(_log_loss=np.log(data["loss"].to_numpy(float)))
        data = data.groupby(group, as_index=False).agg(
            loss=("loss", "mean"), C=("C", "mean"), n_seeds=("loss", "size"),
            seed_log_var=("_log_loss", "var"), **carried)
        notes.append(f"seeds averaged -> {len(data)} points (per-run scatter kept for bands)")
    if has_lr and data["lr"].nunique() > 1:
        if lr == "best":
            data = data.loc[data.groupby(keys)["loss"].idxmin()]
            notes.append(f"best of {df['lr'].nunique()} learning rates per (N, D) -> "
                         f"{len(data)} points")
        else:
            notes.append(f"all {df['lr'].nunique()} learning rates kept (mixed)")
    use_frontier = form in FRONTIER_FORMS if frontier is None else frontier
    if use_frontier:
        data = compute_frontier(data)
        notes.append(f"compute frontier -> {len(data)} points")
        if len(data) < 3:
            raise DataError(
                f"the compute frontier has only {len(data)} points; a compute law needs at "
                "least 3 (4 to be identified): train more compute budgets, or fit all points "
                "with --all-points"
            )
    return data, "; ".join(notes)
