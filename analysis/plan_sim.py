"""The planner's numerics: how wide the prediction band at a target will be for a design,
and which cells to add to make it narrow for the least compute.

Linearised (c-optimal) design, averaged over law draws. For law parameters theta_k (drawn
from a fit's bootstrap refits, or from the prior of `analysis.plan_prior`) the Chinchilla
form log L = log(E + A/N^alpha + B/D^beta) has, at a cell (N, D), the gradient J (in the
coordinates log A, log B, log E, alpha, beta, with log N and log D centred). A design's
information about theta is M = M0 + sum_i J_i J_i^T / s^2, with M0 the precision of the
draws themselves (what is known before the design: the prior, or the existing runs) and s
the noise of the fit: the Huber fit (delta 1e-3 in log loss) is a least-absolute-deviation
fit at 1-3 % noise, whose variance is pi/2 times that of least squares under normal noise,
so s^2 = (pi/2)·sigma^2 for run-to-run scatter sigma (log loss). The log loss predicted at
the target (gradient g) then has variance v = g^T M^-1 g, and a new run there lands within

    w = 2·1.96·sqrt(v + sigma^2 + (kappa·d)^2)

(relative width of the 95 % band), where d is the design's reach: decades of compute from
its largest cell to the target, and kappa the form's extrapolation error per decade (the
part of the band `calibration` learns from inner hold-outs; the design must not look good
by ignoring it). Designs are compared by the mean of w over the draws.

`greedy_design` adds, one at a time, the candidate with the largest drop in mean width per
FLOP that still fits in the budget, then exchanges cells (one out, one in) while that
narrows the mean band within the budget. Every design it returns has at least
`MIN_DISTINCT` distinct N and D values and `MIN_CELLS` points with the existing runs, so the
fit that follows is identified (see `analysis.status`).

Realised widths, by simulation (`simulated_widths`).

For each simulation s: a law from the draws (rows E, A, B, alpha, beta), losses at the
design's cells with log-normal run-to-run noise sigma, the existing runs kept as they are,
a `fit_chinchilla` fit with bootstrap and the library's calibrated scatter, and the relative
width (hi - lo) / predicted of its 95 % prediction band at the target. Simulation s uses the
same law and noise stream whatever the design (common random numbers), so two designs are
compared on the same draws.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaletrack.analysis.chinchilla import fit_chinchilla
from scaletrack.errors import DataError

Z95 = 1.959963984540054
HUBER_VARIANCE_FACTOR = np.pi / 2.0  # LAD vs least squares under normal noise
MIN_DISTINCT = 3  # distinct N and D values the Chinchilla form needs (analysis.status)
MIN_CELLS = 8  # 5 free parameters + 2 points, plus one for the calibration's hold-outs
_RIDGE = 1e-9


@dataclass(frozen=True)
class DesignProblem:
    """Everything the linear criterion needs, as arrays.

    laws: (K, 5) rows E, A, B, alpha, beta; cand_n, cand_d, cand_cost: candidate N (params),
    D (tokens), cost (FLOPs); existing_n, existing_d: runs already done; target_n,
    target_d, target_flops: the point to predict; sigma: run-to-run scatter (log loss);
    kappa: extrapolation error per decade of reach (log loss); existing_max_flops: the
    largest existing run's compute (0 when none); prior_precision: (5, 5) M0.
    """

    laws: np.ndarray
    cand_n: np.ndarray
    cand_d: np.ndarray
    cand_cost: np.ndarray
    existing_n: np.ndarray
    existing_d: np.ndarray
    target_n: float
    target_d: float
    target_flops: float
    sigma: float
    kappa: float
    existing_max_flops: float
    prior_precision: np.ndarray


def centres(problem: DesignProblem) -> tuple[float, float]:
    """Mean log N and log D over candidates and target: the centring of the coordinates."""
    ln = np.log(np.r_[problem.cand_n, problem.target_n])
    ld = np.log(np.r_[problem.cand_d, problem.target_d])
    return float(ln.mean()), float(ld.mean())


def log_loss_gradient(laws: np.ndarray, n: np.ndarray, d: np.ndarray, c1: float, c2: float
                      ) -> np.ndarray:
    """d log L / d(log A, log B, log E, alpha, beta) at points (n, d): (K, P, 5)."""
    e, a, b, al, be = (laws[:, i : i + 1] for i in range(5))
    ln = np.log(np.asarray(n, dtype=float))[None, :]
    ld = np.log(np.asarray(d, dtype=float))[None, :]
    with np.errstate(all="ignore"):
        t1 = a * np.exp(-al * ln)
        t2 = b * np.exp(-be * ld)
        loss = e + t1 + t2
        w1, w2, w3 = t1 / loss, t2 / loss, e / loss
    return np.stack([w1, w2, w3, -(ln - c1) * w1, -(ld - c2) * w2], axis=-1)


def draws_precision(laws: np.ndarray, c1: float, c2: float) -> np.ndarray:
    """Precision (5, 5) of the draws in the criterion's coordinates (centred log A, log B,
    log E, alpha, beta): what is known about the law before the design."""
    with np.errstate(all="ignore"):
        coords = np.stack([np.log(laws[:, 1]) - laws[:, 3] * c1,
                           np.log(laws[:, 2]) - laws[:, 4] * c2,
                           np.log(np.maximum(laws[:, 0], 1e-12)), laws[:, 3], laws[:, 4]],
                          axis=1)
    coords = coords[np.all(np.isfinite(coords), axis=1)]
    if coords.shape[0] < 6:
        return np.eye(5) * _RIDGE
    cov = np.cov(coords, rowvar=False)
    scale = np.maximum(np.diag(cov), 1e-12)
    cov = cov + np.diag(scale) * 1e-6  # fixed parameters: a tiny, finite spread
    return np.linalg.inv(cov)


class Criterion:
    """Mean expected 95 % band width at the target over the law draws, for designs given as
    index arrays into the candidates (existing runs always included)."""

    def __init__(self, problem: DesignProblem) -> None:
        self.problem = problem
        c1, c2 = centres(problem)
        laws = problem.laws
        self.s2 = HUBER_VARIANCE_FACTOR * problem.sigma ** 2
        self.j_cand = log_loss_gradient(laws, problem.cand_n, problem.cand_d, c1, c2)
        self.g = log_loss_gradient(laws, np.array([problem.target_n]),
                                   np.array([problem.target_d]), c1, c2)[:, 0, :]
        base = np.broadcast_to(problem.prior_precision, (laws.shape[0], 5, 5)).copy()
        if problem.existing_n.size:
            j_old = log_loss_gradient(laws, problem.existing_n, problem.existing_d, c1, c2)
            base += np.einsum("kpi,kpj->kij", j_old, j_old) / self.s2
        self.base = base
        ok = np.all(np.isfinite(self.j_cand), axis=(1, 2)) & np.all(np.isfinite(self.g), axis=1)
        ok &= np.all(np.isfinite(base), axis=(1, 2))
        self.keep = ok
        self.log_target = float(np.log10(problem.target_flops))

    def widths(self, designs: list[np.ndarray]) -> np.ndarray:
        """Per-draw band widths (relative) for each design: (len(designs), K)."""
        k = int(self.keep.sum())
        out = np.empty((len(designs), k))
        j = self.j_cand[self.keep]
        g = self.g[self.keep]
        base = self.base[self.keep]
        p = self.problem
        for i, idx in enumerate(designs):
            idx = np.asarray(idx, dtype=int)
            m = base + np.einsum("kpi,kpj->kij", j[:, idx], j[:, idx]) / self.s2
            m += np.eye(5) * _RIDGE
            v = np.einsum("ki,ki->k", g, np.linalg.solve(m, g[:, :, None])[:, :, 0])
            top = max(p.existing_max_flops, float(p.cand_cost[idx].max()) if idx.size else 0.0)
            reach = max(self.log_target - np.log10(top), 0.0) if top > 0 else self.log_target
            var = np.maximum(v, 0.0) + p.sigma ** 2 + (p.kappa * reach) ** 2
            out[i] = 2.0 * Z95 * np.sqrt(var)
        return out

    def mean_width(self, designs: list[np.ndarray]) -> np.ndarray:
        """Mean over draws of `widths` (one number per design)."""
        return self.widths(designs).mean(axis=1)


def _identified(problem: DesignProblem, idx: np.ndarray) -> bool:
    n = np.r_[problem.existing_n, problem.cand_n[idx]]
    d = np.r_[problem.existing_d, problem.cand_d[idx]]
    return (n.size >= MIN_CELLS and np.unique(n).size >= MIN_DISTINCT
            and np.unique(d).size >= MIN_DISTINCT)


def greedy_design(problem: DesignProblem, budget: float, *, exchange_passes: int = 3
                  ) -> np.ndarray:
    """Indices of the chosen candidates (each used at most once), total cost <= budget."""
    crit = Criterion(problem)
    cost = problem.cand_cost
    chosen: list[int] = []
    spent = 0.0
    current = float(crit.mean_width([np.array([], dtype=int)])[0])
    while True:
        free = [j for j in range(cost.size) if j not in chosen and spent + cost[j] <= budget]
        if not free:
            break
        trial = crit.mean_width([np.array(chosen + [j]) for j in free])
        gain = (current - trial) / cost[free]
        if not _identified(problem, np.array(chosen, dtype=int)):
            gain = current - trial  # first make the fit identifiable, whatever the price
        best = int(np.argmax(gain))
        if gain[best] <= 0 and _identified(problem, np.array(chosen, dtype=int)):
            break
        chosen.append(free[best])
        spent += float(cost[free[best]])
        current = float(trial[best])
    chosen_arr = np.array(chosen, dtype=int)
    for _ in range(exchange_passes):
        chosen_arr, improved = _exchange(crit, problem, chosen_arr, budget)
        if not improved:
            break
    return np.sort(chosen_arr)


def _exchange(crit: Criterion, problem: DesignProblem, chosen: np.ndarray, budget: float
              ) -> tuple[np.ndarray, bool]:
    """One pass of single swaps (out i, in j) and single removals that narrow the band."""
    cost = problem.cand_cost
    current = float(crit.mean_width([chosen])[0])
    improved = False
    out_of = [j for j in range(cost.size) if j not in set(chosen.tolist())]
    for pos in range(chosen.size):
        rest = np.delete(chosen, pos)
        spent = float(cost[rest].sum())
        options = [np.r_[rest, j] for j in out_of if spent + cost[j] <= budget]
        if not options:
            continue
        widths = crit.mean_width(options)
        for order in np.argsort(widths):
            if widths[order] >= current - 1e-9:
                break
            if _identified(problem, options[order].astype(int)):
                leaving = int(chosen[pos])
                chosen = options[order].astype(int)
                current = float(widths[order])
                out_of = [j for j in out_of if j != int(chosen[-1])] + [leaving]
                improved = True
                break
    return chosen, improved


def simulate_losses(law: np.ndarray, n: np.ndarray, d: np.ndarray, sigma: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Losses (nats) of law row (E, A, B, alpha, beta) at N, D with log-normal noise."""
    e, a, b, al, be = law
    mean = e + a * n ** -al + b * d ** -be
    return mean * np.exp(rng.normal(0.0, sigma, n.size))


def simulated_widths(cells: Sequence, existing: pd.DataFrame | None, laws: np.ndarray,
                     sigma: float, target: tuple[float, float], n_simulations: int, *,
                     n_bootstrap: int = 100, seed: int = 0) -> tuple[float, ...]:
    """Band widths at target (N params, D tokens) over `n_simulations` simulated fits of the
    cells (PlannedCell-like: n_params, tokens) added to `existing` runs (N, D, loss).
    A simulation whose fit is refused or degenerate counts as NaN."""
    n = np.array([c.n_params for c in cells], dtype=float)
    d = np.array([c.tokens for c in cells], dtype=float)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, laws.shape[0], n_simulations)
    out = []
    for s in range(n_simulations):
        sim_rng = np.random.default_rng([seed, s])
        loss = simulate_losses(laws[pick[s]], n, d, sigma, sim_rng)
        frame = pd.DataFrame({"N": n, "D": d, "loss": loss})
        if existing is not None:
            frame = pd.concat([existing[["N", "D", "loss"]], frame], ignore_index=True)
        out.append(band_width(frame, target, n_bootstrap=n_bootstrap, seed=seed + s))
    return tuple(out)


def band_width(frame: pd.DataFrame, target: tuple[float, float], *, n_bootstrap: int = 100,
               seed: int = 0) -> float:
    """Relative 95 % prediction-band width at target (N, D) of the default Chinchilla fit of
    `frame`; NaN when the fit is refused or degenerate."""
    band = band_at(frame, target, n_bootstrap=n_bootstrap, seed=seed)
    return float("nan") if band is None else (band[2] - band[1]) / band[0]


def band_at(frame: pd.DataFrame, target: tuple[float, float], *, n_bootstrap: int = 100,
            seed: int = 0) -> tuple[float, float, float] | None:
    """(predicted, lo, hi) loss at target of the default Chinchilla fit of `frame` (with
    bootstrap and calibrated scatter); None when the fit is refused or degenerate."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fit = fit_chinchilla(frame, n_bootstrap=n_bootstrap, seed=seed)
    except DataError:
        return None
    if fit.degenerate:
        return None
    b = fit.predict_interval(np.array([target[0]]), np.array([target[1]]), seed=seed)
    return float(b["pred"].iloc[0]), float(b["lo"].iloc[0]), float(b["hi"].iloc[0])
