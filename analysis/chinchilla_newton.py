"""The Chinchilla objective and its batched, damped Newton solver.

Parameters theta = (a, b, e, alpha, beta) in centred coordinates (see `_Problem`); the
prediction is log L = LSE(a - alpha·x1, b - beta·x2, e) and the objective the Huber loss of
log L_hat - log L (loss in nats) summed over points, optionally weighted per row (bootstrap
counts, or which points an inner hold-out refit sees). `_newton` runs many rows at once, each
to its own convergence, with the exact gradient and Hessian of `_evaluate`. Rows may each be
centred on their own means (`recentre`), so that fits of different subsets run in one batch
take exactly the steps they would take alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

# bootstrap resamples x points per batch of weights (`chinchilla._bootstrap`)
BLOCK_ELEMENTS = 1_000_000
# rows x points per block in `_evaluate`: its ~17 float64 work arrays (CACHE_ELEMENTS x 8
# bytes each) stay in a core's cache, which makes each pass ~2x faster than over arrays in
# main memory; points go in runs of at most CACHE_POINTS
CACHE_ELEMENTS = 32_768
CACHE_POINTS = 4_096
# per-iteration cap on |step| for (a, b, e, alpha, beta)
_MAX_STEP = np.array([5.0, 5.0, 2.0, 0.5, 0.5])


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

    The work arrays are rows x points blocks of at most CACHE_ELEMENTS (points in runs of
    at most CACHE_POINTS): each block's arrays stay in a core's cache, and memory stays
    bounded whatever the number of rows and points.
    """
    n, s = prob.y.size, theta.shape[0]
    width = min(n, CACHE_POINTS)
    rows = max(1, CACHE_ELEMENTS // width)
    if s <= rows and n <= width:
        return _evaluate_block(prob, theta, weights, hessian)
    cuts = [slice(i, i + width) for i in range(0, n, width)]
    parts = [prob] if len(cuts) == 1 else [
        dataclasses.replace(prob, x1=prob.x1[cut], x2=prob.x2[cut], y=prob.y[cut])
        for cut in cuts]
    f = np.zeros(s)
    g = np.zeros((s, 5))
    hess = np.zeros((s, 5, 5)) if hessian else None
    for start in range(0, s, rows):
        sel = slice(start, start + rows)
        for cut, part in zip(cuts, parts, strict=True):
            fb, gb, hb = _evaluate_block(
                part, theta[sel], None if weights is None else weights[sel, cut], hessian)
            f[sel] += fb
            g[sel] += gb
            if hess is not None and hb is not None:  # both arrays exactly when hessian
                hess[sel] += hb
    return f, g, hess


_GRADIENT_LANES = {"p1": 0, "p2": 1, "p3": 2}
_HESSIAN_LANES = {"p13": 0, "p11": 1, "p1": 2, "p12": 3, "p2": 4, "p22": 5, "p23": 6, "p3": 7,
                  "p33": 8}


def _evaluate_block(
    prob: _Problem, theta: np.ndarray, weights: np.ndarray | None, hessian: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`_evaluate` on all of `prob`'s points at once.

    The per-point products (gradient weights h'·w_k, Hessian weights (h'' - h')·w_j·w_k, with
    w the softmax weights of the three terms) are stacked and summed over points against
    1, x1, x2, x1², x1·x2, x2²: a few passes over S x points arrays.
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
    # lanes of per-point products, ordered so that each moment below reads one run of them:
    # p1 = h'·w1, p2, p3 (gradient), pjk = (h'' - h')·wj·wk (Hessian)
    lane = _HESSIAN_LANES if hessian else _GRADIENT_LANES
    prods = np.empty((s, len(lane), n))
    hw = h1 if weights is None else np.multiply(h1, weights, out=h)
    np.multiply(hw, w1, out=prods[:, lane["p1"]])
    np.multiply(hw, w2, out=prods[:, lane["p2"]])
    np.multiply(hw, w3, out=prods[:, lane["p3"]])
    if hessian:
        q = np.less_equal(np.abs(r, out=r), delta).astype(float)
        q -= h1  # h'' - h'
        if weights is not None:
            q *= weights
        qw = np.multiply(q, w1, out=h1)
        np.multiply(qw, w1, out=prods[:, lane["p11"]])
        np.multiply(qw, w2, out=prods[:, lane["p12"]])
        np.multiply(qw, w3, out=prods[:, lane["p13"]])
        np.multiply(q, w2, out=qw)
        np.multiply(qw, w2, out=prods[:, lane["p22"]])
        np.multiply(qw, w3, out=prods[:, lane["p23"]])
        np.multiply(q, w3, out=qw)
        np.multiply(qw, w3, out=prods[:, lane["p33"]])
    # sums over points of the lanes times 1, x1, x2, x1², x2², x1·x2 (only the 22 the
    # derivatives use); plain (non-BLAS) reductions: a threaded BLAS call per Newton step
    # costs more CPU waking and spinning its threads than the product itself
    one = prods.sum(axis=2)
    if not hessian:
        g = np.stack([one[:, 0], one[:, 1], one[:, 2],
                      -np.einsum("sn,n->s", prods[:, 0], x1),
                      -np.einsum("sn,n->s", prods[:, 1], x2)], axis=1)
        return f, g, None
    # runs: x1 (p13, p11, p1, p12), x1² (p11, p1), x2 (p12, p2, p22, p23), x2² (p2, p22)
    by_x1 = np.einsum("skn,n->sk", prods[:, 0:4], x1)
    by_x11 = np.einsum("skn,n->sk", prods[:, 1:3], x1 * x1)
    by_x2 = np.einsum("skn,n->sk", prods[:, 3:7], x2)
    by_x22 = np.einsum("skn,n->sk", prods[:, 4:6], x2 * x2)
    by_x12 = np.einsum("sn,n->s", prods[:, 3], x1 * x2)
    c = {name: one[:, i] for name, i in lane.items()}
    g = np.stack([c["p1"], c["p2"], c["p3"], -by_x1[:, 2], -by_x2[:, 1]], axis=1)
    hess = np.empty((s, 5, 5))
    entries = {
        (0, 0): c["p11"] + g[:, 0],
        (0, 1): c["p12"],
        (0, 2): c["p13"],
        (0, 3): -by_x1[:, 1] + g[:, 3],
        (0, 4): -by_x2[:, 0],
        (1, 1): c["p22"] + g[:, 1],
        (1, 2): c["p23"],
        (1, 3): -by_x1[:, 3],
        (1, 4): -by_x2[:, 2] + g[:, 4],
        (2, 2): c["p33"] + g[:, 2],
        (2, 3): -by_x1[:, 0],
        (2, 4): -by_x2[:, 3],
        (3, 3): by_x11[:, 0] + by_x11[:, 1],
        (3, 4): by_x12,
        (4, 4): by_x22[:, 1] + by_x22[:, 0],
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
    recentre: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batched Levenberg-damped Newton with exact derivatives, run per row to convergence.

    Returns (theta, objective, max |gradient|, converged) per row (centred coordinates).
    A row stops when |gradient| <= gtol, or a step changes the objective by <= ftol·f with
    steps below 1e-10, or damping cannot find a decrease any more. `free` (5 booleans) holds
    the other coordinates at their starting values. `recentre` (rows x 2) centres each row
    on its own means of log N and log D (see `_evaluate_recentred`).
    """
    theta = np.array(theta0, dtype=float, copy=True)
    s = theta.shape[0]

    def evaluate(t: np.ndarray, rows: np.ndarray | slice) -> tuple:
        w = None if weights is None else weights[rows]
        rc = None if recentre is None else recentre[rows]
        return _hold(*_evaluate_recentred(prob, t, w, rc), free)

    f, g, hess = evaluate(theta, slice(None))
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
        ft, gt, ht = evaluate(trial, active)
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


def _evaluate_recentred(
    prob: _Problem, theta: np.ndarray, weights: np.ndarray | None, recentre: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`_evaluate` for rows centred on their own means: row j's a, b are centred on
    x1_mean + s1 and x2_mean + s2 (s1, s2 = recentre[j]) instead of `prob`'s means.

    Its point in `prob`'s coordinates is a + alpha·s1, b + beta·s2 (a linear map J), so the
    gradient and Hessian in the row's own coordinates are J^T g and J^T H J."""
    if recentre is None:
        return _evaluate(prob, theta, weights)
    s1, s2 = recentre[:, 0], recentre[:, 1]
    t = np.array(theta, dtype=float, copy=True)
    t[:, 0] += t[:, 3] * s1
    t[:, 1] += t[:, 4] * s2
    f, g, hess = _evaluate(prob, t, weights)
    g[:, 3] += s1 * g[:, 0]
    g[:, 4] += s2 * g[:, 1]
    if hess is not None:
        hess[:, 3, :] += s1[:, None] * hess[:, 0, :]
        hess[:, 4, :] += s2[:, None] * hess[:, 1, :]
        hess[:, :, 3] += s1[:, None] * hess[:, :, 0]
        hess[:, :, 4] += s2[:, None] * hess[:, :, 1]
    return f, g, hess


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


