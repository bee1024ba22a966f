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
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaletrack.analysis.bootstrap import percentile_interval, resample_counts
from scaletrack.analysis.io import validate_frame
from scaletrack.analysis.result import FitResult
from scaletrack.analysis.status import assess_fit
from scaletrack.errors import DataError

HUBER_DELTA = 1e-3
PARAM_NAMES = ("E", "A", "B", "alpha", "beta")
ALPHA_GRID = tuple(np.arange(0.0, 2.01, 0.5))
E_GRID = tuple(np.arange(-1.0, 1.01, 0.5))
AB_GRID = tuple(np.arange(0.0, 25.01, 5.0))
SCREEN = ((10, 450), (20, 100), (40, 20))  # (iteration, starts kept): see `fit_chinchilla`
# S starts x points per block in `_evaluate`: ~20 float64 work arrays of this size (~0.4 GB)
BLOCK_ELEMENTS = 2_500_000
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
        if hessian:
            hess += hb
    return f, g, hess


def _evaluate_block(
    prob: _Problem, theta: np.ndarray, weights: np.ndarray | None, hessian: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`_evaluate` on all of `prob`'s points at once."""
    a, b, e, al, be = (theta[:, i : i + 1] for i in range(5))
    x1, x2 = prob.x1[None, :], prob.x2[None, :]
    u1 = a - al * x1
    u2 = b - be * x2
    m = np.maximum(np.maximum(u1, u2), e)
    e1, e2, e3 = np.exp(u1 - m), np.exp(u2 - m), np.exp(e - m)
    z = e1 + e2 + e3
    r = m + np.log(z) - prob.y[None, :]
    delta = prob.delta
    absr = np.abs(r)
    quad = absr <= delta
    h = np.where(quad, 0.5 * r * r, delta * (absr - 0.5 * delta))
    h1 = np.clip(r, -delta, delta)
    if weights is not None:
        h = h * weights
        h1 = h1 * weights
    f = h.sum(axis=1)
    w1, w2, w3 = e1 / z, e2 / z, e3 / z
    p1, p2 = h1 * w1, h1 * w2
    g = np.stack(
        [p1.sum(1), p2.sum(1), (h1 * w3).sum(1), -(p1 @ prob.x1), -(p2 @ prob.x2)],
        axis=1,
    )
    if not hessian:
        return f, g, None
    h2 = quad.astype(float)
    if weights is not None:
        h2 = h2 * weights
    q = h2 - h1
    x1v, x2v = prob.x1, prob.x2
    qw1, qw2 = q * w1, q * w2
    p11, p12, p13 = qw1 * w1, qw1 * w2, qw1 * w3
    p22, p23, p33 = qw2 * w2, qw2 * w3, q * w3 * w3
    hess = np.empty((theta.shape[0], 5, 5))
    entries = {
        (0, 0): p11.sum(1) + g[:, 0],
        (0, 1): p12.sum(1),
        (0, 2): p13.sum(1),
        (0, 3): -(p11 @ x1v) + g[:, 3],
        (0, 4): -(p12 @ x2v),
        (1, 1): p22.sum(1) + g[:, 1],
        (1, 2): p23.sum(1),
        (1, 3): -(p12 @ x1v),
        (1, 4): -(p22 @ x2v) + g[:, 4],
        (2, 2): p33.sum(1) + g[:, 2],
        (2, 3): -(p13 @ x1v),
        (2, 4): -(p23 @ x2v),
        (3, 3): p11 @ (x1v * x1v) + p1 @ (x1v * x1v),
        (3, 4): p12 @ (x1v * x2v),
        (4, 4): p22 @ (x2v * x2v) + p2 @ (x2v * x2v),
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
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batched Levenberg-damped Newton with exact derivatives, run per row to convergence.

    Returns (theta, objective, max |gradient|, converged) per row (centred coordinates).
    A row stops when |gradient| <= gtol, or a step changes the objective by <= ftol·f with
    steps below 1e-10, or damping cannot find a decrease any more.
    """
    theta = np.array(theta0, dtype=float, copy=True)
    s = theta.shape[0]
    f, g, hess = _evaluate(prob, theta, weights)
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
        ft, gt, ht = _evaluate(prob, trial, w)
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


def _to_params(theta: np.ndarray) -> dict[str, float]:
    a, b, e, al, be = (float(v) for v in theta)
    return {"E": float(np.exp(e)), "A": float(np.exp(a)), "B": float(np.exp(b)),
            "alpha": al, "beta": be}


def _distinct(theta: np.ndarray, f: np.ndarray, k: int, tol: float = 1e-4) -> np.ndarray:
    """Indices of the k best rows whose parameters differ by more than tol."""
    chosen: list[int] = []
    for i in np.argsort(f):
        if not np.isfinite(f[i]):
            break
        if all(np.max(np.abs(theta[i] - theta[j])) > tol for j in chosen):
            chosen.append(int(i))
        if len(chosen) == k:
            break
    return np.asarray(chosen, dtype=int)


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
) -> FitResult:
    """Fit L(N, D) = E + A/N^alpha + B/D^beta (N params, D tokens, loss nats) to `df`.

    Needs columns N, D, loss. `starts` overrides the 4,500-point published grid (rows a, b,
    e, alpha, beta). Intervals are bootstrap percentiles over `n_bootstrap` resamples of the
    points (0 disables them), each started from the full-data optimum plus the next
    `bootstrap_starts - 1` distinct optima. Residuals are log L_hat - log L.

    All starts take 10 batched Newton steps; then the best 450 continue, after 20 steps the
    best 100, after 40 the best 20, which run to convergence (|gradient| ~ 1e-12).
    `exhaustive=True` runs every start to convergence instead (about 15x slower; on the
    Epoch data both give the same optimum).
    """
    data = validate_frame(df, ("N", "D", "loss"), min_rows=5)
    if len(data) > MAX_POINTS:
        raise DataError(
            f"the Chinchilla fit takes at most {MAX_POINTS:,} points (got {len(data):,}): "
            "average seeds or repeated (N, D) runs first, or fit the compute law"
        )
    n, d, loss = (data[c].to_numpy(float) for c in ("N", "D", "loss"))
    prob = _make_problem(n, d, loss, delta)
    grid = start_grid() if starts is None else np.atleast_2d(np.asarray(starts, dtype=float))
    t0 = time.perf_counter()
    theta, f, gmax, conv = _newton(
        prob, prob.to_centred(grid), max_iter=max_iter, prune=() if exhaustive else SCREEN
    )
    best_rows = _distinct(theta, f, max(bootstrap_starts, 1))
    best = best_rows[0]
    fit_seconds = time.perf_counter() - t0
    params = _to_params(prob.from_centred(theta[best]))

    ci: dict[str, tuple[float, float]] = {k: (float("nan"), float("nan")) for k in PARAM_NAMES}
    boot_seconds = 0.0
    n_boot_conv = 0
    boot_rows: list[list[float]] = []
    if n_bootstrap > 0:
        t1 = time.perf_counter()
        m = len(best_rows)
        # resamples in batches so the (resamples x points) weight matrices stay bounded
        batch = max(1, min(n_bootstrap, 4 * BLOCK_ELEMENTS // (m * len(loss))))
        rng = np.random.default_rng(seed)
        solved, conv_parts = [], []
        for done in range(0, n_bootstrap, batch):
            k = min(batch, n_bootstrap - done)
            counts = resample_counts(len(loss), k, rng)
            weights = np.repeat(counts, m, axis=0)
            # a few steps from every start, then only each resample's best start to convergence
            tb, fb, _, _ = _newton(prob, np.tile(theta[best_rows], (k, 1)), weights, max_iter=8)
            pick = np.argmin(fb.reshape(k, m), axis=1)
            tb = tb.reshape(k, m, 5)[np.arange(k), pick]
            tb, _, _, conv_b = _newton(prob, tb, counts, max_iter=max_iter)
            solved.append(tb)
            conv_parts.append(conv_b)
        tb, conv_b = np.concatenate(solved), np.concatenate(conv_parts)
        chosen = prob.from_centred(tb)
        samples = {
            "E": np.exp(chosen[:, 2]), "A": np.exp(chosen[:, 0]), "B": np.exp(chosen[:, 1]),
            "alpha": chosen[:, 3], "beta": chosen[:, 4],
        }
        ci = {k: percentile_interval(v) for k, v in samples.items()}
        n_boot_conv = int(conv_b.sum())
        boot_rows = np.stack([samples[k] for k in PARAM_NAMES], axis=1).tolist()
        boot_seconds = time.perf_counter() - t1

    log_pred = np.log(params["E"] + params["A"] * n ** -params["alpha"]
                      + params["B"] * d ** -params["beta"])
    fit = FitResult(
        form="chinchilla",
        params=params,
        ci95=ci,
        residuals=tuple(log_pred - np.log(loss)),
        selection={"index": [_label(i) for i in data.index], "columns": ["N", "D", "loss"]},
        n_points=len(loss),
        extra={
            "objective": float(f[best]),
            "max_abs_gradient": float(gmax[best]),
            "converged": bool(conv[best]),
            "n_starts": int(grid.shape[0]),
            "n_starts_converged": int(conv.sum()),
            "huber_delta": float(delta),
            "n_bootstrap": int(n_bootstrap),
            "seed": seed,
            "fit_seconds": fit_seconds,
            "bootstrap_seconds": boot_seconds,
            "n_bootstrap_converged": n_boot_conv,
            "bootstrap_params": boot_rows,  # rows (E, A, B, alpha, beta), for prediction bands
        },
    )
    design = {"n_distinct_N": int(np.unique(n).size), "n_distinct_D": int(np.unique(d).size)}
    return assess_fit(fit, design=design, min_loss=float(loss.min()))


def _label(value: object) -> object:
    return value.item() if hasattr(value, "item") else value
