"""What the dashboard shows, as JSON-able dicts: the answers of the `/api/...` routes.

Every function takes an opened (read-only) Store and reads through its public readers, the
analysis fits and the ideas registry; none writes. Units: N parameters, D tokens, C FLOPs,
losses in nats per token, wall time in seconds since the run's first logged step.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scaletrack.errors import DataError, ScaletrackError
from scaletrack.ui.downsample import downsample_indices

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

RUN_LIST_COLUMNS = (
    "run_key", "sweep", "family", "status", "N", "D", "C", "seed", "lr", "final_loss",
    "attempts", "updated_at", "tags", "role",
)
GROUP_FIELDS = ("N", "D", "lr", "seed", "sweep", "family", "status")
SORTABLE = ("run_key", "sweep", "family", "status", "N", "D", "C", "seed", "lr", "final_loss",
            "attempts", "updated_at", "created_at")
MAX_PAGE = 1000
DEFAULT_POINTS = 1000
MAX_POINTS = 20_000
N_BOOTSTRAP = 200


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


def _floats(values: Any) -> list[float | None]:
    arr = np.asarray(values, dtype=float)
    return [float(v) if math.isfinite(v) else None for v in arr]


# ------------------------------------------------------------------------------ sweeps, runs


def _tags(row: Mapping[str, Any]) -> list[str]:
    """A run's tags (the store's `tags` column: a list per run, set by `scaletrack tag`)."""
    raw = row.get("tags")
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return []
    return [str(t) for t in raw]


def _runs_frame(store: StoreLike, sweep: str | None = None) -> pd.DataFrame:
    runs = store.runs(sweep=sweep)
    runs["tags"] = [_tags(r) for r in runs.to_dict("records")]
    return runs


def sweeps_summary(store: StoreLike) -> dict[str, Any]:
    """Sweeps with their run counts per status; runs outside any sweep are under null."""
    runs = store.runs()
    counts: dict[Any, dict[str, int]] = {}
    for sweep, status in zip(runs["sweep"], runs["status"], strict=True):
        key = None if sweep is None or (isinstance(sweep, float) and math.isnan(sweep)) else sweep
        counts.setdefault(key, {}).setdefault(status, 0)
        counts[key][status] += 1
    sweeps = store.sweeps()
    names = list(sweeps["name"]) if "name" in sweeps.columns else []
    out = []
    for name in names + [k for k in counts if k not in names]:
        by_status = counts.get(name, {})
        out.append({"name": name, "runs": sum(by_status.values()), "by_status": by_status})
    return {"sweeps": out, "total_runs": len(runs)}


def _config_value(config: Any, path: str) -> Any:
    value: Any = config
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _matches(value: Any, wanted: str) -> bool:
    """Loose equality between a stored value and the text of a filter."""
    if value is None:
        return wanted in ("", "none", "null")
    if isinstance(value, (list, tuple)):
        return any(_matches(v, wanted) for v in value)
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        try:
            return math.isclose(float(value), float(wanted), rel_tol=1e-9)
        except ValueError:
            return False
    return str(value) == wanted


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
    every matching run (count, statuses, best and mean final loss in nats)."""
    if sort not in SORTABLE:
        raise DataError(f"cannot sort runs by {sort!r} (one of {', '.join(SORTABLE)})")
    if group is not None and group not in GROUP_FIELDS:
        raise DataError(f"cannot group runs by {group!r} (one of {', '.join(GROUP_FIELDS)})")
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise DataError(f"page offset must be >= 0 and limit between 1 and {MAX_PAGE}")
    runs = _runs_frame(store, sweep)
    keep = np.ones(len(runs), dtype=bool)
    if status:
        keep &= (runs["status"] == status).to_numpy()
    if tag:
        keep &= np.array([tag in tags for tags in runs["tags"]], dtype=bool)
    for field, wanted in where:
        if field in runs.columns and field != "config":
            values = runs[field].tolist()
        else:
            values = [_config_value(c, field) for c in runs["config"]]
        keep &= np.array([_matches(v, wanted) for v in values], dtype=bool)
    if search:
        needle = search.lower()
        keep &= np.array([
            needle in str(k).lower() or needle in str(s).lower()
            for k, s in zip(runs["run_key"], runs["sweep"], strict=True)
        ], dtype=bool)
    matched = runs[keep]
    order = [group, sort] if group else [sort]
    matched = matched.sort_values(
        order, ascending=[True, not descending] if group else not descending,
        kind="stable", na_position="last",
    )
    page = matched.iloc[offset:offset + limit]
    rows = [
        {col: plain(rec.get(col)) for col in RUN_LIST_COLUMNS}
        for rec in page.to_dict("records")
    ]
    groups = None
    if group:
        groups = []
        for value, part in matched.groupby(group, dropna=False, sort=True):
            loss = part["final_loss"].to_numpy(float)
            finite = loss[np.isfinite(loss)]
            groups.append({
                "value": plain(value), "count": len(part),
                "by_status": plain(part["status"].value_counts().to_dict()),
                "best_final_loss": plain(finite.min()) if finite.size else None,
                "mean_final_loss": plain(finite.mean()) if finite.size else None,
            })
    return {
        "total": int(len(matched)), "offset": offset, "limit": limit, "columns":
        list(RUN_LIST_COLUMNS), "rows": rows, "group": group, "groups": groups,
        "statuses": plain(runs["status"].value_counts().to_dict()),
        "tags": sorted({t for tags in runs["tags"] for t in tags}),
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
    return {k: (v[ix].tolist() if k == "step" else _floats(v[ix])) for k, v in full.items()}


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
            "n_shown": int(len(sel)), "x": _axes(full, sel), "y": _floats(value[sel]),
            "spikes": {"x": _axes(full, spike_idx), "y": _floats(value[spike_idx])},
            "nonfinite_steps": bad_steps.tolist(),
            "label": f"{key[:8]} N={plain(run.N)} D={plain(run.D)}",
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
    """Finished runs with positive N, D, C and a finite final loss (columns of the runs table
    plus `loss`); trunks of cooldown branches are left out, as in every fit."""
    runs = store.fit_runs(sweep=sweep)
    df = runs.rename(columns={"final_loss": "loss"})
    for col in ("N", "D", "C"):
        df[col] = df[col].to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(df[["N", "D", "C", "loss"]].to_numpy(float)).all(axis=1)
    ok &= (df[["N", "D", "C", "loss"]].to_numpy(float) > 0).all(axis=1)
    return df[ok].reset_index(drop=True)


def _law_curve(fit: Any, x_lo: float, x_hi: float, residuals: np.ndarray) -> dict[str, Any]:
    """The fitted law over [x_lo, x_hi] with 95 % confidence band (bootstrap of the law) and
    95 % prediction band (bootstrap law times a resampled log-residual)."""
    grid = np.geomspace(x_lo, x_hi, 120)
    mid = fit.predict(grid)
    boot = np.asarray(fit.extra.get("bootstrap_params") or [], dtype=float)
    out: dict[str, Any] = {"x": _floats(grid), "y": _floats(mid)}
    if boot.ndim == 2 and len(boot) >= 20:
        names = list(fit.params)
        e, a, alpha = (boot[:, names.index(k)] for k in ("E", "a", "alpha"))
        ok = np.isfinite(e) & np.isfinite(a) & np.isfinite(alpha)
        with np.errstate(over="ignore", invalid="ignore"):
            curves = e[ok, None] + a[ok, None] * grid[None, :] ** (-alpha[ok, None])
        lo, hi = np.nanpercentile(curves, [2.5, 97.5], axis=0)
        # Every bootstrap law times every (up to 100) observed residual factor: residuals
        # are log(pred) - log(obs), so an observation is pred * exp(-residual).
        noise = -residuals[np.linspace(0, residuals.size - 1, min(residuals.size, 100))
                           .astype(int)] if residuals.size else np.zeros(1)
        pred = (curves[:, None, :] * np.exp(noise)[None, :, None]).reshape(-1, grid.size)
        plo, phi = np.nanpercentile(pred, [2.5, 97.5], axis=0)
        out.update(conf_lo=_floats(lo), conf_hi=_floats(hi), pred_lo=_floats(plo),
                   pred_hi=_floats(phi))
    return out


def _selected(df: pd.DataFrame, form: str) -> tuple[pd.DataFrame, str]:
    """The points a `form` fit uses: the same selection as `scaletrack fit` (best learning
    rate per (N, D), seeds averaged, compute laws on the frontier) and its description."""
    from scaletrack.analysis.selection import select_points

    return select_points(df[[c for c in ("N", "D", "C", "loss", "lr", "seed") if c in df]],
                         form)


def _power_fit(df: pd.DataFrame, x: str) -> dict[str, Any]:
    from scaletrack.analysis import fit_power_law
    from scaletrack.analysis.status import degenerate_message

    try:
        points, how = _selected(df, "compute" if x == "C" else f"power_{x}")
        fit = fit_power_law(points, x, n_bootstrap=N_BOOTSTRAP)
    except (ScaletrackError, ValueError) as exc:
        return {"x": x, "status": "failed", "reason": str(exc)}
    if fit.status == "degenerate":
        return {"x": x, "status": "failed", "reason": degenerate_message(fit), "points": how}
    xs = points[x].to_numpy(float)
    curve = _law_curve(fit, xs.min() / 1.5, xs.max() * 10, np.asarray(fit.residuals))
    return {
        "x": x, "status": "ok", "form": fit.form, "params": plain(dict(fit.params)),
        "ci95": plain({k: list(v) for k, v in fit.ci95.items()}), "n_points": fit.n_points,
        "curve": curve, "points": how,
        "label": f"L({x}) = {fit.params['E']:.3g} + {fit.params['a']:.3g}·{x}^-"
                 f"{fit.params['alpha']:.3g}",
    }


def _backtest(df: pd.DataFrame) -> dict[str, Any] | None:
    """Fit L(C) on all but the top fifth by compute, predict the held-out runs."""
    from scaletrack.analysis import backtest

    try:
        points, how = _selected(df, "compute")
    except (ScaletrackError, ValueError) as exc:
        return {"status": "failed", "reason": str(exc)}
    if len(points) < 5:
        return None
    c_sorted = np.sort(points["C"].to_numpy(float))
    threshold = float(c_sorted[int(math.floor(0.8 * len(c_sorted)))])
    try:
        result = backtest(points[["N", "D", "C", "loss"]], "compute", threshold)
    except (ScaletrackError, ValueError) as exc:
        return {"status": "failed", "reason": str(exc)}
    frame = result.frame
    return {
        "status": "ok", "threshold_C": threshold, "points": how, "C": _floats(frame["C"]),
        "N": _floats(frame["N"]), "D": _floats(frame["D"]),
        "loss": _floats(frame["loss"]), "predicted": _floats(frame["predicted"]),
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
            "C": row["C"], "N": _floats(part["N"]), "loss": _floats(part["loss"]),
            "curve_N": _floats(grid), "curve_loss": _floats(np.polyval(row["coef"], u)),
            "N_opt": row["N_opt"], "loss_opt": row["loss_opt"],
        })
    cols = ["C", "N_opt", "D_opt", "loss_opt", "n_points"]
    return {"status": "ok" if profiles else "none", "profiles": plain(profiles), "points": how,
            "minima": plain(minima[cols].to_dict("records") if len(minima) else [])}


def _optimal(df: pd.DataFrame) -> dict[str, Any]:
    """Compute-optimal N and D from a Chinchilla fit L(N, D) over the runs' compute range."""
    from scaletrack.analysis import compute_optimal, fit_chinchilla
    from scaletrack.analysis.status import degenerate_message

    try:
        df, how = _selected(df, "chinchilla")
    except (ScaletrackError, ValueError) as exc:
        return {"status": "failed", "reason": str(exc)}
    n_sizes, n_budgets = df["N"].nunique(), df["D"].nunique()
    if len(df) < 5 or n_sizes < 3 or n_budgets < 3:
        return {"status": "none", "reason": (
            f"a Chinchilla fit needs at least 5 finished runs over 3 or more distinct N and D "
            f"(have {len(df)} runs, {n_sizes} N, {n_budgets} D)")}
    try:
        fit = fit_chinchilla(df[["N", "D", "C", "loss"]], n_bootstrap=0)
        c = df["C"].to_numpy(float)
        grid = np.geomspace(c.min(), c.max() * 100, 40)
        table = compute_optimal(fit, grid)
    except (ScaletrackError, ValueError) as exc:
        return {"status": "failed", "reason": str(exc)}
    if not fit.extra.get("converged", True):
        return {"status": "failed", "reason": "the Chinchilla fit did not converge"}
    if fit.status == "degenerate":
        return {"status": "failed", "reason": degenerate_message(fit), "points": how}
    if max(fit.params["alpha"], fit.params["beta"]) > 2.0:
        return {"status": "failed", "points": how, "reason": (
            f"these runs do not identify L(N, D): fitted exponents alpha = "
            f"{fit.params['alpha']:.3g}, beta = {fit.params['beta']:.3g} (implausible above 2)")}
    return {
        "status": "ok", "params": plain(dict(fit.params)), "points": how,
        "C": _floats(table["C"]), "N_opt": _floats(table["N_opt"]),
        "D_opt": _floats(table["D_opt"]), "loss_opt": _floats(table["loss_opt"]),
    }


def scaling(store: StoreLike, sweep: str | None = None) -> dict[str, Any]:
    """Final loss of finished runs against N, D and C, with the compute frontier, a power
    law per axis (confidence and prediction bands), a back-test in C, IsoFLOP profiles and
    their minima. (Compute-optimal N and D, a slower fit, come from `optimal`.)"""
    df = scaling_points(store, sweep)
    points = {
        "run_key": df["run_key"].tolist(), "sweep": [plain(s) for s in df["sweep"]],
        "N": _floats(df["N"]), "D": _floats(df["D"]), "C": _floats(df["C"]),
        "loss": _floats(df["loss"]), "lr": _floats(df["lr"]),
        "seed": [plain(s) for s in df["seed"]],
    }
    if len(df) < 3:
        return {"sweep": sweep, "n": len(df), "points": points, "fits": {}, "frontier": None,
                "backtest": None, "isoflop": None,
                "note": "fewer than 3 finished runs with N, D, C and a final loss"}
    key = (store.url, sweep, len(df), float(df["loss"].sum()), float(df["C"].sum()))

    def compute() -> dict[str, Any]:
        from scaletrack.analysis import compute_frontier

        frontier = compute_frontier(df[["N", "D", "C", "loss"]])
        return {
            "fits": {x: _power_fit(df, x) for x in ("N", "D", "C")},
            "frontier": {"C": _floats(frontier["C"]), "loss": _floats(frontier["loss"]),
                         "N": _floats(frontier["N"]), "D": _floats(frontier["D"])},
            "backtest": _backtest(df), "isoflop": _isoflop(df),
        }

    return {"sweep": sweep, "n": len(df), "points": points, **_cached(key, compute)}


def optimal(store: StoreLike, sweep: str | None = None) -> dict[str, Any]:
    """Compute-optimal N (parameters) and D (tokens) against C (FLOPs) from a Chinchilla fit
    L(N, D) on the sweep's finished runs (4,500 starts: seconds on 1,000 runs, then cached)."""
    df = scaling_points(store, sweep)
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


def emergence(store: StoreLike) -> dict[str, Any]:
    """Per (task, metric) of the evals table: values against compute (FLOPs), the fitted
    floored sigmoid, the class (past / near / far) and the predicted crossing (FLOPs)."""
    from scaletrack.analysis import classify_tasks, sigmoid_value

    evals = store.evals()
    if evals.empty:
        return {"tasks": []}
    df = evals.copy()
    flops = df["flops"].to_numpy(float)
    approx = 6.0 * df["N"].to_numpy(dtype=float, na_value=np.nan) * df["tokens"].to_numpy(
        dtype=float, na_value=np.nan)
    df["C"] = np.where(np.isfinite(flops) & (flops > 0), flops, approx)
    df = df[np.isfinite(df["C"]) & (df["C"] > 0) & np.isfinite(df["value"])]
    if df.empty:
        return {"tasks": []}
    key = (store.url, "emergence", len(df), float(df["value"].sum()), float(df["C"].sum()))

    def compute() -> list[dict[str, Any]]:
        try:
            table = classify_tasks(df[["task", "metric", "C", "value"]], n_bootstrap=100)
        except (ScaletrackError, ValueError):
            table = pd.DataFrame()
        by_group = {(r["task"], r["metric"]): r for r in table.to_dict("records")}
        tasks = []
        for (task, metric), part in df.groupby(["task", "metric"], sort=True):
            part = part.sort_values("C")
            row = by_group.get((task, metric), {})
            entry: dict[str, Any] = {
                "task": task, "metric": metric, "C": _floats(part["C"]),
                "value": _floats(part["value"]), "run_key": [plain(k) for k in part["run_key"]],
                "label": plain(row.get("label", "-")), "crossing": plain(row.get("crossing")),
                "crossing_lo": plain(row.get("crossing_lo")),
                "crossing_hi": plain(row.get("crossing_hi")),
                "threshold": plain(row.get("threshold")), "reason": plain(row.get("reason")),
                "curve": None,
            }
            if row.get("fit_k") is not None and math.isfinite(float(row["fit_k"])):
                c = part["C"].to_numpy(float)
                grid = np.geomspace(c.min(), c.max() * 100, 100)
                entry["curve"] = {"C": _floats(grid), "value": _floats(sigmoid_value(
                    grid, row["fit_floor"], row["fit_ceil"], row["fit_k"], row["fit_log10_mid"]))}
            tasks.append(entry)
        return tasks

    return {"tasks": _cached(key, compute)}


# ------------------------------------------------------------------------------ ideas


def ideas(store: StoreLike) -> dict[str, Any]:
    """The "not yet" registry: each idea (status, bar, best value, class, predicted crossing
    in FLOPs, whether it is due) and its attempts across scale (N, tokens, FLOPs, value)."""
    from scaletrack.analysis.ideas import ideas_table
    from scaletrack.evals.ideas import attempts_table, due_ideas

    table = ideas_table(store, refresh=False, outlook=True)  # refresh would write statuses
    due = {int(i.id) for i in due_ideas(store)}
    attempts = attempts_table(store)
    rows = []
    for rec in table.to_dict("records"):
        mine = attempts[attempts["idea_id"] == rec["id"]] if len(attempts) else attempts
        rows.append({
            **{k: plain(v) for k, v in rec.items()}, "due": int(rec["id"]) in due,
            "attempts_list": [plain(a) for a in mine.drop(columns=["title"]).to_dict("records")],
        })
    return {"ideas": rows}
