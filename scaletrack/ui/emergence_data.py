"""The emergence view's answer: one curve per (task, metric, shot), a page at a time.

The curves, their classes, crossings and fitted sigmoids come from `analysis.classify`
(`eval_points`, `classify_groups` with the shot column), exactly as `scaletrack emergence`
computes them; this module only pages them and shapes JSON. A page classifies only its own
curves; each curve's answer is kept in memory keyed by its points, so paging back, or a
second browser, costs nothing.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scaletrack.errors import DataError

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

N_BOOTSTRAP = 100
DEFAULT_PAGE = 12
MAX_PAGE = 500
_CACHE_SIZE = 4096
_lock = threading.Lock()
_cache: OrderedDict[tuple, dict[str, Any]] = OrderedDict()


def _floats(values: Any) -> list[float | None]:
    arr = np.asarray(values, dtype=float)
    return [float(v) if math.isfinite(v) else None for v in arr]


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _digest(part: pd.DataFrame) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(part["C"].to_numpy(float)).tobytes())
    h.update(np.ascontiguousarray(part["value"].to_numpy(float)).tobytes())
    return h.hexdigest()


def _entry(task: str, metric: str, shot: int | None, part: pd.DataFrame,
           result: Any | None, note: str | None) -> dict[str, Any]:
    part = part.sort_values("C", kind="stable")
    entry: dict[str, Any] = {
        "task": task, "metric": metric, "shot": shot, "C": _floats(part["C"]),
        "value": _floats(part["value"]), "run_key": [None if k is None or k != k else str(k)
                                                     for k in part["run_key"]],
        "label": "-", "crossing": None, "crossing_lo": None, "crossing_hi": None,
        "threshold": None, "reason": note, "emergent": None, "curve": None,
    }
    if result is None:
        return entry
    entry.update(label=result.label, crossing=_num(result.crossing),
                 crossing_lo=_num(result.crossing_ci95[0]),
                 crossing_hi=_num(result.crossing_ci95[1]), threshold=_num(result.threshold),
                 reason=result.reason, emergent=bool(result.emergent))
    if result.fit is not None:
        c = part["C"].to_numpy(float)
        grid = np.geomspace(c.min(), c.max() * 100, 100)
        band = result.fit.predict_interval(grid, kind="confidence")
        lo, hi = band["lo"].to_numpy(), band["hi"].to_numpy()
        entry["curve"] = {"C": _floats(grid), "value": _floats(result.fit.predict(grid)),
                          "lo": _floats(lo), "hi": _floats(hi), "x_max": float(c.max())}
    return entry


def emergence(
    store: StoreLike, *, offset: int = 0, limit: int | None = DEFAULT_PAGE,
    search: str | None = None, should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Curves (task, metric, shot) of the evals table, sorted, filtered by `search` (a part of
    the task name); `groups` lists every matching curve (task, metric, shot, points), `tasks`
    holds the page [offset, offset + limit) with values against compute C (FLOPs), the
    fitted floored sigmoid with its 95 % band, the class (past / near / far) and the
    predicted crossing. limit None: every curve (the offline report)."""
    from scaletrack.analysis.classify import Cancelled, classify_groups, eval_points

    if offset < 0 or (limit is not None and not 1 <= limit <= MAX_PAGE):
        raise DataError(f"page offset must be >= 0 and limit between 1 and {MAX_PAGE}")
    pts = eval_points(store.evals())
    if pts.empty:
        return {"total": 0, "offset": offset, "limit": limit, "groups": [], "tasks": []}
    if search:
        pts = pts[pts["task"].str.lower().str.contains(search.lower(), regex=False)]
    pts = pts.assign(_shot=pts["n_shot"].fillna(-1).astype(int))
    grouped = pts.groupby(["task", "metric", "_shot"], sort=True)
    keys = list(grouped.groups)
    groups = [{"task": t, "metric": m, "shot": None if s < 0 else int(s),
               "points": int(len(grouped.groups[(t, m, s)]))} for t, m, s in keys]
    page = keys[offset:] if limit is None else keys[offset:offset + limit]
    tasks = []
    for t, m, s in page:
        if should_stop is not None and should_stop():
            raise Cancelled
        part = grouped.get_group((t, m, s))
        key = (store.url, t, m, s, _digest(part))
        with _lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
        if hit is None:
            hit = _classify_one(classify_groups, part, t, m, None if s < 0 else int(s))
            with _lock:
                _cache[key] = hit
                while len(_cache) > _CACHE_SIZE:
                    _cache.popitem(last=False)
        tasks.append(hit)
    return {"total": len(keys), "offset": offset, "limit": limit, "groups": groups,
            "tasks": tasks}


def _classify_one(classify_groups: Any, part: pd.DataFrame, task: str, metric: str,
                  shot: int | None) -> dict[str, Any]:
    from scaletrack.errors import ScaletrackError

    try:
        res = classify_groups(part, shot_col="n_shot", n_bootstrap=N_BOOTSTRAP)
    except (ScaletrackError, ValueError) as exc:
        return _entry(task, metric, shot, part, None, str(exc))
    if not res:
        return _entry(task, metric, shot, part, None,
                      "looks like a loss, not a capability: not classified")
    return _entry(task, metric, shot, part, next(iter(res.values())), None)
