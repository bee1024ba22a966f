"""The dashboard's answers about one run's evaluations and one sweep's adaptive decisions.

`run_evals`: each (task, metric, shot count) series of a run's checkpoint evaluations, in
step order, for the run view's evaluation chart. `adaptive_steps`: the decisions an adaptive
sweep recorded (`scaletrack.adaptive.decisions`), for the scaling view. Both read the store
through its public readers and write nothing. Units: N parameters, D and tokens in tokens,
FLOPs, widths as fractions of the predicted loss (0.02 = 2 %), losses in nats per token.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scaletrack.errors import DataError
from scaletrack.ui.data import floats, plain

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

STEP_FIELDS = ("step", "action", "reason", "run_key", "size", "N", "D", "cell_flops",
               "spent_flops", "n_points", "width", "band", "prediction", "skipped",
               "created_at")


_lock = threading.Lock()
_by_run: dict[tuple[str, str], dict[str, pd.DataFrame]] = {}  # (store, evals version) -> runs


def _evals_by_run(store: StoreLike) -> dict[str, pd.DataFrame]:
    """The evals table split by run, read once while the store's evals stay the same
    (`evals_version`)."""
    key = (store.url, store.evals_version())
    with _lock:
        if key in _by_run:
            return _by_run[key]
    evals = store.evals()
    split = {str(k): part for k, part in evals.groupby("run_key", sort=False)}
    with _lock:
        _by_run.clear()  # one store version at a time
        _by_run[key] = split
    return split


def run_evals(store: StoreLike, run_key: str) -> dict[str, Any]:
    """The evaluations of `run_key`'s checkpoints, one series per (task, metric, shot
    count): x as checkpoint step and tokens, y the value (stderr where recorded), the
    series ordered by task, metric and shot count and each one by step."""
    if store.get_run(run_key) is None:
        raise DataError(f"no run with key {run_key!r}")
    mine = _evals_by_run(store).get(run_key)
    if mine is None:
        return {"run_key": run_key, "series": []}
    if mine.empty:
        return {"run_key": run_key, "series": []}
    steps = store.checkpoints(run_key)[["id", "step"]].rename(columns={"id": "checkpoint_id"})
    mine = mine.merge(steps, on="checkpoint_id", how="left")
    mine = mine.assign(_shot=mine["n_shot"].astype("Float64").fillna(-1).astype(float))
    mine = mine.sort_values(["task", "metric", "_shot", "step", "tokens"], kind="stable")
    task, metric = mine["task"].to_numpy(object), mine["metric"].to_numpy(object)
    shot = mine["_shot"].to_numpy(float)
    cols = {c: mine[c].to_numpy(dtype=float, na_value=np.nan)
            for c in ("step", "tokens", "value", "stderr")}
    new_group = np.ones(len(mine), bool)
    new_group[1:] = (task[1:] != task[:-1]) | (metric[1:] != metric[:-1]) | (shot[1:] != shot[:-1])
    starts = np.flatnonzero(new_group).tolist() + [len(mine)]
    series = []
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        series.append({
            "task": str(task[a]), "metric": str(metric[a]),
            "shot": None if shot[a] < 0 else int(shot[a]),
            **{c: floats(v[a:b]) for c, v in cols.items()},
        })
    return {"run_key": run_key, "series": series}


def adaptive_steps(store: StoreLike, sweep: str | None) -> dict[str, Any]:
    """The adaptive decisions recorded for `sweep`, oldest first: each step's action and
    cell, the relative 95 % band width at the target after it, the FLOPs spent so far and
    why it stopped; with the run's settings (target compute, width wanted, budget, the full
    grid's FLOPs) from the latest step. No sweep, or none adaptive: no steps."""
    from scaletrack.adaptive import decisions

    if sweep is None:
        return {"sweep": None, "steps": []}
    recorded = decisions(store, sweep)
    steps = [{k: plain(d.get(k)) for k in STEP_FIELDS} for d in recorded]
    last = recorded[-1] if recorded else {}
    stops = [s for s in steps if s["action"] == "stop"]
    return {
        "sweep": sweep, "steps": steps,
        "until_width": plain(last.get("until_width")),
        "target_compute": plain(last.get("target_compute")),
        "budget": plain(last.get("budget")),
        "full_grid_flops": plain(last.get("full_grid_flops")),
        "stopped": stops[-1]["reason"] if stops else None,
        "saved_flops": _saved(last),
    }


def _saved(last: dict[str, Any]) -> float | None:
    """FLOPs of the full grid not spent (None when either is unknown)."""
    full, spent = last.get("full_grid_flops"), last.get("spent_flops")
    if full is None or spent is None or pd.isna(full) or pd.isna(spent):
        return None
    return float(np.maximum(float(full) - float(spent), 0.0))
