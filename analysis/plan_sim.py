"""The planner's numerics: how wide the 95 % prediction band at a target will be for a
design (a set of cells), which cells make it narrow for the least compute, and the widths
realised by simulated fits.

Linearised (c-optimal) criterion, averaged over law draws. For law parameters theta_k
(a fit's bootstrap refits, or draws from the prior of `analysis.plan`) the Chinchilla form
log L = log(E + A/N^alpha + B/D^beta) has, at a cell (N, D), the gradient J over
(log A, log B, log E, alpha, beta) (log N and log D centred). Cells S carry information
M(S) = sum_{i in S} J_i J_i^T / s^2 (with the existing runs in S; the fit that follows
uses no prior, so the draws only say where to linearise, never add information), s the
fit's noise (plus, with a distance error lambda > 0, (lambda·d_i)^2 for a cell d_i
decades of compute below the target: the form's bias, assumed to grow with distance): the
Huber fit (delta 1e-3 in log loss) is a least-absolute-deviation fit at 1-3 % noise, whose
variance is pi/2 times that of least squares under normal noise, so s^2 = (pi/2)·sigma^2
for run-to-run scatter sigma (log loss). The fitted log loss at a point with gradient g
varies by v(S) = g^T M(S)^-1 g.

The band `FitResult.predict_interval` draws is the bootstrap spread at the target plus the
calibrated scatter of a residual model (`analysis.calibration`). The criterion models the
"reach" model (the default when it was written; the default is now "frontier_hedged", whose
spread grows per decade of compute and of N separately, plus a drift where the inner splits
agree on its sign, which this criterion does not model): inner
hold-outs of the design's own top 10, 20, 30, 50 % of compute and top 10, 20, 30 % of N,
each held-out run's residual paired with its reach d (decades of compute or of N beyond the
split's training runs, whichever is larger), and sigma(d)^2 = s0^2 + (k·d)^2 fitted to
those pairs. The criterion models the same steps: a held-out run i of split h deviates by
e_i = sigma^2 + v_i(S_h) in expectation, with S_h the split's training runs (splits the fit
would refuse, fewer than MIN_CELLS runs or MIN_DISTINCT distinct N or D, are skipped as the
calibration skips them; v_i averaged over HOLDOUT_DRAWS draws); s0^2 and k^2 maximise the
expected Gaussian likelihood of the pairs (e_i, d_i) (`expected_reach_model`); so

    w = 2·1.96·sqrt(v_target(S) + s0^2 + (k·d*)^2 + (kappa·d*)^2)

is the relative width of the 95 % band, d* the target's reach beyond the design (decades of
compute or of N beyond its largest cell, whichever is larger) and kappa the form's
extrapolation error per decade assumed on top. A design whose splits leave fewer than 5
held-out runs would fall back to in-sample residuals, a band that ignores the form's bias;
the criterion charges it the target's variance twice instead, and the search never returns
one. Designs are scored in batches: their information matrices are one product of 0/1
design masks with the cells' outer products, the inner hold-outs one batched inverse.

At 2-3 % noise many designs' fits put E at its bound 0 and are degenerate (no band): the
search minimises `Criterion.score`, the mean width plus a charge for that failure risk
(see E_COLLAPSE_SCALE below), which favours designs spread over sizes and token counts.

`choose_design` runs a cost-aware greedy (largest drop in mean width per FLOP, or in
absolute terms) from nothing to the budget, keeping the narrowest design on its way, then
an exchange search (swap one cell for another, add or drop one, while the mean width drops
within the budget; EXCHANGE_OPTIONS random moves a pass) from each greedy result, from the
cheapest cells that fit and from the baseline grid when its cells are candidates; the
narrowest eligible design wins.

Realised widths (`simulated_widths`): for each simulation s a law from the draws, losses at
the cells with log-normal noise sigma, the existing runs kept as they are, a
`fit_chinchilla` fit with bootstrap and the library's calibrated scatter, and the relative
width (hi - lo) / predicted of its 95 % prediction band at the target. Simulation s uses the
same law and noise stream whatever the design (common random numbers).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from scaletrack.analysis.calibration import INNER_HOLDOUTS, INNER_HOLDOUTS_N
from scaletrack.analysis.chinchilla import fit_chinchilla
from scaletrack.errors import DataError

Z95 = 1.959963984540054
HUBER_VARIANCE_FACTOR = np.pi / 2.0  # LAD vs least squares under normal noise
MIN_DISTINCT = 3  # distinct N and D values the Chinchilla form needs (analysis.status)
MIN_CELLS = 7  # 5 free parameters + 2 points (chinchilla.check_degrees_of_freedom)
SEARCH_DRAWS = 48  # law draws the search averages over
# the form's bias assumed per decade of a cell's distance below the target (log loss),
# chosen among 0, 0.005, 0.01, 0.02 on Porian's and Llama 3's isoFLOP points, not on the
# benches' data (bench/bench_plan_select.py: highest mean coverage, none reached 0.85;
# 0.01 with the first criterion, 0 with the reach-aware one: mean coverage 0.78 vs 0.71-0.73)
DISTANCE_ERROR = 0.0
STEP_OPTIONS = 40  # candidates weighed per greedy step
EXCHANGE_OPTIONS = 160  # moves (swap, add, drop) weighed per exchange pass
HOLDOUT_DRAWS = 16  # law draws the inner hold-outs' residual variances average over
BATCH = 64  # designs scored at once
_RATIO_GRID = np.r_[0.0, np.geomspace(1e-2, 1e4, 43)]  # k^2/s0^2 profiled over
_MIN_RESIDUALS = 5  # held-out residuals the calibration needs (analysis.calibration)
_CUTS = 1.0 - np.asarray(INNER_HOLDOUTS)  # quantiles of compute the hold-outs start at
_CUTS_N = 1.0 - np.asarray(INNER_HOLDOUTS_N)  # ... and of N
_RIDGE = 1e-9
_LOG_E_AXIS = np.array([0.0, 0.0, 1.0, 0.0, 0.0])  # log E in the criterion's coordinates
# Failure risk: E collapses to its bound far more often than the linearised standard error
# sd of log E says (its estimate is skewed towards 0): the share of point fits with E at
# the bound follows Phi(-1 / (E_COLLAPSE_SCALE·sd)), scale 1.9-2.5 (bench_plan's 6x6 grid,
# its 81 candidates and their costlier half, Hoffmann's law, 2-3 % noise, seeds 200-223:
# 21-29 %, 0-4 %, 4-8 % at the bound). sd is judged at RISK_NOISE_FACTOR times the assumed
# noise (itself uncertain) and the risk beyond MAX_FAILURE_RISK charged FAILURE_PENALTY
# relative width per unit. Chosen on bench_plan's TUNING_SEEDS (100-103, 50 refits) among
# (factor, allowance, penalty) = (1.5, 0.02, 20), (2.0, 0.02, 20), (1.5, 0.02, 60): 8 %,
# 1 %, 3 % of planned fits failed; (1.5, 0.05, 20) was dropped on point fits (seeds 200-215).
E_COLLAPSE_SCALE = 2.2
RISK_NOISE_FACTOR = 2.0
MAX_FAILURE_RISK = 0.02
FAILURE_PENALTY = 20.0


@dataclass(frozen=True)
class DesignProblem:
    """Everything the criterion needs, as arrays.

    laws: (K, 5) rows E, A, B, alpha, beta; cand_n, cand_d, cand_cost: candidate N (params),
    D (tokens), cost (FLOPs); existing_n, existing_d, existing_cost: runs already done;
    target_n, target_d, target_flops: the point to predict; sigma: run-to-run scatter (log
    loss); kappa: extrapolation error per decade of reach (log loss); prior_precision:
    (5, 5) M0 (zeros when runs exist); distance_error: lambda, the form's bias per decade
    a cell lies below the target (log loss), added to its variance as (lambda·d_i)^2.
    With cooldown branches cand_cost is a candidate's own cost (its cooldown, FLOPs),
    cand_compute its training compute C (default cand_cost), cand_trunk the id (>= 0; -1
    none) of the trunk it branches from and cand_trunk_cost the FLOPs of that trunk still to
    train up to its branch point: a design pays each trunk once, up to its latest branch
    point among the design's cells (`design_cost`).
    """

    laws: np.ndarray
    cand_n: np.ndarray
    cand_d: np.ndarray
    cand_cost: np.ndarray
    existing_n: np.ndarray
    existing_d: np.ndarray
    existing_cost: np.ndarray
    target_n: float
    target_d: float
    target_flops: float
    sigma: float
    kappa: float
    prior_precision: np.ndarray
    distance_error: float = DISTANCE_ERROR
    cand_compute: np.ndarray | None = None
    cand_trunk: np.ndarray | None = None
    cand_trunk_cost: np.ndarray | None = None

    @property
    def compute(self) -> np.ndarray:
        """Each candidate's training compute C (FLOPs; where it lies for the law)."""
        return self.cand_cost if self.cand_compute is None else self.cand_compute

    @property
    def shares_trunks(self) -> bool:
        """Whether some candidates are cooldown branches of a trunk still to be trained."""
        return self.cand_trunk is not None and bool(np.any(self.cand_trunk >= 0))


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
    log E, alpha, beta): what the prior says before any run."""
    with np.errstate(all="ignore"):
        coords = np.stack([np.log(laws[:, 1]) - laws[:, 3] * c1,
                           np.log(laws[:, 2]) - laws[:, 4] * c2,
                           np.log(np.maximum(laws[:, 0], 1e-12)), laws[:, 3], laws[:, 4]],
                          axis=1)
    coords = coords[np.all(np.isfinite(coords), axis=1)]
    if coords.shape[0] < 6:
        return np.eye(5) * _RIDGE
    cov = np.cov(coords, rowvar=False)
    cov = cov + np.diag(np.maximum(np.diag(cov), 1e-12)) * 1e-6
    return np.linalg.inv(cov)


class Criterion:
    """Mean expected 95 % band width at the target over the law draws, for designs given as
    index arrays into the candidates (the existing runs are always part of the design).

    Designs are scored in batches: their information matrices are one matrix product of
    0/1 design masks with the cells' precomputed outer products, and the inner hold-outs of
    every design one batched inverse (see the module docstring)."""

    def __init__(self, problem: DesignProblem, max_draws: int = SEARCH_DRAWS) -> None:
        self.problem = problem
        c1, c2 = centres(problem)
        laws = problem.laws[:max_draws]
        self.s2 = HUBER_VARIANCE_FACTOR * problem.sigma ** 2
        n = np.r_[problem.existing_n, problem.cand_n].astype(float)
        d = np.r_[problem.existing_d, problem.cand_d].astype(float)
        j = log_loss_gradient(laws, n, d, c1, c2)
        g = log_loss_gradient(laws, np.array([problem.target_n]),
                              np.array([problem.target_d]), c1, c2)[:, 0, :]
        ok = np.all(np.isfinite(j), axis=(1, 2)) & np.all(np.isfinite(g), axis=1)
        self.j, self.g = j[ok], g[ok]
        self.n, self.d = n, d
        self.cost = np.r_[problem.existing_cost, problem.compute].astype(float)
        # per-cell outer products J J^T / (s^2 + (lambda·d_i)^2): (K, P, 5, 5)
        with np.errstate(divide="ignore"):
            decades = np.maximum(np.log10(problem.target_flops / self.cost), 0.0)
        cell_var = self.s2 + (problem.distance_error * decades) ** 2
        self.outer = (np.einsum("kpi,kpj->kpij", self.j, self.j)
                      / cell_var[None, :, None, None])
        k, p = self.j.shape[:2]
        self._outer_flat = self.outer.transpose(1, 0, 2, 3).reshape(p, k * 25)
        hk = min(k, HOLDOUT_DRAWS)
        self._outer_held = self.outer[:hk].transpose(1, 0, 2, 3).reshape(p, hk * 25)
        self._raw = np.einsum("kpi,kpj->kpij", self.j[:hk], self.j[:hk]).reshape(hk, p, 25)
        self._hk = hk
        self.n_old = problem.existing_n.size
        self.m0 = problem.prior_precision + np.eye(5) * _RIDGE
        self.log_target = float(np.log10(problem.target_flops))
        self.log_target_n = float(np.log10(problem.target_n))
        self.log_cost = np.log10(self.cost)
        self.log_n = np.log10(n)

    def _rows(self, idx: np.ndarray) -> np.ndarray:
        return np.r_[np.arange(self.n_old), self.n_old + np.asarray(idx, dtype=int)]

    def _mask(self, idx: np.ndarray) -> np.ndarray:
        mask = np.zeros(self.cost.size, dtype=bool)
        mask[self._rows(idx)] = True
        return mask

    def eligible(self, idx: np.ndarray) -> bool:
        """Identified (MIN_CELLS runs, MIN_DISTINCT N and D) with a usable calibration split."""
        rows = self._rows(idx)
        held = sum(te.size for _, te in self._splits(rows))
        return _identified(self.n[rows], self.d[rows]) and held >= _MIN_RESIDUALS

    def _splits(self, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(training rows, held-out rows) of each inner hold-out the calibration would use:
        the top INNER_HOLDOUTS of the design's compute and INNER_HOLDOUTS_N of its N."""
        out: list[tuple[np.ndarray, np.ndarray]] = []
        if rows.size < MIN_CELLS:
            return out
        for key, fracs in ((self.cost[rows], _CUTS), (self.n[rows], _CUTS_N)):
            for cut in _quantiles(key, fracs):
                train, test = rows[key < cut], rows[key >= cut]
                if test.size and _identified(self.n[train], self.d[train]):
                    out.append((train, test))
        return out

    def _info(self, masks: np.ndarray) -> np.ndarray:
        """Information matrices (B, K, 5, 5) of designs given as (B, P) masks."""
        flat = _product(masks.astype(float), self._outer_flat)
        return flat.reshape(masks.shape[0], -1, 5, 5) + self.m0

    def design_widths(self, idx: np.ndarray) -> np.ndarray:
        """Per-draw expected relative widths (K,) of the band for design `idx`."""
        return self._widths(self._mask(idx)[None, :])[0][0]

    def mean_width(self, designs: Sequence[np.ndarray]) -> np.ndarray:
        """Mean over draws of `design_widths`, one number per design."""
        return self._scored(designs)[0]

    def failure_risk(self, designs: Sequence[np.ndarray]) -> np.ndarray:
        """Expected share of fits of each design whose E collapses to its bound 0 (a
        degenerate fit, no band): mean over draws of Phi(-1 / (E_COLLAPSE_SCALE·sd)), sd the
        linearised standard error of log E at RISK_NOISE_FACTOR times the assumed noise."""
        return self._scored(designs)[1]

    def score(self, designs: Sequence[np.ndarray]) -> np.ndarray:
        """What the search minimises: the mean width plus FAILURE_PENALTY times the failure
        risk in excess of MAX_FAILURE_RISK (a design whose fit is likely degenerate gives
        no band at all, however narrow its band would be when the fit succeeds)."""
        width, risk = self._scored(designs)
        return width + FAILURE_PENALTY * np.maximum(risk - MAX_FAILURE_RISK, 0.0)

    def _scored(self, designs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if not len(designs):
            return np.empty(0), np.empty(0)
        masks = np.stack([self._mask(idx) for idx in designs])
        widths, risk = self._widths(masks)
        return widths.mean(axis=1), risk

    def _widths(self, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-draw widths (B, K) and failure risks (B,) of designs given as (B, P) masks."""
        info = self._info(masks)
        v_t = _quad(info, self.g)  # (B, K)
        v_e = _quad(info, np.broadcast_to(_LOG_E_AXIS, self.g.shape))  # var of log E
        with np.errstate(divide="ignore"):
            risk = norm.cdf(-1.0 / (E_COLLAPSE_SCALE * RISK_NOISE_FACTOR
                                    * np.sqrt(v_e))).mean(axis=1)
        splits = [self._splits(np.flatnonzero(m)) for m in masks]
        flat = [(tr, te) for sp in splits for tr, te in sp]
        first = np.cumsum([0] + [len(sp) for sp in splits])
        var_scatter = np.empty(masks.shape[0])
        reach = np.empty(masks.shape[0])
        if flat:
            train = np.zeros((len(flat), masks.shape[1]))
            for s, (tr, _) in enumerate(flat):
                train[s, tr] = 1.0
            info = _product(train, self._outer_held).reshape(len(flat), self._hk, 5, 5)
            inv = _inverse(info + self.m0).reshape(len(flat), self._hk, 25)
            # v[s, k, p] = J_kp^T M_sk^-1 J_kp for every cell p: one batched product
            v = np.einsum("skq,kpq->ksp", inv, self._raw)  # (K, S, P)
            v_mean = np.maximum(v, 0.0).mean(axis=0)  # (S, P)
        for b, sp in enumerate(splits):
            rows = np.flatnonzero(masks[b])
            if rows.size == 0:
                reach[b], var_scatter[b] = self.log_target, np.nan
                continue
            top_c, top_n = self.log_cost[rows].max(), self.log_n[rows].max()
            reach[b] = max(self.log_target - top_c, self.log_target_n - top_n, 0.0)
            if not sp:  # in-sample residuals: charge the target's variance twice
                var_scatter[b] = np.nan
                continue
            e, dist = [], []
            for s in range(first[b], first[b + 1]):
                tr, te = flat[s]
                e.append(self.problem.sigma ** 2 + v_mean[s, te])
                dist.append(np.maximum(np.maximum(self.log_cost[te] - self.log_cost[tr].max(),
                                                  self.log_n[te] - self.log_n[tr].max()), 0.0))
            e_all, d_all = np.concatenate(e), np.concatenate(dist)
            if e_all.size < _MIN_RESIDUALS:
                var_scatter[b] = np.nan
                continue
            s0_sq, k_sq = expected_reach_model(e_all, d_all)
            var_scatter[b] = s0_sq + k_sq * reach[b] ** 2
        kappa = (self.problem.kappa * reach) ** 2
        fallback = np.isnan(var_scatter)
        scatter = np.where(fallback[:, None], self.problem.sigma ** 2 + v_t,
                           np.nan_to_num(var_scatter)[:, None])
        return 2.0 * Z95 * np.sqrt(v_t + scatter + kappa[:, None]), risk


def expected_reach_model(e: np.ndarray, d: np.ndarray) -> tuple[float, float]:
    """(s0^2, k^2) maximising the expected Gaussian likelihood of residuals with variances e
    at reaches d (decades): the "reach" residual model's fit to the residuals the design's
    inner hold-outs would give on average. Profiled over k^2/s0^2 on a grid."""
    d2 = np.asarray(d, dtype=float) ** 2
    e = np.asarray(e, dtype=float)
    scale = 1.0 + _RATIO_GRID[:, None] * d2[None, :]  # (T, n)
    a = (e[None, :] / scale).mean(axis=1)
    nll = np.log(scale).sum(axis=1) + e.size * np.log(a)
    best = int(np.argmin(nll))
    return float(a[best]), float(a[best] * _RATIO_GRID[best])


def _quantiles(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """np.quantile(x, q) (linear interpolation) for a short 1-D x, without its overhead."""
    s = np.sort(x)
    pos = q * (s.size - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, s.size - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for the criterion's small products, by einsum's own loop: a threaded BLAS
    spends more time waiting on a busy machine's cores than these products take."""
    return np.einsum("bp,pq->bq", a, b)


def _inverse(m: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(m)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(m)


def _quad(m: np.ndarray, g: np.ndarray) -> np.ndarray:
    """g_k^T m_k^-1 g_k for each draw k (m: (..., K, 5, 5), g: (K, 5)), floored at 0."""
    rhs = np.broadcast_to(g[..., None], m.shape[:-1] + (1,))
    try:
        sol = np.linalg.solve(m, rhs)[..., 0]
    except np.linalg.LinAlgError:
        sol = (np.linalg.pinv(m) @ rhs)[..., 0]
    return np.maximum(np.einsum("...ki,ki->...k", sol, g), 0.0)


def _identified(n: np.ndarray, d: np.ndarray) -> bool:
    return (n.size >= MIN_CELLS and len(set(n.tolist())) >= MIN_DISTINCT
            and len(set(d.tolist())) >= MIN_DISTINCT)


def design_cost(problem: DesignProblem, idx: np.ndarray) -> float:
    """FLOPs that training candidates `idx` costs: their own costs plus, for cooldown
    branches, each trunk once up to its latest branch point among them."""
    idx = np.asarray(idx, dtype=int)
    own = float(problem.cand_cost[idx].sum())
    if not problem.shares_trunks or idx.size == 0:
        return own
    assert problem.cand_trunk is not None and problem.cand_trunk_cost is not None
    paid: dict[int, float] = {}
    for t, c in zip(problem.cand_trunk[idx].tolist(), problem.cand_trunk_cost[idx].tolist(),
                    strict=True):
        if t >= 0:
            paid[t] = max(paid.get(t, 0.0), float(c))
    return own + sum(paid.values())


def added_costs(problem: DesignProblem, chosen: np.ndarray) -> np.ndarray:
    """FLOPs each candidate adds to design `chosen`: its own cost plus the part of its trunk
    the design does not pay yet (the candidates' costs when no trunk is shared)."""
    if not problem.shares_trunks:
        return problem.cand_cost
    assert problem.cand_trunk is not None and problem.cand_trunk_cost is not None
    trunk, need = problem.cand_trunk, problem.cand_trunk_cost
    chosen = np.asarray(chosen, dtype=int)
    paid = np.zeros(trunk.size)
    for t in set(trunk[chosen].tolist()) - {-1}:
        paid[trunk == t] = need[chosen][trunk[chosen] == t].max()
    return problem.cand_cost + np.where(trunk >= 0, np.maximum(need - paid, 0.0), 0.0)


def choose_design(problem: DesignProblem, budget: float, *,
                  starts: Sequence[np.ndarray] = (), max_passes: int = 4,
                  seed: int = 0) -> np.ndarray:
    """Indices of the chosen candidates (each at most once, at least one), costing at most
    `budget` FLOPs by `design_cost`; empty when no design within the budget is eligible
    (the existing runs count towards eligibility).

    `starts`: further designs (index arrays) to improve by exchange, e.g. the baseline."""
    crit = Criterion(problem)
    rng = np.random.default_rng(seed)
    order = np.argsort(problem.cand_cost, kind="stable")
    if problem.shares_trunks:  # cheapest cells first, each while the design fits
        taken: list[int] = []
        for j in order.tolist():
            if design_cost(problem, np.array(taken + [j])) <= budget:
                taken.append(j)
        fill = np.array(taken, dtype=int)
    else:
        fill = order[np.cumsum(problem.cand_cost[order]) <= budget]  # cheapest cells first
    seeds = [_greedy(crit, budget, per_flop=True, rng=rng),
             _greedy(crit, budget, per_flop=False, rng=rng), fill]
    if problem.shares_trunks:  # gains per FLOP of compute: a trunk spread over its branches
        seeds.append(_greedy(crit, budget, per_flop=True, rng=rng, by_compute=True))
    seeds += [np.asarray(s, dtype=int) for s in starts]
    best, best_w = np.array([], dtype=int), np.inf
    for start in seeds:
        if design_cost(problem, start) > budget:
            continue
        idx = _exchange(crit, start, budget, max_passes, rng)
        # a plan proposes runs: the existing runs alone are never the answer
        w = float(crit.score([idx])[0]) if idx.size and crit.eligible(idx) else np.inf
        if w < best_w:
            best, best_w = idx, w
    return np.sort(best)


def _batched_widths(crit: Criterion, designs: Sequence[np.ndarray]) -> np.ndarray:
    """`crit.score` in batches of BATCH designs (bounded memory)."""
    parts = [crit.score(designs[i:i + BATCH]) for i in range(0, len(designs), BATCH)]
    return np.concatenate(parts) if parts else np.empty(0)


def _greedy(crit: Criterion, budget: float, *, per_flop: bool, rng: np.random.Generator,
            by_compute: bool = False) -> np.ndarray:
    """Add the candidate with the largest drop in score (`Criterion.score`; per FLOP when
    `per_flop`: of what it adds to the design's cost, or with `by_compute` of its training
    compute) until none fits the budget, and return the best eligible design on the way (a cell
    can widen the band for a while: it moves the calibration's hold-outs). Each step weighs
    at most STEP_OPTIONS candidates, drawn at random when more fit."""
    problem = crit.problem
    taken = np.zeros(problem.cand_cost.size, dtype=bool)
    chosen: list[int] = []
    spent = 0.0
    current = float(crit.score([np.array([], dtype=int)])[0])
    best, best_w = np.array([], dtype=int), np.inf
    while True:
        cost = added_costs(problem, np.array(chosen, dtype=int))  # a trunk paid once
        free = np.flatnonzero(~taken & (spent + cost <= budget))
        if free.size == 0:
            break
        if free.size > STEP_OPTIONS:
            free = np.sort(rng.choice(free, STEP_OPTIONS, replace=False))
        trial = _batched_widths(crit, [np.array(chosen + [j]) for j in free])
        gain = current - trial
        ready = crit.eligible(np.array(chosen, dtype=int))
        # first an identified, calibratable design (cheap cells favoured), then the rule
        weight = problem.compute[free] if by_compute else cost[free]
        scale = np.sqrt(weight) if not ready else weight if per_flop else 1.0
        pick = int(np.argmax(gain / scale))
        chosen.append(int(free[pick]))
        taken[free[pick]] = True
        spent += float(cost[free[pick]])
        current = float(trial[pick])
        if current < best_w and crit.eligible(np.array(chosen, dtype=int)):  # never empty
            best, best_w = np.array(chosen, dtype=int), current
    return best


def _exchange(crit: Criterion, chosen: np.ndarray, budget: float, max_passes: int,
              rng: np.random.Generator) -> np.ndarray:
    """Swap one chosen cell for an unchosen one, add one or drop one, while the score drops
    and the design stays eligible within the budget (at most EXCHANGE_OPTIONS of
    these moves, drawn at random, are weighed in each pass)."""
    problem = crit.problem
    cost = problem.cand_cost
    chosen = np.asarray(chosen, dtype=int)
    current = float(crit.score([chosen])[0]) if chosen.size else np.inf
    for _ in range(max_passes):
        outside = np.setdiff1d(np.arange(cost.size), chosen)
        if problem.shares_trunks:  # the cost of each resulting design, trunks once
            every = [(-1, int(j)) for j in outside] + [(pos, -1) for pos in range(chosen.size)]
            every += [(pos, int(j)) for pos in range(chosen.size) for j in outside]
            moves = [m for m in every
                     if design_cost(problem, _moved(chosen, *m)) <= budget]
        else:
            spent = float(cost[chosen].sum())
            moves = [(-1, j) for j in outside if spent + cost[j] <= budget]
            moves += [(pos, -1) for pos in range(chosen.size)]
            moves += [(pos, j) for pos in range(chosen.size) for j in outside
                      if spent - cost[chosen[pos]] + cost[j] <= budget]
        if not moves:
            break
        if len(moves) > EXCHANGE_OPTIONS:
            moves = [moves[i] for i in rng.choice(len(moves), EXCHANGE_OPTIONS, replace=False)]
        options = [_moved(chosen, pos, j) for pos, j in moves]
        widths = _batched_widths(crit, options)
        improved = False
        for k in np.argsort(widths):
            if widths[k] >= current - 1e-9:
                break
            if options[k].size and crit.eligible(options[k]):  # never drop to no cell
                chosen, current, improved = options[k], float(widths[k]), True
                break
        if not improved:
            break
    return chosen


def _moved(chosen: np.ndarray, pos: int, j: int) -> np.ndarray:
    """`chosen` without its cell at `pos` (when >= 0) and with candidate `j` (when >= 0)."""
    return np.r_[np.delete(chosen, pos) if pos >= 0 else chosen,
                 [j] if j >= 0 else []].astype(int)


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
    cells (PlannedCell-like: n_params, tokens, flops) added to `existing` runs (N, D, loss).
    A simulation whose fit is refused or degenerate counts as NaN."""
    n = np.array([c.n_params for c in cells], dtype=float)
    d = np.array([c.tokens for c in cells], dtype=float)
    c = np.array([cell.flops for cell in cells], dtype=float)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, laws.shape[0], n_simulations)
    out = []
    for s in range(n_simulations):
        sim_rng = np.random.default_rng([seed, s])
        loss = simulate_losses(laws[pick[s]], n, d, sigma, sim_rng)
        frame = pd.DataFrame({"N": n, "D": d, "C": c, "loss": loss})
        if existing is not None:
            frame = pd.concat([existing[["N", "D", "C", "loss"]], frame], ignore_index=True)
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
