"""Many floored-sigmoid least-squares problems at once: a bounded Levenberg-Marquardt in numpy.

Every start of a fit and every bootstrap refit of a task share the same scale points and
differ only in their start and their y values, so they are solved together: one stacked
residual and analytic Jacobian per iteration for the whole batch, instead of one
`scipy.optimize.least_squares` call (numerical derivatives, Python loop) per problem.

The problem, in the sign-normalised units of `analysis.emergence._Problem` (the curve rises):

    r_j(theta) = floor + frac * (limit - floor) * expit(k * (lx_j - mid)) - y_j

theta = (floor, frac, k, mid), or (frac, k, mid) when the floor is fixed. Bounds are kept by
projection: a coordinate at its bound whose gradient points outwards is frozen for the step,
and every trial point is clipped into the box. A problem stops when a step no longer lowers
its cost by more than `ftol` relatively, or its damping grows past any useful step.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

MAX_ITER = 100
FTOL = 1e-8  # scipy's least_squares defaults
XTOL = 1e-8
_LAM_START = 1e-3
_LAM_MAX = 1e12


def residuals_and_jacobian(
    theta: np.ndarray, lx: np.ndarray, y: np.ndarray, fixed_floor: float | None, limit: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Residuals (B, n) and Jacobian (B, n, p) of B problems at `theta` (B, p)."""
    if fixed_floor is None:
        floor, frac, k, mid = (theta[:, i:i + 1] for i in range(4))
    else:
        floor = np.full((theta.shape[0], 1), fixed_floor)
        frac, k, mid = (theta[:, i:i + 1] for i in range(3))
    span = limit - floor
    u = lx[None, :] - mid
    s = expit(k * u)
    amp = frac * span
    r = floor + amp * s - y
    ds = amp * s * (1.0 - s)
    cols = [span * s, ds * u, -ds * k]  # d/dfrac, d/dk, d/dmid
    if fixed_floor is None:
        cols.insert(0, 1.0 - frac * s)  # d/dfloor
    jac = np.empty(r.shape + (len(cols),))
    for i, c in enumerate(cols):
        jac[:, :, i] = c
    return r, jac


@np.errstate(over="ignore", invalid="ignore")  # a far trial's cost overflows: rejected
def solve_batch(
    lx: np.ndarray, y: np.ndarray, theta0: np.ndarray, lo: np.ndarray, hi: np.ndarray, *,
    fixed_floor: float | None, limit: float, max_iter: int | None = None, ftol: float = FTOL,
    xtol: float = XTOL,
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares solutions (B, p) and their costs 0.5 * sum r^2 (B,) of B problems.

    lx: (n,) log10 scale; y: (B, n) or (n,) signed values (one row per problem, or one row
    shared by all); theta0: (B, p) starts; lo, hi: (p,) bounds."""
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    theta = np.clip(np.array(theta0, dtype=float), lo, hi)
    b, p = theta.shape
    y = np.broadcast_to(np.asarray(y, dtype=float), (b, lx.size))
    r, jac = residuals_and_jacobian(theta, lx, y, fixed_floor, limit)
    cost = 0.5 * np.square(r).sum(axis=1)
    lam = np.full(b, _LAM_START)
    live = np.ones(b, dtype=bool)
    eye = np.eye(p)
    width = np.maximum(hi - lo, 1e-12)
    for _ in range(MAX_ITER if max_iter is None else max_iter):
        idx = np.flatnonzero(live)
        if idx.size == 0:
            break
        th, rr, jj = theta[idx], r[idx], jac[idx]
        jt = jj.transpose(0, 2, 1)
        g = np.matmul(jt, rr[:, :, None])[:, :, 0]
        a = np.matmul(jt, jj)
        at_lo = th <= lo + 1e-12 * width
        at_hi = th >= hi - 1e-12 * width
        frozen = (at_lo & (g > 0)) | (at_hi & (g < 0))
        diag = np.maximum(np.diagonal(a, axis1=1, axis2=2), 1e-12)
        m = a + lam[idx, None, None] * (diag[:, :, None] * eye[None])
        free = ~frozen
        mask = free[:, :, None] & free[:, None, :]
        m = np.where(mask, m, 0.0) + frozen[:, :, None] * eye[None]
        rhs = np.where(free, -g, 0.0)
        try:
            step = np.linalg.solve(m, rhs[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = _safe_solve(m, rhs)
        trial = np.clip(th + step, lo, hi)
        r_new, j_new = residuals_and_jacobian(trial, lx, y[idx], fixed_floor, limit)
        cost_new = 0.5 * np.square(r_new).sum(axis=1)
        old = cost[idx]
        better = np.isfinite(cost_new) & (cost_new < old)
        gain = np.where(better, old - cost_new, 0.0)
        moved = (np.linalg.norm(trial - th, axis=1)
                 > xtol * (xtol + np.linalg.norm(th, axis=1)))
        acc = idx[better]
        theta[acc], r[acc], jac[acc], cost[acc] = (
            trial[better], r_new[better], j_new[better], cost_new[better])
        lam[idx] = np.where(better, np.maximum(lam[idx] / 3.0, 1e-12), lam[idx] * 4.0)
        done = (better & ((gain <= ftol * old) | ~moved)) | (lam[idx] > _LAM_MAX)
        live[idx[done]] = False
    return theta, cost


def _safe_solve(m: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve each system on its own, with a least-squares answer where one is singular."""
    out = np.zeros_like(rhs)
    for i in range(m.shape[0]):
        try:
            out[i] = np.linalg.solve(m[i], rhs[i])
        except np.linalg.LinAlgError:
            out[i] = np.linalg.lstsq(m[i], rhs[i], rcond=None)[0]
    return out
