"""Chinchilla approach 3: fit L(N, D) = E + A/N^alpha + B/D^beta as Hoffmann et al. and the
Epoch AI replication (Besiroglu et al. 2024) did.

Parameters theta = (a, b, e, alpha, beta) with A = exp(a), B = exp(b), E = exp(e). The
prediction is log L = LSE(a - alpha·log N, b - beta·log D, e) and the objective is the Huber
loss (delta = 1e-3) of log L_hat - log L summed over points. Every start of the published grid
(alpha, beta in {0, 0.5, .., 2}, e in {-1, -0.5, .., 1}, a, b in {0, 5, .., 25}: 4,500 starts) is
optimised to convergence at once by a batched, damped Newton method with the exact gradient
and Hessian (`scaletrack.analysis.chinchilla_newton`); the best optimum wins. Bootstrap
resamples are solved in the same batched way, warm-started from the full-data optimum and the
next-best distinct optima, and so are the calibration's inner hold-out refits
(`refit_frames`).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scaletrack.analysis.bootstrap import percentile_interval, resample_counts
from scaletrack.analysis.calibration import calibrate_scatter, seed_scatter
from scaletrack.analysis.chinchilla_newton import (
    BLOCK_ELEMENTS,
    _make_problem,
    _newton,
    _Problem,
)
from scaletrack.analysis.io import validate_frame
from scaletrack.analysis.result import FitResult
from scaletrack.analysis.status import assess_fit
from scaletrack.errors import DataError

HUBER_DELTA = 1e-3
PARAM_NAMES = ("E", "A", "B", "alpha", "beta")
ALPHA_GRID = tuple(np.arange(0.0, 2.01, 0.5))
E_GRID = tuple(np.arange(-1.0, 1.01, 0.5))
AB_GRID = tuple(np.arange(0.0, 25.01, 5.0))
# (iteration, starts kept), see `fit_chinchilla`. Chosen as the cheapest of nine schedules
# that reached the exhaustive optimum (every start to convergence) on all 19 sets tried
# (Epoch's 240 points, Porian et al.'s 10 and Open-Athena's 5 sets, three simulated 6x6
# grids) while the next more aggressive schedule, ((0, 450), (5, 100), (15, 20)), also did.
SCREEN = ((1, 450), (6, 100), (15, 20))
# above this many points the starts are ranked on a subsample of this size (see `_screen`)
# and bootstrap refits take BOOT_LARGE_STEPS Newton steps from the optimum (`_bootstrap`)
SCREEN_POINTS = 1_000
BOOT_LARGE_STEPS = 3
WARM_STARTS = 5  # the full fit's best distinct optima: the starts of calibration refits
BOOT_SCREEN_STEPS = 3  # steps each bootstrap resample takes from every warm start
# above this many points the 4,500-start fit, its calibration and bootstrap take hours
# (5,000 points: ~9 min on one busy core); refuse instead
MAX_POINTS = 20_000


def start_grid() -> np.ndarray:
    """The 4,500 published starts as rows (a, b, e, alpha, beta)."""
    rows = [
        (a, b, e, al, be)
        for al, be, e, a, b in itertools.product(ALPHA_GRID, ALPHA_GRID, E_GRID, AB_GRID, AB_GRID)
    ]
    return np.asarray(rows, dtype=float)


def _to_params(theta: np.ndarray) -> dict[str, float]:
    a, b, e, al, be = (float(v) for v in theta)
    return {"E": float(np.exp(e)), "A": float(np.exp(a)), "B": float(np.exp(b)),
            "alpha": al, "beta": be}


def _distinct(theta: np.ndarray, f: np.ndarray, k: int, tol: float = 1e-4) -> np.ndarray:
    """Indices of the k best rows whose parameters differ by more than tol (held
    coordinates, equal in every row and possibly infinite, are ignored)."""
    cols = np.all(np.isfinite(theta), axis=0)
    chosen: list[int] = []
    for i in np.argsort(f):
        if not np.isfinite(f[i]):
            break
        if all(np.max(np.abs(theta[i, cols] - theta[j, cols]), initial=0.0) > tol
               for j in chosen):
            chosen.append(int(i))
        if len(chosen) == k:
            break
    return np.asarray(chosen, dtype=int)


def parse_fixed(fix: Mapping[str, float] | None) -> dict[str, float]:
    """Check `fix` (parameter name -> value in natural units) for the Chinchilla form."""
    out: dict[str, float] = {}
    for name, value in (fix or {}).items():
        if name not in PARAM_NAMES:
            raise DataError(f"cannot fix {name!r}: the chinchilla parameters are "
                            f"{', '.join(PARAM_NAMES)}")
        v = float(value)
        if not np.isfinite(v) or v < 0 or (v == 0 and name in ("A", "B")):
            raise DataError(f"fixed {name} must be finite and >= 0 (> 0 for A, B); got {value}")
        out[name] = v
    return out


def _theta_fixed(fixed: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(free mask, values) over (a, b, e, alpha, beta) for fixed natural parameters."""
    free = np.ones(5, dtype=bool)
    values = np.zeros(5)
    for name, v in fixed.items():
        i = _INDEX[name]
        free[i] = False
        with np.errstate(divide="ignore"):
            values[i] = np.log(v) if name in ("E", "A", "B") else v
    return free, values


_INDEX = {"A": 0, "B": 1, "E": 2, "alpha": 3, "beta": 4}


def _screen(prob: _Problem, grid: np.ndarray, free: np.ndarray, keep: int, *,
            max_iter: int, exhaustive: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                       np.ndarray, np.ndarray]:
    """Run the starts (centred rows) and return (theta, f, gmax, converged, best rows).

    Above SCREEN_POINTS points the starts are screened on an evenly spread subsample of
    SCREEN_POINTS points (the same every time) and only the best `SCREEN[-1][1]` distinct
    optima are polished on all points: the screen only ranks starts."""
    n = prob.y.size
    prune = () if exhaustive else SCREEN
    if n <= SCREEN_POINTS or exhaustive:
        theta, f, gmax, conv = _newton(prob, grid, max_iter=max_iter, prune=prune, free=free)
        return theta, f, gmax, conv, _distinct(theta, f, keep)
    order = np.argsort(prob.y, kind="stable")
    pick = order[np.linspace(0, n - 1, SCREEN_POINTS).round().astype(int)]
    sub = dataclasses.replace(prob, x1=prob.x1[pick], x2=prob.x2[pick], y=prob.y[pick])
    theta, f, _, _ = _newton(sub, grid, max_iter=max_iter, prune=prune, free=free)
    rows = _distinct(theta, f, max(keep, SCREEN[-1][1]))
    theta, f, gmax, conv = _newton(prob, theta[rows], max_iter=max_iter, free=free)
    return theta, f, gmax, conv, _distinct(theta, f, keep)


@dataclass(frozen=True)
class _Setup:
    """A validated frame (N params, D tokens, loss nats, C FLOPs), its centred problem and
    the starts to run from (natural coordinates, held parameters set)."""

    data: pd.DataFrame
    n: np.ndarray
    d: np.ndarray
    loss: np.ndarray
    prob: _Problem
    free: np.ndarray
    grid: np.ndarray


def _setup(df: pd.DataFrame, fixed: Mapping[str, float], delta: float,
           starts: np.ndarray | None) -> _Setup:
    """Validate `df` for a fit with `fixed` parameters and build its problem and starts."""
    n_free = len(PARAM_NAMES) - len(fixed)
    data = validate_frame(df, ("N", "D", "loss"))
    check_degrees_of_freedom("chinchilla", len(data), n_free)
    if len(data) > MAX_POINTS:
        raise DataError(
            f"the Chinchilla fit takes at most {MAX_POINTS:,} points (got {len(data):,}): "
            "average seeds or repeated (N, D) runs first, or fit the compute law"
        )
    n, d, loss = (data[c].to_numpy(float) for c in ("N", "D", "loss"))
    prob = _make_problem(n, d, loss, delta)
    if "A" in fixed:  # a fixed A with a free alpha: do not centre log N
        prob = dataclasses.replace(prob, x1=prob.x1 + prob.x1_mean, x1_mean=0.0)
    if "B" in fixed:
        prob = dataclasses.replace(prob, x2=prob.x2 + prob.x2_mean, x2_mean=0.0)
    free, held = _theta_fixed(fixed)
    grid = start_grid() if starts is None else np.atleast_2d(np.asarray(starts, dtype=float))
    grid = grid.copy()
    grid[:, ~free] = held[~free]
    grid = np.unique(grid, axis=0) if not free.all() else grid
    return _Setup(data, n, d, loss, prob, free, grid)


def fit_chinchilla(
    df: pd.DataFrame,
    *,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    delta: float = HUBER_DELTA,
    starts: np.ndarray | None = None,
    bootstrap_starts: int = 3,
    max_iter: int = 500,
    exhaustive: bool = False,
    fix: Mapping[str, float] | None = None,
    target_C: float | None = None,
    calibrate: bool | None = None,
) -> FitResult:
    """Fit L(N, D) = E + A/N^alpha + B/D^beta (N params, D tokens, loss nats) to `df`.

    Needs columns N, D, loss, and at least (free parameters + 2) points. `fix` holds
    parameters at given values (natural units, e.g. {"E": 0.0}: no irreducible loss).
    `starts` overrides the 4,500-point published grid (rows a, b, e, alpha, beta). Intervals
    are bootstrap percentiles over `n_bootstrap` resamples of the points (0 disables them),
    each started from the full-data optimum plus the next `bootstrap_starts - 1` distinct
    optima and run to convergence; above SCREEN_POINTS points each takes BOOT_LARGE_STEPS
    Newton steps from the optimum alone (a k-step bootstrap, Andrews 2002: its error is
    O(1/n), far inside the O(1/sqrt(n)) spread). Residuals are log L_hat - log L.
    `target_C` (FLOPs; default 10x the largest training compute) is where the identification
    check of `scaletrack.analysis.status` judges the prediction band. `calibrate` (default:
    whenever there are bootstrap refits, as the CLI does) sets the prediction band's scatter
    from inner hold-outs of these points (`scaletrack.analysis.calibration`), refitting each
    from the WARM_STARTS best optima of the full fit; the refits run as one batch
    (`refit_frames`).

    All starts take SCREEN[0][0] batched Newton steps; then the best SCREEN[0][1] continue,
    and so on; the last ones run to convergence (|gradient| ~ 1e-12). `exhaustive=True` runs
    every start to convergence instead (on the Epoch data both give the same optimum).
    """
    fixed = parse_fixed(fix)
    su = _setup(df, fixed, delta, starts)
    prob, free, grid = su.prob, su.free, su.grid
    t0 = time.perf_counter()
    large = len(su.loss) > SCREEN_POINTS
    keep = 1 if large else max(bootstrap_starts, 1)
    theta, f, gmax, conv, best_rows = _screen(prob, prob.to_centred(grid), free, keep,
                                              max_iter=max_iter, exhaustive=exhaustive)
    best = best_rows[0]
    warm = prob.from_centred(theta[_distinct(theta, f, WARM_STARTS)])
    fit_seconds = time.perf_counter() - t0
    params = _to_params(prob.from_centred(theta[best]))

    ci: dict[str, tuple[float, float]] = {k: (float("nan"), float("nan")) for k in PARAM_NAMES}
    boot_seconds = 0.0
    n_boot_conv = 0
    boot_rows: list[list[float]] = []
    if n_bootstrap > 0:
        t1 = time.perf_counter()
        steps = BOOT_LARGE_STEPS if large else max_iter
        tb, conv_b = _bootstrap(prob, theta[best_rows], n_bootstrap, seed, steps, free)
        chosen = prob.from_centred(tb)
        with np.errstate(over="ignore", divide="ignore"):
            samples = {
                "E": np.exp(chosen[:, 2]), "A": np.exp(chosen[:, 0]), "B": np.exp(chosen[:, 1]),
                "alpha": chosen[:, 3], "beta": chosen[:, 4],
            }
        ci = {k: percentile_interval(v) for k, v in samples.items()}
        n_boot_conv = int(conv_b.sum())
        boot_rows = np.stack([samples[k] for k in PARAM_NAMES], axis=1).tolist()
        boot_seconds = time.perf_counter() - t1
    for name, v in fixed.items():
        ci[name] = (v, v)

    fit = _result(su, params, ci, boot_rows, fixed, {
        "objective": float(f[best]),
        "max_abs_gradient": float(gmax[best]),
        "converged": bool(conv[best]),
        "n_starts": int(grid.shape[0]),
        "n_starts_converged": int(conv.sum()),
        "screened_on_points": min(len(su.loss), SCREEN_POINTS) if not exhaustive
        else len(su.loss),
        "huber_delta": float(delta),
        "n_bootstrap": int(n_bootstrap),
        "seed": seed,
        "fit_seconds": fit_seconds,
        "bootstrap_seconds": boot_seconds,
        "n_bootstrap_converged": n_boot_conv,
        "bootstrap_method": (f"{BOOT_LARGE_STEPS}-step (Newton steps from the optimum)"
                             if large else "refits run to convergence"),
    })
    if calibrate if calibrate is not None else n_bootstrap > 0:
        fit = calibrate_scatter(
            fit, su.data,
            lambda sub: fit_chinchilla(sub, n_bootstrap=0, delta=delta, starts=warm,
                                       max_iter=max_iter, fix=fixed, calibrate=False),
            refit_many=lambda frames: refit_frames(frames, warm, fix=fixed, delta=delta,
                                                   max_iter=max_iter))
    return _assess(fit, su, target_C)


def _result(su: _Setup, params: dict[str, float], ci: dict[str, tuple[float, float]],
            boot_rows: list[list[float]], fixed: Mapping[str, float],
            extra: dict[str, Any]) -> FitResult:
    """The FitResult of a fit on `su` (before calibration and the identification check)."""
    n, d, loss = su.n, su.d, su.loss
    log_pred = np.log(params["E"] + params["A"] * n ** -params["alpha"]
                      + params["B"] * d ** -params["beta"])
    c = su.data["C"].to_numpy(float)
    return FitResult(
        form="chinchilla",
        params=params,
        ci=ci,
        residuals=tuple(log_pred - np.log(loss)),
        boot_params=np.array(boot_rows, dtype=float).reshape(len(boot_rows), len(params)),
        selection={"index": [_label(i) for i in su.data.index], "columns": ["N", "D", "loss"]},
        n_points=len(loss),
        extra={
            **extra,
            "fixed": dict(fixed),
            "seed_scatter": seed_scatter(su.data),
            "log10_C_max": float(np.log10(c.max())),
            "log10_N_range": [float(np.log10(n.min())), float(np.log10(n.max()))],
        },
    )


def _assess(fit: FitResult, su: _Setup, target_C: float | None) -> FitResult:
    design = {"n_distinct_N": int(np.unique(su.n).size),
              "n_distinct_D": int(np.unique(su.d).size)}
    return assess_fit(fit, design=design, min_loss=float(su.loss.min()), target_C=target_C)


def refit_frames(
    frames: Sequence[pd.DataFrame],
    starts: np.ndarray,
    *,
    fix: Mapping[str, float] | None = None,
    delta: float = HUBER_DELTA,
    max_iter: int = 500,
) -> list[FitResult | None]:
    """`fit_chinchilla(frame, n_bootstrap=0, starts=starts, ...)` for each frame (None where
    that raises DataError), the frames' Newton runs batched into one.

    Every frame's rows run on the union of the frames' points, weighted by how often the
    frame holds each point and centred on the frame's own means (`_newton`'s `recentre`), so
    each row takes the steps its own fit takes: the results agree to rounding. Frames above
    SCREEN_POINTS points, or more than SCREEN[-1][1] starts (which the fit screens), are
    fitted one by one."""
    fixed = parse_fixed(fix)
    out: list[FitResult | None] = [None] * len(frames)
    batch: list[tuple[int, _Setup]] = []
    for i, frame in enumerate(frames):
        try:
            su = _setup(frame, fixed, delta, starts)
        except DataError:
            continue
        if len(su.loss) > SCREEN_POINTS or su.grid.shape[0] > SCREEN[-1][1]:
            out[i] = fit_chinchilla(frame, n_bootstrap=0, delta=delta, starts=starts,
                                    max_iter=max_iter, fix=fixed, calibrate=False)
        else:
            batch.append((i, su))
    if not batch:
        return out
    t0 = time.perf_counter()
    logs = [np.column_stack([np.log(su.n), np.log(su.d), np.log(su.loss)]) for _, su in batch]
    points, inverse = np.unique(np.concatenate(logs), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    c1 = 0.0 if "A" in fixed else float(points[:, 0].mean())
    c2 = 0.0 if "B" in fixed else float(points[:, 1].mean())
    union = _Problem(x1=points[:, 0] - c1, x2=points[:, 1] - c2,
                     y=np.ascontiguousarray(points[:, 2]), x1_mean=c1, x2_mean=c2, delta=delta)
    edges = np.cumsum([0] + [len(x) for x in logs])
    counts = np.stack([np.bincount(inverse[lo:hi], minlength=len(points))
                       for lo, hi in itertools.pairwise(edges)]).astype(float)
    n_rows = [su.grid.shape[0] for _, su in batch]
    recentre = np.repeat([[su.prob.x1_mean - c1, su.prob.x2_mean - c2] for _, su in batch],
                      n_rows, axis=0)
    theta0 = np.concatenate([su.prob.to_centred(su.grid) for _, su in batch])
    theta, f, gmax, conv = _newton(union, theta0, np.repeat(counts, n_rows, axis=0),
                                   max_iter=max_iter, free=batch[0][1].free,
                                   recentre=recentre)
    seconds = time.perf_counter() - t0
    row_edges = np.cumsum([0] + n_rows)
    for (i, su), lo, hi in zip(batch, row_edges[:-1], row_edges[1:], strict=True):
        rows = _distinct(theta[lo:hi], f[lo:hi], 1)
        if rows.size == 0:
            continue
        best = lo + int(rows[0])
        params = _to_params(su.prob.from_centred(theta[best]))
        nan_ci = {k: (float("nan"), float("nan")) for k in PARAM_NAMES}
        fit = _result(su, params, {**nan_ci, **{k: (v, v) for k, v in fixed.items()}}, [],
                      fixed, {
            "objective": float(f[best]),
            "max_abs_gradient": float(gmax[best]),
            "converged": bool(conv[best]),
            "n_starts": hi - lo,
            "n_starts_converged": int(conv[lo:hi].sum()),
            "screened_on_points": len(su.loss),
            "huber_delta": float(delta),
            "n_bootstrap": 0,
            "seed": 0,
            "fit_seconds": seconds / len(batch),
            "bootstrap_seconds": 0.0,
            "n_bootstrap_converged": 0,
            "bootstrap_method": "refits run to convergence",
        })
        out[i] = _assess(fit, su, None)
    return out


def _bootstrap(prob: _Problem, starts: np.ndarray, n_bootstrap: int, seed: int | None,
               max_iter: int, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Refit `n_bootstrap` resamples of the points (centred rows, converged flags).

    Each resample takes BOOT_SCREEN_STEPS steps from every start in `starts`; its best row
    then runs to convergence. Resamples go in batches so the (resamples x points) weight and
    work arrays stay within BLOCK_ELEMENTS-sized blocks."""
    m, n = starts.shape[0], prob.y.size
    batch = max(1, min(n_bootstrap, 4 * BLOCK_ELEMENTS // (m * n)))
    rng = np.random.default_rng(seed)
    solved, conv_parts = [], []
    for done in range(0, n_bootstrap, batch):
        k = min(batch, n_bootstrap - done)
        counts = resample_counts(n, k, rng)
        tb = np.tile(starts, (k, 1))
        if m > 1:  # a few steps from every start, then each resample's best start
            tb, fb, _, _ = _newton(prob, tb, np.repeat(counts, m, axis=0),
                                   max_iter=BOOT_SCREEN_STEPS, free=free)
            pick = np.argmin(fb.reshape(k, m), axis=1)
            tb = tb.reshape(k, m, 5)[np.arange(k), pick]
        tb, _, _, conv_b = _newton(prob, tb, counts, max_iter=max_iter, free=free)
        solved.append(tb)
        conv_parts.append(conv_b)
    return np.concatenate(solved), np.concatenate(conv_parts)


def check_degrees_of_freedom(form: str, n_points: int, n_free: int) -> None:
    """Refuse a fit with fewer than n_free + 2 points: with fewer, the residuals cannot
    tell the law from the noise (one line, naming the remedy)."""
    need = n_free + 2
    if n_points < need:
        raise DataError(
            f"a {form} fit with {n_free} free parameters needs at least {need} points, got "
            f"{n_points}: add runs, or fix parameters (e.g. --fix E=0)")


def _label(value: object) -> object:
    return value.item() if hasattr(value, "item") else value
