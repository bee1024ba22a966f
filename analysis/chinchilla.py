"""Chinchilla approach 3: fit L(N, D) = E + A/N^alpha + B/D^beta as Hoffmann et al. and the
Epoch AI replication (Besiroglu et al. 2024) did.

Parameters theta = (a, b, e, alpha, beta) with A = exp(a), B = exp(b), E = exp(e). The
prediction is log L = LSE(a - alpha·log N, b - beta·log D, e) and the objective is the Huber
loss (delta = 1e-3) of log L_hat - log L summed over points. Every start of the published grid
(alpha, beta in {0, 0.5, .., 2}, e in {-1, -0.5, .., 1}, a, b in {0, 5, .., 25}: 4,500 starts) is
optimised to convergence at once by a batched, damped Newton method with the exact gradient
and Hessian; the best optimum wins. Bootstrap resamples are solved in the same batched way,
warm-started from the full-data optimum and the next-best distinct optima.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaletrack.analysis.bootstrap import percentile_interval, resample_counts
from scaletrack.analysis.calibration import calibrate_scatter, seed_scatter
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
# S starts x points per block in `_evaluate`: ~17 float64 arrays of this size (~0.14 GB)
BLOCK_ELEMENTS = 1_000_000
# above this many points the 4,500-start fit, its calibration and bootstrap take hours
# (5,000 points: ~9 min on one busy core); refuse instead
MAX_POINTS = 20_000
# per-iteration cap on |step| for (a, b, e, alpha, beta)
_MAX_STEP = np.array([5.0, 5.0, 2.0, 0.5, 0.5])


def start_grid() -> np.ndarray:
    """The 4,500 published starts as rows (a, b, e, alpha, beta)."""
    rows = [
        (a, b, e, al, be)
        for al, be, e, a, b in itertools.product(ALPHA_GRID, ALPHA_GRID, E_GRID, AB_GRID, AB_GRID)
    ]
    return np.asarray(rows, dtype=float)


@dataclass(frozen=True)
class _Problem:
    """Log-data, centred: u1 = a_c - alpha·x1, u2 = b_c - beta·x2 with x = log(.) - mean."""

    x1: np.ndarray
    x2: np.ndarray
    y: np.ndarray
    x1_mean: float
    x2_mean: float
    delta: float

    def to_centred(self, theta: np.ndarray) -> np.ndarray:
        t = np.array(theta, dtype=float, copy=True)
        t[..., 0] -= t[..., 3] * self.x1_mean
        t[..., 1] -= t[..., 4] * self.x2_mean
        return t

    def from_centred(self, theta: np.ndarray) -> np.ndarray:
        t = np.array(theta, dtype=float, copy=True)
        t[..., 0] += t[..., 3] * self.x1_mean
        t[..., 1] += t[..., 4] * self.x2_mean
        return t


def _make_problem(n: np.ndarray, d: np.ndarray, loss: np.ndarray, delta: float) -> _Problem:
    ln, ld = np.log(n), np.log(d)
    return _Problem(
        x1=ln - ln.mean(), x2=ld - ld.mean(), y=np.log(loss),
        x1_mean=float(ln.mean()), x2_mean=float(ld.mean()), delta=delta,
    )


def _evaluate(
    prob: _Problem, theta: np.ndarray, weights: np.ndarray | None, hessian: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Objective, gradient (S,5) and Hessian (S,5,5) for S parameter rows (centred).

    The work arrays are S x points; points are taken in blocks of at most
    `BLOCK_ELEMENTS // S` so memory stays bounded (~0.4 GB) whatever the number of points.
    """
    n = prob.y.size
    s = theta.shape[0]
    block = max(1, BLOCK_ELEMENTS // max(s, 1))
    if n <= block:
        return _evaluate_block(prob, theta, weights, hessian)
    f = np.zeros(s)
    g = np.zeros((s, 5))
    hess = np.zeros((s, 5, 5)) if hessian else None
    for start in range(0, n, block):
        cut = slice(start, start + block)
        part = dataclasses.replace(prob, x1=prob.x1[cut], x2=prob.x2[cut], y=prob.y[cut])
        fb, gb, hb = _evaluate_block(part, theta, None if weights is None else weights[:, cut],
                                     hessian)
        f += fb
        g += gb
        if hess is not None and hb is not None:  # both arrays exactly when hessian
            hess += hb
    return f, g, hess


def _evaluate_block(
    prob: _Problem, theta: np.ndarray, weights: np.ndarray | None, hessian: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`_evaluate` on all of `prob`'s points at once.

    The per-point products (gradient weights h'·w_k, Hessian weights (h'' - h')·w_j·w_k, with
    w the softmax weights of the three terms) are stacked and reduced against the moments
    [1, x1, x2, x1², x1·x2, x2²] in one matrix product: a few passes over S x points arrays.
    """
    s, n = theta.shape[0], prob.y.size
    a, b, e, al, be = (theta[:, i : i + 1] for i in range(5))
    x1, x2 = prob.x1, prob.x2
    u1 = a - al * x1
    u2 = b - be * x2
    m = np.maximum(u1, u2)
    np.maximum(m, e, out=m)
    u1 -= m
    u2 -= m
    e1 = np.exp(u1, out=u1)
    e2 = np.exp(u2, out=u2)
    e3 = np.exp(e - m)
    z = e1 + e2
    z += e3
    r = np.log(z)
    r += m
    r -= prob.y
    np.reciprocal(z, out=z)
    w1 = np.multiply(e1, z, out=e1)
    w2 = np.multiply(e2, z, out=e2)
    w3 = np.multiply(e3, z, out=e3)
    delta = prob.delta
    h1 = np.clip(r, -delta, delta, out=m)  # h'(r)
    # Huber: 0.5 r^2 for |r| <= delta, delta (|r| - delta/2) beyond; both are h' (r - h'/2)
    h = np.multiply(h1, r - 0.5 * h1, out=z)
    if weights is not None:
        h *= weights
    f = h.sum(axis=1)
    k = 9 if hessian else 3
    prods = np.empty((s, k, n))
    hw = h1 if weights is None else np.multiply(h1, weights, out=h)
    np.multiply(hw, w1, out=prods[:, 0])
    np.multiply(hw, w2, out=prods[:, 1])
    np.multiply(hw, w3, out=prods[:, 2])
    if hessian:
        q = np.less_equal(np.abs(r, out=r), delta).astype(float)
        q -= h1  # h'' - h'
        if weights is not None:
            q *= weights
        qw = np.multiply(q, w1, out=h1)
        np.multiply(qw, w1, out=prods[:, 3])
        np.multiply(qw, w2, out=prods[:, 4])
        np.multiply(qw, w3, out=prods[:, 5])
        np.multiply(q, w2, out=qw)
        np.multiply(qw, w2, out=prods[:, 6])
        np.multiply(qw, w3, out=prods[:, 7])
        np.multiply(q, w3, out=qw)
        np.multiply(qw, w3, out=prods[:, 8])
    cols = [np.ones(n), x1, x2] + ([x1 * x1, x1 * x2, x2 * x2] if hessian else [])
    mom = (prods.reshape(s * k, n) @ np.stack(cols, axis=1)).reshape(s, k, len(cols))
    g = np.stack([mom[:, 0, 0], mom[:, 1, 0], mom[:, 2, 0], -mom[:, 0, 1], -mom[:, 1, 2]],
                 axis=1)
    if not hessian:
        return f, g, None
    one, c1, c2, c11, c12, c22 = range(6)
    p1, p2, p11, p12, p13, p22, p23, p33 = (mom[:, i] for i in (0, 1, 3, 4, 5, 6, 7, 8))
    hess = np.empty((s, 5, 5))
    entries = {
        (0, 0): p11[:, one] + g[:, 0],
        (0, 1): p12[:, one],
        (0, 2): p13[:, one],
        (0, 3): -p11[:, c1] + g[:, 3],
        (0, 4): -p12[:, c2],
        (1, 1): p22[:, one] + g[:, 1],
        (1, 2): p23[:, one],
        (1, 3): -p12[:, c1],
        (1, 4): -p22[:, c2] + g[:, 4],
        (2, 2): p33[:, one] + g[:, 2],
        (2, 3): -p13[:, c1],
        (2, 4): -p23[:, c2],
        (3, 3): p11[:, c11] + p1[:, c11],
        (3, 4): p12[:, c12],
        (4, 4): p22[:, c22] + p2[:, c22],
    }
    for (i, j), value in entries.items():
        hess[:, i, j] = value
        hess[:, j, i] = value
    return f, g, hess


def _newton(
    prob: _Problem,
    theta0: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    max_iter: int = 500,
    gtol: float = 1e-12,
    ftol: float = 1e-15,
    prune: tuple[tuple[int, int], ...] = (),
    free: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batched Levenberg-damped Newton with exact derivatives, run per row to convergence.

    Returns (theta, objective, max |gradient|, converged) per row (centred coordinates).
    A row stops when |gradient| <= gtol, or a step changes the objective by <= ftol·f with
    steps below 1e-10, or damping cannot find a decrease any more. `free` (5 booleans) holds
    the other coordinates at their starting values.
    """
    theta = np.array(theta0, dtype=float, copy=True)
    s = theta.shape[0]

    def evaluate(t: np.ndarray, w: np.ndarray | None) -> tuple:
        return _hold(*_evaluate(prob, t, w), free)

    f, g, hess = evaluate(theta, weights)
    lam = np.full(s, 1e-6)
    converged = np.zeros(s, dtype=bool)
    active = np.arange(s)
    eye = np.eye(5)
    schedule = dict(prune)
    for it in range(max_iter):
        if it in schedule and active.size > schedule[it]:
            active = active[np.argsort(f[active], kind="stable")[: schedule[it]]]
        if active.size == 0:
            break
        hs, gs = hess[active], g[active]
        scale = np.maximum(np.abs(np.diagonal(hs, axis1=1, axis2=2)).max(1), 1e-300)
        min_eig = np.linalg.eigvalsh(hs)[:, 0]
        shift = np.maximum(lam[active] * scale, -min_eig + 1e-12 * scale)
        damped = hs + shift[:, None, None] * eye
        try:
            step = -np.linalg.solve(damped, gs[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            # A flat direction (e.g. E -> 0 no longer moves the loss): least-norm steps.
            step = -(np.linalg.pinv(damped) @ gs[:, :, None])[:, :, 0]
        too_big = np.max(np.abs(step) / _MAX_STEP, axis=1)
        step /= np.maximum(too_big, 1.0)[:, None]
        trial = theta[active] + step
        w = None if weights is None else weights[active]
        ft, gt, ht = evaluate(trial, w)
        ok = np.isfinite(ft) & (ft <= f[active])
        acc = active[ok]
        gain = f[acc] - ft[ok]
        theta[acc], f[acc], g[acc], hess[acc] = trial[ok], ft[ok], gt[ok], ht[ok]
        lam[acc] = np.maximum(lam[acc] * 0.2, 1e-15)
        lam[active[~ok]] *= 10.0
        small = np.zeros(s, dtype=bool)
        small[acc] = (gain <= ftol * np.maximum(f[acc], 1e-300)) & (
            np.max(np.abs(step[ok]), axis=1) <= 1e-10
        )
        done = (np.max(np.abs(g[active]), axis=1) <= gtol) | small[active] | (lam[active] > 1e12)
        converged[active[done]] = True
        active = active[~done]
    gmax = np.max(np.abs(g), axis=1)
    return theta, f, gmax, converged


def _hold(f: np.ndarray, g: np.ndarray, hess: np.ndarray | None, free: np.ndarray | None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Zero the gradient and decouple the Hessian of held coordinates, so steps leave them."""
    if free is None or free.all():
        return f, g, hess
    g[:, ~free] = 0.0
    if hess is not None:
        hess[:, ~free, :] = 0.0
        hess[:, :, ~free] = 0.0
        for i in np.flatnonzero(~free):
            hess[:, i, i] = 1.0
    return f, g, hess


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
    from the WARM_STARTS best optima of the full fit.

    All starts take SCREEN[0][0] batched Newton steps; then the best SCREEN[0][1] continue,
    and so on; the last ones run to convergence (|gradient| ~ 1e-12). `exhaustive=True` runs
    every start to convergence instead (on the Epoch data both give the same optimum).
    """
    fixed = parse_fixed(fix)
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
    t0 = time.perf_counter()
    large = len(loss) > SCREEN_POINTS
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

    log_pred = np.log(params["E"] + params["A"] * n ** -params["alpha"]
                      + params["B"] * d ** -params["beta"])
    c = data["C"].to_numpy(float)
    fit = FitResult(
        form="chinchilla",
        params=params,
        ci=ci,
        residuals=tuple(log_pred - np.log(loss)),
        boot_params=np.array(boot_rows, dtype=float).reshape(len(boot_rows), len(params)),
        selection={"index": [_label(i) for i in data.index], "columns": ["N", "D", "loss"]},
        n_points=len(loss),
        extra={
            "objective": float(f[best]),
            "max_abs_gradient": float(gmax[best]),
            "converged": bool(conv[best]),
            "n_starts": int(grid.shape[0]),
            "n_starts_converged": int(conv.sum()),
            "screened_on_points": min(len(loss), SCREEN_POINTS) if not exhaustive
            else len(loss),
            "huber_delta": float(delta),
            "n_bootstrap": int(n_bootstrap),
            "seed": seed,
            "fit_seconds": fit_seconds,
            "bootstrap_seconds": boot_seconds,
            "n_bootstrap_converged": n_boot_conv,
            "bootstrap_method": (f"{BOOT_LARGE_STEPS}-step (Newton steps from the optimum)"
                                 if large else "refits run to convergence"),
            "fixed": dict(fixed),
            "seed_scatter": seed_scatter(data),
            "log10_C_max": float(np.log10(c.max())),
            "log10_N_range": [float(np.log10(n.min())), float(np.log10(n.max()))],
        },
    )
    if calibrate if calibrate is not None else n_bootstrap > 0:
        fit = calibrate_scatter(fit, data, lambda sub: fit_chinchilla(
            sub, n_bootstrap=0, delta=delta, starts=warm, max_iter=max_iter, fix=fixed,
            calibrate=False))
    design = {"n_distinct_N": int(np.unique(n).size), "n_distinct_D": int(np.unique(d).size)}
    return assess_fit(fit, design=design, min_loss=float(loss.min()), target_C=target_C)


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
