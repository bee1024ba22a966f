"""The emergence view's answer: one curve per (task, metric, shot), a page at a time.

The curves, their classes, crossings and fitted sigmoids come from `analysis.classify`
(`eval_points`, `classify_groups` with the shot column and the library's
`analysis.emergence.N_BOOTSTRAP` refits), exactly as `scaletrack emergence` computes them;
this module only pages them and shapes JSON.

What it answers is kept at two levels, both keyed by what they were made from:

- in memory: the list of curves per store fingerprint (`evals_version()`: aggregate
  queries, no rows), so an unchanged store is answered without reading its 10^4-10^5 eval
  rows, and each curve's answer per `curve_key` (a hash of its points, the options and the
  analysis code);
- in the store's fit cache: `cache_emergence_view` (called by `scaletrack emergence` on a
  store) saves every curve's answer under its `curve_key` and the list of curves under the
  fingerprint, so the first view after a restart reads them instead of classifying. The
  dashboard itself never writes; a curve the cache lacks is classified here.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scaletrack.errors import DataError

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

DEFAULT_PAGE = 12
MAX_PAGE = 500
CURVE_FORM = "emergence_view"  # fit-cache form of one curve's answer
INDEX_FORM = "emergence_curves"  # fit-cache form of the list of curves at one fingerprint
GRID_POINTS = 100  # points of the drawn sigmoid and band, from the smallest C to 100x the largest
_ENTRY_VERSION = 1  # bumped when an answer's shape changes: older cache entries stop matching
_CACHE_SIZE = 4096  # curve answers kept in memory
_VERSIONS_KEPT = 4  # curve lists kept in memory (one per store fingerprint)
_lock = threading.Lock()
_answers: OrderedDict[str, dict[str, Any]] = OrderedDict()
_curve_lists: OrderedDict[tuple[str, str], _Curves] = OrderedDict()

Curve = tuple[str, str, int | None]  # (task, metric, shot)


@dataclass
class _Curves:
    """The curves of one store fingerprint: (task, metric, shot, points, key) each, sorted;
    `parts` holds their points once the eval rows were read (None when the list came from
    the store's cache)."""

    listing: list[dict[str, Any]]
    parts: dict[Curve, pd.DataFrame] | None


def _floats(values: Any) -> list[float | None]:
    arr = np.asarray(values, dtype=float)
    return [float(v) if math.isfinite(v) else None for v in arr]


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _options() -> dict[str, Any]:
    from scaletrack import __version__
    from scaletrack.analysis.code_version import analysis_code_version
    from scaletrack.analysis.emergence import N_BOOTSTRAP

    return {"n_bootstrap": N_BOOTSTRAP, "seed": 0, "grid": GRID_POINTS,
            "entry": _ENTRY_VERSION, "scaletrack": __version__, "code": analysis_code_version()}


def curve_parts(points: pd.DataFrame) -> dict[Curve, pd.DataFrame]:
    """The points (`analysis.classify.eval_points`) of each (task, metric, shot) curve, sorted
    by C (stable), in the view's order: by task, metric, then shot (no shot count first)."""
    if points.empty:
        return {}
    shots = pd.to_numeric(points["n_shot"], errors="coerce").fillna(-1).astype(int)
    order = np.lexsort((points["C"].to_numpy(float), shots.to_numpy(),
                        points["metric"].astype(str).to_numpy(),
                        points["task"].astype(str).to_numpy()))  # stable: ties keep row order
    pts = points.iloc[order]
    task, metric = pts["task"].astype(str).to_numpy(), pts["metric"].astype(str).to_numpy()
    shot = shots.to_numpy()[order]
    new = np.ones(len(pts), dtype=bool)
    new[1:] = (task[1:] != task[:-1]) | (metric[1:] != metric[:-1]) | (shot[1:] != shot[:-1])
    starts = np.flatnonzero(new).tolist()
    out: dict[Curve, pd.DataFrame] = {}
    for a, b in zip(starts, [*starts[1:], len(pts)], strict=True):
        out[(task[a], metric[a], None if shot[a] < 0 else int(shot[a]))] = pts.iloc[a:b]
    return out


def curve_key(curve: Curve, part: pd.DataFrame) -> str:
    """The fit-cache key of a curve's answer: a hash of its points (C in FLOPs and value as
    exact float64 bytes, run keys; in the order of `curve_parts`), its name and the view's
    options (bootstrap refits, seed, scaletrack's version, a hash of the analysis code)."""
    from scaletrack.store import fit_cache_key

    task, metric, shot = curve
    h = hashlib.blake2b(digest_size=32)
    for column in ("C", "value"):
        h.update(np.ascontiguousarray(part[column].to_numpy(float)).tobytes())
    h.update("\x1f".join("" if k is None or k != k else str(k)
                         for k in part["run_key"].tolist()).encode())
    return fit_cache_key(CURVE_FORM, {"points": [len(part), h.hexdigest()]},
                         {**_options(), "task": task, "metric": metric, "shot": shot})


def _index_key(version: str) -> str:
    from scaletrack.store import fit_cache_key

    return fit_cache_key(INDEX_FORM, {"evals_version": [version]}, _options())


def curve_entry(curve: Curve, part: pd.DataFrame, result: Any | None,
                note: str | None) -> dict[str, Any]:
    """A curve's answer as JSON data: its points against C (FLOPs), and from `result` (a
    `TaskClassification`) its class, crossing with 95 % interval, bar, and the fitted
    sigmoid with its 95 % confidence band on `GRID_POINTS` points; `note` when unclassified."""
    task, metric, shot = curve
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
        grid = np.geomspace(c.min(), c.max() * 100, GRID_POINTS)
        band = result.fit.predict_interval(grid, kind="confidence")
        lo, hi = band["lo"].to_numpy(), band["hi"].to_numpy()
        entry["curve"] = {"C": _floats(grid), "value": _floats(result.fit.predict(grid)),
                          "lo": _floats(lo), "hi": _floats(hi), "x_max": float(c.max())}
    return entry


def classify_curve(curve: Curve, part: pd.DataFrame) -> dict[str, Any]:
    """Classify one curve as `scaletrack emergence` does (`classify_groups` with the shot
    column and `N_BOOTSTRAP` refits) and shape its answer; a curve that cannot be classified
    (a loss-like metric, too few points) gets the reason as its note."""
    from scaletrack.analysis.classify import classify_groups
    from scaletrack.analysis.emergence import N_BOOTSTRAP
    from scaletrack.errors import ScaletrackError

    try:
        res = classify_groups(part, shot_col="n_shot", n_bootstrap=N_BOOTSTRAP)
    except (ScaletrackError, ValueError) as exc:
        return curve_entry(curve, part, None, str(exc))
    if not res:
        why = next(iter(res.left_out_reasons.values()), "a loss")
        return curve_entry(curve, part, None, f"not classified: {why}")
    return curve_entry(curve, part, next(iter(res.values())), None)


def _listing(parts: Mapping[Curve, pd.DataFrame]) -> list[dict[str, Any]]:
    return [{"task": t, "metric": m, "shot": s, "points": len(part), "key": None}
            for (t, m, s), part in parts.items()]


def _read_parts(store: StoreLike) -> dict[Curve, pd.DataFrame]:
    from scaletrack.analysis.classify import eval_points

    return curve_parts(eval_points(store.evals()))


def _curves(store: StoreLike, version: str) -> _Curves:
    """The curve list of the store at `version`: from memory, else the store's cache, else
    the eval rows."""
    mem = (store.url, version)
    with _lock:
        found = _curve_lists.get(mem)
        if found is not None:
            _curve_lists.move_to_end(mem)
            return found
    payload = store.cached_fit(_index_key(version))
    listing = payload.get("curves") if payload is not None else None
    if isinstance(listing, list) and all(isinstance(g, dict) and "key" in g for g in listing):
        curves = _Curves(listing=listing, parts=None)
    else:
        parts = _read_parts(store)
        curves = _Curves(listing=_listing(parts), parts=parts)
    with _lock:
        _curve_lists[mem] = curves
        while len(_curve_lists) > _VERSIONS_KEPT:
            _curve_lists.popitem(last=False)
    return curves


def _remember(key: str, entry: dict[str, Any]) -> None:
    with _lock:
        _answers[key] = entry
        while len(_answers) > _CACHE_SIZE:
            _answers.popitem(last=False)


def _answer(store: StoreLike, curves: _Curves, item: dict[str, Any]) -> dict[str, Any]:
    """One curve's answer: from memory, else the store's cache, else classified now."""
    curve: Curve = (item["task"], item["metric"], item["shot"])
    key = item["key"]
    if key is None and curves.parts is not None:
        key = item["key"] = curve_key(curve, curves.parts[curve])
    if key is not None:
        with _lock:
            hit = _answers.get(key)
            if hit is not None:
                _answers.move_to_end(key)
                return hit
        stored = store.cached_fit(key)
        if stored is not None and stored.get("task") == curve[0]:
            _remember(key, stored)
            return stored
    if curves.parts is None:  # the list came from the cache, this curve's answer did not
        curves.parts = _read_parts(store)
    part = curves.parts.get(curve)
    if part is None:  # changed since the fingerprint was read: the next request re-lists
        part = pd.DataFrame({"C": [], "value": [], "run_key": [], "n_shot": []})
        return curve_entry(curve, part, None, "changed while being read; reload")
    entry = classify_curve(curve, part)
    _remember(key or curve_key(curve, part), entry)
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
    if offset < 0 or (limit is not None and not 1 <= limit <= MAX_PAGE):
        raise DataError(f"page offset must be >= 0 and limit between 1 and {MAX_PAGE}")
    curves = _curves(store, store.evals_version())
    listing = curves.listing
    if search:
        needle = search.lower()
        listing = [g for g in listing if needle in str(g["task"]).lower()]
    page = listing[offset:] if limit is None else listing[offset:offset + limit]
    tasks = []
    for item in page:
        if should_stop is not None and should_stop():
            from scaletrack.analysis.classify import Cancelled

            raise Cancelled
        tasks.append(_answer(store, curves, item))
    groups = [{k: g[k] for k in ("task", "metric", "shot", "points")} for g in listing]
    return {"total": len(listing), "offset": offset, "limit": limit, "groups": groups,
            "tasks": tasks}


def cache_emergence_view(store: StoreLike, version: str, points: pd.DataFrame,
                         results: Mapping[tuple[Any, ...], Any] | None = None, *,
                         complete: bool = True) -> int:
    """Save the emergence view's answer of every curve of `points` in the store's fit cache
    (`Store.save_fit(..., key=curve_key)`) and, when `complete` (the points are all of the
    store's evals), the list of curves under `version`; returns how many answers were saved
    (those the cache holds already are skipped).

    version: `store.evals_version()` read *before* the eval rows behind `points`
    (`eval_points`), so a list is never filed under a fingerprint newer than its rows.
    results: `classify_groups(points, shot_col="n_shot", n_bootstrap=N_BOOTSTRAP)` with
    every other option at its default, when already computed (curves missing from it are
    classified here). Called by `scaletrack emergence --store`; the dashboard only reads.
    """
    parts = curve_parts(points)
    listing = _listing(parts)
    saved = 0
    for item, (curve, part) in zip(listing, parts.items(), strict=True):
        key = item["key"] = curve_key(curve, part)
        if store.cached_fit(key) is not None:
            continue
        result = None if results is None else results.get(curve)
        entry = (curve_entry(curve, part, result, None) if result is not None
                 else classify_curve(curve, part))
        shot = "" if curve[2] is None else f" · {curve[2]}-shot"
        store.save_fit(CURVE_FORM, entry, key=key,
                       label=f"emergence view: {curve[0]} · {curve[1]}{shot}")
        saved += 1
    if complete:
        index = _index_key(version)
        if store.cached_fit(index) is None:
            store.save_fit(INDEX_FORM, {"curves": listing}, key=index,
                           label=f"emergence view: the list of curves ({len(listing)})")
    return saved
