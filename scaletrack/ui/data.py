"""What the dashboard shows, as JSON-able dicts: the answers of the `/api/...` routes.

Every function takes an opened (read-only) Store and reads through its public readers, the
analysis fits and the ideas registry; none writes. Units: N parameters, D tokens, C FLOPs,
losses in nats per token, wall time in seconds since the run's first logged step.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scaletrack.errors import DataError, ScaletrackError
from scaletrack.number_format import fmt_number
from scaletrack.ui.downsample import downsample_indices

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

RUN_LIST_COLUMNS = (
    "run_key", "name", "sweep", "family", "status", "N", "D", "C", "seed", "lr", "final_loss",
    "attempts", "created_at", "updated_at", "tags", "role", "parent_run_key", "config",
)
GROUP_FIELDS = ("N", "D", "lr", "seed", "sweep", "family", "status", "role")
SORTABLE = ("run_key", "name", "sweep", "family", "status", "role", "N", "D", "C", "seed",
            "lr", "final_loss", "attempts", "updated_at", "created_at")
MAX_PAGE = 1000
DEFAULT_POINTS = 1000
MAX_POINTS = 20_000
MAX_SCATTER = 20_000  # points drawn on the scaling chart (every run is fitted)


def plain(value: Any) -> Any:
    """`value` as plain JSON: numpy scalars unwrapped, NaN/inf -> None, timestamps -> ISO."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        return [plain(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value if isinstance(value, str) else str(value)


def floats(values: Any) -> list[float | None]:
    """`values` as a list of floats, non-finite ones as None (JSON null)."""
    arr = np.asarray(values, dtype=float)
    return [float(v) if math.isfinite(v) else None for v in arr]


# ------------------------------------------------------------------------------ sweeps, runs


def _tags(row: Mapping[str, Any]) -> list[str]:
    """A run's tags (the store's `tags` column: a list per run, set by `scaletrack tag`)."""
    raw = row.get("tags")
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return []
    return [str(t) for t in raw]


def sweeps_summary(store: StoreLike) -> dict[str, Any]:
    """Sweeps with their run counts per status; runs outside any sweep are under null
    (counted in the database)."""
    counts = store.status_counts_by_sweep()
    sweeps = store.sweeps()
    names = list(sweeps["name"]) if "name" in sweeps.columns else []
    out = []
    for name in names + [k for k in counts if k not in names]:
        by_status = counts.get(name, {})
        out.append({"name": name, "runs": sum(by_status.values()), "by_status": by_status})
    return {"sweeps": out, "total_runs": sum(sum(v.values()) for v in counts.values())}


def parse_where(items: Sequence[str]) -> list[tuple[str, str]]:
    """`field=value` filters (field: a run column or a dotted config path) as pairs."""
    out = []
    for item in items:
        field, sep, value = item.partition("=")
        if not sep or not field.strip():
            raise DataError(f"filter {item!r} is not of the form field=value")
        out.append((field.strip(), value.strip()))
    return out


def runs_page(
    store: StoreLike,
    *,
    sweep: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    where: Sequence[tuple[str, str]] = (),
    search: str | None = None,
    sort: str = "created_at",
    descending: bool = False,
    group: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> dict[str, Any]:
    """One page of runs after filtering and sorting; with `group`, per-group summaries of
    every matching run (count, statuses, best and mean final loss in nats). Filtering,
    sorting, grouping and paging all happen in the database (`store.run_pages`)."""
    from scaletrack.store.errors import StoreError
    from scaletrack.store.run_pages import RunFilter

    if sort not in SORTABLE:
        raise DataError(f"cannot sort runs by {sort!r} (one of {', '.join(SORTABLE)})")
    if group is not None and group not in GROUP_FIELDS and not group.startswith("config."):
        raise DataError(f"cannot group runs by {group!r} (one of {', '.join(GROUP_FIELDS)}, "
                        "or config.<dotted path>)")
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise DataError(f"page offset must be >= 0 and limit between 1 and {MAX_PAGE}")
    try:
        found = store.runs_page(RunFilter(sweep, status, tag, search, tuple(where)),
                         sort=sort, descending=descending, group=group, offset=offset,
                         limit=limit)
    except StoreError as exc:
        raise DataError(str(exc)) from None
    rows = [{col: plain(rec.get(col)) for col in RUN_LIST_COLUMNS} for rec in found["rows"]]
    return {
        "total": found["total"], "offset": offset, "limit": limit,
        "columns": list(RUN_LIST_COLUMNS), "rows": rows, "group": group,
        "groups": plain(found["groups"]) if found["groups"] is not None else None,
        "statuses": found["statuses"], "tags": found["tags"],
    }


def run_detail(store: StoreLike, run_key: str) -> dict[str, Any]:
    """A run: its row, config, checkpoints, the metric names it logged and its flags."""
    run = store.get_run(run_key)
    if run is None:
        raise DataError(f"no run with key {run_key!r}")
    rec = dataclasses.asdict(run)
    counts = store.metric_counts(run_key)
    ckpts = store.checkpoints(run_key)
    ckpt_cols = ["id", "kind", "N", "tokens", "flops", "step", "path", "sha256", "created_at"]
    # by step (numerically, unknown steps last), then by name (an import's shot count), then id
    ckpts = ckpts.sort_values(["step", "path", "id"], na_position="last", kind="stable")
    return {
        "run": {k: plain(v) for k, v in rec.items() if k != "config"},
        "tags": _tags(rec),
        "config": plain(rec.get("config") or {}),
        "metrics": [{"name": n, "rows": int(c)} for n, c in sorted(counts.items())],
        "checkpoints": [plain(r) for r in ckpts[ckpt_cols].to_dict("records")],
        "diverged": rec.get("status") == "diverged",
        "error": plain(rec.get("error")),
    }


def _flops_per_token(run: Any) -> float | None:
    c, d = run.C, run.D
    if c is None or d is None or not d or not math.isfinite(float(c)):
        return None
    return float(c) / float(d)


def _axes(full: Mapping[str, np.ndarray], ix: np.ndarray) -> dict[str, list]:
    """The x values of the points `ix` on every axis (steps as integers)."""
    return {k: (v[ix].tolist() if k == "step" else floats(v[ix])) for k, v in full.items()}


def metric_series(
    store: StoreLike, run_keys: Sequence[str], name: str, *, points: int = DEFAULT_POINTS
) -> dict[str, Any]:
    """Each run's `name` curve, downsampled to at most `points` points, with every x axis:
    step, tokens, flops (tokens · C/D), wall_time (s since the first row). Spikes (the
    `spike` metric) and non-finite values (divergence) are returned as steps to mark."""
    if not run_keys:
        raise DataError("name at least one run (run=KEY)")
    if not 3 <= points <= MAX_POINTS:
        raise DataError(f"points must be between 3 and {MAX_POINTS}")
    series = []
    for key in run_keys:
        run = store.get_run(key)
        if run is None:
            raise DataError(f"no run with key {key!r}")
        frame = store.metrics(run_keys=[key], names=[name, "spike"])
        curve = frame[frame["name"] == name]
        spike_steps = frame.loc[frame["name"] == "spike", "step"].to_numpy(np.int64)
        step = curve["step"].to_numpy(np.int64)
        value = curve["value"].to_numpy(float)
        tokens = curve["tokens"].to_numpy(dtype=float, na_value=np.nan)
        wall = curve["wall_time"].to_numpy(float)
        finite = np.isfinite(value)
        bad_steps = step[~finite]
        idx_finite = np.flatnonzero(finite)
        keep = idx_finite[downsample_indices(step[finite].astype(float), value[finite], points)]
        fpt = _flops_per_token(run)
        wall0 = np.nanmin(wall) if np.isfinite(wall).any() else np.nan
        spike_idx = np.flatnonzero(np.isin(step, spike_steps) & finite)
        sel = np.union1d(keep, spike_idx)  # a spike always survives downsampling

        full = {
            "step": step, "tokens": tokens,
            "flops": tokens * fpt if fpt else np.full(len(step), np.nan),
            "wall_time": wall - wall0,
        }
        series.append({
            "run_key": key, "name": name, "status": run.status, "n_raw": int(len(value)),
            "n_shown": int(len(sel)), "x": _axes(full, sel), "y": floats(value[sel]),
            "spikes": {"x": _axes(full, spike_idx), "y": floats(value[spike_idx])},
            "nonfinite_steps": bad_steps.tolist(),
            "label": f"{run.name or key[:8]} N={fmt_number(run.N)} D={fmt_number(run.D)}",
        })
    return {"name": name, "points": points, "series": series}


# ------------------------------------------------------------------------------ scaling

_cache_lock = threading.Lock()
_fit_cache: dict[tuple, Any] = {}


def _cached(key: tuple, compute: Any) -> Any:
    """Fits are slow and the store is read-only here: reuse them while the data are equal."""
    with _cache_lock:
        if key in _fit_cache:
            return _fit_cache[key]
    value = compute()
    with _cache_lock:
        if len(_fit_cache) > 64:
            _fit_cache.clear()
        _fit_cache[key] = value
    return value


def scaling_points(store: StoreLike, sweep: str | None = None) -> pd.DataFrame:
    """Finished runs with positive N, D, C and a finite final loss (`scaling_fits`)."""
    from scaletrack.scaling_fits import scaling_points as points

    return points(store, sweep)


def law_curve(fit: Any, x_lo: float, x_hi: float, x_max: float, *,
              points: int = 120) -> dict[str, Any]:
    """The fitted law over [x_lo, x_hi] with its 95 % confidence and prediction bands, both
    from `FitResult.predict_interval` (the calibrated bands the CLI and the plots draw);
    `extrapolate_from`: the largest x fitted (beyond it the curve is an extrapolation)."""
    grid = np.geomspace(x_lo, x_hi, points)
    out: dict[str, Any] = {"x": floats(grid), "y": floats(fit.predict(grid)),
                           "extrapolate_from": float(x_max)}
    if fit.bootstrap_samples():
        conf = fit.predict_interval(grid, kind="confidence")
        pred = fit.predict_interval(grid, kind="prediction")
        out.update(conf_lo=floats(conf["lo"]), conf_hi=floats(conf["hi"]),
                   pred_lo=floats(pred["lo"]), pred_hi=floats(pred["hi"]))
    return out


def _selected(df: pd.DataFrame, form: str) -> tuple[pd.DataFrame, str]:
    """The points a `form` fit uses: the same selection as `scaletrack fit`."""
    from scaletrack.scaling_fits import selected_points

    return selected_points(df, form)


def _power_fit(store: StoreLike, df: pd.DataFrame, x: str) -> dict[str, Any]:
    """L(x) with its bands: from the store's fit cache when these points were fitted before
    (`scaling_fits.power_law`), else fitted here."""
    from scaletrack.analysis.status import degenerate_message
    from scaletrack.scaling_fits import power_law

    try:
        points, how = _selected(df, "compute" if x == "C" else f"power_{x}")
        fit, _, _ = power_law(store, points, x)
    except (ScaletrackError, ValueError) as exc:
        return {"x": x, "status": "failed", "reason": str(exc)}
    if fit.status == "degenerate":
        return {"x": x, "status": "failed", "reason": degenerate_message(fit), "points": how}
    xs = points[x].to_numpy(float)
    curve = law_curve(fit, xs.min() / 1.5, xs.max() * 10, xs.max())
    return {
        "x": x, "status": "ok", "form": fit.form, "params": plain(dict(fit.params)),
        "ci95": plain({k: list(v) for k, v in fit.ci95.items()}), "n_points": fit.n_points,
        "curve": curve, "points": how, "_fit": fit,
        "label": f"L({x}) = {fmt_number(fit.params['E'])} + {fmt_number(fit.params['a'])}·"
                 f"{x}^-{fmt_number(fit.params['alpha'])}",
    }


def _backtest(store: StoreLike, df: pd.DataFrame) -> dict[str, Any] | None:
    """Fit L(C) on all but the top fifth by compute, predict the held-out runs (the fit from
    the store's cache when these points were back-tested before)."""
    from scaletrack.scaling_fits import BACKTEST_MIN_POINTS, backtest_threshold, compute_backtest

    try:
        points, how = _selected(df, "compute")
    except (ScaletrackError, ValueError) as exc:
        return {"status": "failed", "reason": str(exc)}
    if len(points) < BACKTEST_MIN_POINTS:
        return None
    threshold = backtest_threshold(points)
    try:
        result, _, _ = compute_backtest(store, points, threshold)
    except (ScaletrackError, ValueError) as exc:
        return {"status": "failed", "reason": str(exc)}
    frame = result.frame
    return {
        "status": "ok", "threshold_C": threshold, "points": how, "C": floats(frame["C"]),
        "N": floats(frame["N"]), "D": floats(frame["D"]),
        "loss": floats(frame["loss"]), "predicted": floats(frame["predicted"]),
        "summary": plain(dict(result.summary)),
    }


def _isoflop(df: pd.DataFrame) -> dict[str, Any]:
    from scaletrack.analysis import isoflop_minima, snap_budgets

    try:
        df, how = _selected(df, "isoflop")
        budgets = snap_budgets(df["C"])
        minima = isoflop_minima(df[["N", "D", "C", "loss"]])
    except (ScaletrackError, ValueError) as exc:
        return {"status": "failed", "reason": str(exc), "profiles": [], "minima": []}
    profiles = []
    for row in minima.to_dict("records"):
        part = df[budgets == row["C"]].sort_values("N")
        grid = np.geomspace(row["N_min"], row["N_max"], 40)
        u = np.log(grid) - row["logN_center"]
        profiles.append({
            "C": row["C"], "N": floats(part["N"]), "loss": floats(part["loss"]),
            "curve_N": floats(grid), "curve_loss": floats(np.polyval(row["coef"], u)),
            "N_opt": row["N_opt"], "loss_opt": row["loss_opt"],
        })
    cols = ["C", "N_opt", "D_opt", "loss_opt", "n_points"]
    answer = {"status": "ok" if profiles else "none", "profiles": plain(profiles), "points": how,
              "minima": plain(minima[cols].to_dict("records") if len(minima) else [])}
    if not profiles:  # why not, in the library's words (it refuses before fitting anything)
        from scaletrack.analysis import fit_isoflop

        try:
            fit_isoflop(df[["N", "D", "C", "loss"]], n_bootstrap=0)
        except (ScaletrackError, ValueError) as exc:
            answer["reason"] = str(exc)
    return answer


def _optimal(df: pd.DataFrame) -> dict[str, Any]:
    """Compute-optimal N and D from a Chinchilla fit L(N, D) over the runs' compute range."""
    from scaletrack.analysis import compute_optimal, fit_chinchilla
    from scaletrack.analysis.status import degenerate_message

    try:
        df, how = _selected(df, "chinchilla")
    except (ScaletrackError, ValueError) as exc:
        return {"status": "failed", "reason": str(exc)}
    try:  # too few points: the library's own rule and words (free parameters + 2)
        fit = fit_chinchilla(df[["N", "D", "C", "loss"]], n_bootstrap=0)
    except (ScaletrackError, ValueError) as exc:
        return {"status": "none", "reason": str(exc), "points": how}
    try:
        c = df["C"].to_numpy(float)
        grid = np.geomspace(c.min(), c.max() * 100, 40)
        table = compute_optimal(fit, grid)
    except (ScaletrackError, ValueError) as exc:
        return {"status": "failed", "reason": str(exc)}
    if not fit.extra.get("converged", True):
        return {"status": "failed", "reason": "the Chinchilla fit did not converge"}
    if fit.status == "degenerate":
        return {"status": "failed", "reason": degenerate_message(fit), "points": how}
    return {
        "status": "ok", "params": plain(dict(fit.params)), "points": how,
        "C": floats(table["C"]), "N_opt": floats(table["N_opt"]),
        "D_opt": floats(table["D_opt"]), "loss_opt": floats(table["loss_opt"]),
    }


def too_few_note(store: StoreLike, sweep: str | None, n: int) -> str:
    """Why the scaling view has nothing to fit, in a researcher's words: no finished run with
    a final loss at all (an evaluation-only import, whose evals the emergence view shows), or
    fewer than the 3 a law needs."""
    if n > 0:
        return (f"only {n} finished run{'s' if n != 1 else ''} with N, D, C and a final loss: "
                "a scaling law needs at least 3")
    where = f"sweep {sweep}" if sweep is not None else "this store"
    if not store.count_runs(sweep=sweep):
        return f"no runs in {where} yet"
    if len(store.checkpoints(kind="external")):
        return (f"no finished runs with a final loss: {where} holds evaluation-only runs "
                "(imported checkpoints and their evals; see the Emergence view)")
    return f"no finished runs with a final loss in {where} yet"


def scaling(store: StoreLike, sweep: str | None = None, *,
            should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Final loss of finished runs against N, D and C, with the compute frontier, a power
    law per axis (confidence and prediction bands), a back-test in C, IsoFLOP profiles and
    their minima. (Compute-optimal N and D, a slower fit, come from `optimal`.)"""
    df = scaling_points(store, sweep)
    shown = df
    if len(df) > MAX_SCATTER:  # the fits use every run; the chart draws an even sample
        shown = df.iloc[np.linspace(0, len(df) - 1, MAX_SCATTER).astype(int)]
    points = {
        "run_key": shown["run_key"].tolist(), "sweep": [plain(s) for s in shown["sweep"]],
        "N": floats(shown["N"]), "D": floats(shown["D"]), "C": floats(shown["C"]),
        "loss": floats(shown["loss"]), "lr": floats(shown["lr"]),
        "seed": [plain(s) for s in shown["seed"]], "total": len(df),
    }
    if len(df) < 3:
        return {"sweep": sweep, "n": len(df), "points": points, "fits": {}, "frontier": None,
                "backtest": None, "isoflop": None, "note": too_few_note(store, sweep, len(df))}
    key = (store.url, sweep, len(df), float(df["loss"].sum()), float(df["C"].sum()))

    def compute() -> dict[str, Any]:
        from scaletrack.analysis import compute_frontier

        frontier = compute_frontier(df[["N", "D", "C", "loss"]])
        fits = {}
        for x in ("N", "D", "C"):
            if should_stop is not None and should_stop():
                raise DataError("the request was abandoned")
            fits[x] = _power_fit(store, df, x)
        return {
            "fits": fits,
            "frontier": {"C": floats(frontier["C"]), "loss": floats(frontier["loss"]),
                         "N": floats(frontier["N"]), "D": floats(frontier["D"])},
            "backtest": _backtest(store, df), "isoflop": _isoflop(df),
        }

    found = _cached(key, compute)
    fits = {x: {k: v for k, v in f.items() if k != "_fit"} for x, f in found["fits"].items()}
    return {"sweep": sweep, "n": len(df), "points": points, **found, "fits": fits}


def predict_at(store: StoreLike, sweep: str | None, x: str, at: float) -> dict[str, Any]:
    """The scaling view's "predict at" box: the fitted L(x) at x = `at` with its 95 %
    confidence and prediction intervals (`FitResult.predict_interval`), and how far beyond
    the largest fitted x that is (decades)."""
    if x not in ("N", "D", "C"):
        raise DataError(f"x must be one of N, D, C, got {x!r}")
    if not (math.isfinite(at) and at > 0):
        raise DataError(f"predict at {x} = {at!r}: a positive number is needed")
    df = scaling_points(store, sweep)
    if len(df) < 3:
        raise DataError(too_few_note(store, sweep, len(df)))
    scaling(store, sweep)  # fits (cached) and the key they are cached under
    key = (store.url, sweep, len(df), float(df["loss"].sum()), float(df["C"].sum()))
    with _cache_lock:
        entry = _fit_cache.get(key)
    found = (entry or {}).get("fits", {}).get(x, {})
    fit = found.get("_fit")
    if fit is None:  # the scaling view's reason (degenerate points, a failed fit)
        reason = found.get("reason")
        raise DataError(f"no L({x}) fit for these runs" + (f": {reason}" if reason else ""))
    conf = fit.predict_interval(np.array([at]), kind="confidence")
    pred = fit.predict_interval(np.array([at]), kind="prediction")
    xs = df[x].to_numpy(float)
    x_max = float(np.max(xs))
    # the law drawn out to the asked x, so the predicted point sits on its curve and bands
    curve = law_curve(fit, min(xs.min() / 1.5, at / 1.5), max(x_max * 10, at * 1.5), x_max)
    return {"x": x, "at": float(at), "loss": plain(float(conf["pred"].iloc[0])), "curve": curve,
            "conf": [plain(conf["lo"].iloc[0]), plain(conf["hi"].iloc[0])],
            "pred": [plain(pred["lo"].iloc[0]), plain(pred["hi"].iloc[0])],
            "decades_beyond": plain(math.log10(at / x_max)) if at > x_max else 0.0,
            "label": f"L({x})"}


def optimal(store: StoreLike, sweep: str | None = None) -> dict[str, Any]:
    """Compute-optimal N (parameters) and D (tokens) against C (FLOPs) from a Chinchilla fit
    L(N, D) on the sweep's finished runs (4,500 starts: seconds on 1,000 runs, then cached)."""
    df = scaling_points(store, sweep)
    if len(df) < 3:  # nothing to fit: say why, not the fitting code's row count
        return {"sweep": sweep, "status": "none", "reason": too_few_note(store, sweep, len(df))}
    key = (store.url, "optimal", sweep, len(df), float(df["loss"].sum()), float(df["C"].sum()))
    return {"sweep": sweep, **_cached(key, lambda: _optimal(df))}


def stored_fits(store: StoreLike, form: str | None = None) -> dict[str, Any]:
    """Fits saved in the store (id, form, sweep, label, params, ci95, n_points, created_at)."""
    fits = store.fits(form)
    rows = []
    for rec in fits.to_dict("records"):
        payload = rec.get("payload") or {}
        rows.append({
            "id": plain(rec["id"]), "form": rec["form"], "sweep": plain(rec["sweep"]),
            "label": plain(rec["label"]), "params": plain(payload.get("params", {})),
            "ci95": plain(payload.get("ci95", {})), "n_points": plain(payload.get("n_points")),
            "created_at": plain(rec["created_at"]),
        })
    return {"fits": rows}


# ------------------------------------------------------------------------------ emergence


def emergence(store: StoreLike, **page: Any) -> dict[str, Any]:
    """Per (task, metric, shot) curve of the evals table: values against compute (FLOPs), the
    fitted floored sigmoid, the class and the predicted crossing (`ui.emergence_data`);
    every curve unless a page (offset, limit, search) is asked for."""
    from scaletrack.ui.emergence_data import emergence as emergence_page

    return emergence_page(store, **{"limit": None, **page})


# ------------------------------------------------------------------------------ ideas


def ideas(store: StoreLike) -> dict[str, Any]:
    """The "not yet" registry: each idea (status, bar, best value, class, predicted crossing
    in FLOPs, whether it is due) and its attempts across scale (N, tokens, FLOPs, value)."""
    from scaletrack.evals.ideas import attempts_table, due_ideas
    from scaletrack.evals.ideas_table import ideas_table

    table = ideas_table(store, outlook=True)  # a pure read: the stored statuses
    due = {i.id for i in due_ideas(store) if i.id is not None}  # stored ideas have ids
    attempts = attempts_table(store)
    rows = []
    for rec in table.to_dict("records"):
        mine = attempts[attempts["idea_id"] == rec["id"]] if len(attempts) else attempts
        rows.append({
            **{k: plain(v) for k, v in rec.items()}, "due": int(rec["id"]) in due,
            "attempts_list": [plain(a) for a in mine.drop(columns=["title"]).to_dict("records")],
        })
    return {"ideas": rows}
