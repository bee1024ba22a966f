"""Fit inputs from a store: a sweep's finished runs as the N, D, C, loss frame the fits in
`scaletrack.analysis` take (analysis itself never reads a store)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from scaletrack.errors import DataError

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike


def sweep_points(store: StoreLike, sweep: str) -> pd.DataFrame:
    """Finished runs of `sweep`: N (non-embedding params), D (tokens), C (FLOPs) and loss
    (final, nats/token) as float64, with each run's seed and lr (for the point selection of
    `analysis.selection`), indexed by run_key, sorted by N then D.

    A sweep with no finished run with a final loss is a DataError naming it.
    """
    runs = store.fit_runs(sweep=sweep)  # finished runs; trunks of cooldown branches left out
    if runs.empty:
        raise DataError(f"sweep {sweep!r} has no finished runs in the store")
    frame = runs[["run_key", "N", "D", "C", "seed", "lr", "final_loss"]].rename(
        columns={"final_loss": "loss"}).dropna(subset=["loss"])
    if frame.empty:
        raise DataError(f"sweep {sweep!r} has no finished runs with a final loss")
    for col in ("N", "D", "C", "loss"):
        frame[col] = frame[col].astype("float64")
    return frame.sort_values(["N", "D"], kind="stable").set_index("run_key")
