"""Plan the small runs that predict a target run's loss best for their compute.

`plan_runs` chooses training cells (N params, D tokens) among candidates so that, once they
are trained and the Chinchilla law L = E + A/N^alpha + B/D^beta is fitted to them, the 95 %
prediction band at the target (N*, D* at target compute C* FLOPs) is as narrow as possible
for a compute budget. What the law may be comes from the fit's bootstrap refits when runs
exist, else from `PRIOR` (published fits). Cells are chosen by the linearised criterion of
`analysis.plan_sim`; the returned widths of the chosen design and of a standard
geometric grid of equal cost are then measured by simulation : losses
drawn under the law draws with run-to-run noise, fitted by `fit_chinchilla` and banded by
`FitResult.predict_interval` with its calibrated scatter, as a real fit would be.

`expected_band_width` is the width at the target for the runs already done: what an
adaptive sweep checks after each finished cell.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from scaletrack.analysis.chinchilla import PARAM_NAMES, fit_chinchilla
from scaletrack.analysis.io import validate_frame
from scaletrack.analysis.plan_sim import (
    Criterion,
    DesignProblem,
    choose_design,
)
from scaletrack.analysis.result import FitResult
from scaletrack.errors import ConfigError, DataError

# Published Chinchilla-form fits (E nats, A, B, alpha, beta; N params, D tokens):
# - Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", approach 3:
#   E = 1.69, A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28.
# - Besiroglu et al. 2024 (Epoch AI), "Chinchilla Scaling: A replication attempt", refit on
#   the points read off Hoffmann's Figure 4: E = 1.8172, A = 482.01, B = 2085.43,
#   alpha = 0.3478, beta = 0.3658.
# - Porian et al. 2024, "Resolving Discrepancies in Compute-Optimal Scaling of Language
#   Models": the compute-optimal exponent a = beta/(alpha + beta) (N_opt ∝ C^a) is
#   0.497-0.571 once FLOPs, warm-up and decay are counted as Chinchilla did (their configs
#   4 and 5 on RefinedWeb and OpenWebText2, porian2024_fit_exponents.csv); Hoffmann's
#   approach 3 gives 0.45, Epoch's 0.51.
PUBLISHED_FITS: dict[str, dict[str, float]] = {
    "hoffmann2022": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
    "besiroglu2024": {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478,
                      "beta": 0.3658},
}
# The prior spans those fits: E, alpha, beta uniform and A, B log-uniform over the ranges
# below (each a little wider than the published values), keeping draws whose allocation
# exponent beta/(alpha + beta) lies in ALLOCATION_RANGE (Hoffmann 0.45 to Porian 0.57).
PRIOR = {
    "E": (1.6, 1.9),
    "A": (300.0, 650.0),
    "B": (350.0, 2500.0),
    "alpha": (0.28, 0.42),
    "beta": (0.26, 0.42),
}
ALLOCATION_RANGE = (0.44, 0.58)
PRIOR_NOISE = 0.02  # run-to-run scatter of the final loss, log loss (1-3 % is usual)
# extrapolation error of the form per decade of reach (log loss) when the fit has not
# measured one (its residual model "reach"/"distance" sets k): half a percent a decade
PRIOR_KAPPA = 0.005
N_DRAWS = 256


@dataclass(frozen=True)
class PlannedCell:
    """One training run to do: N (parameters, the fit's convention), D (tokens) and its
    training compute in FLOPs (6·N·D, or flops_per_token(N)·D), which is also its cost.

    A cooldown branch costs less than its compute: train_flops is what its own training
    costs (its cooldown; None: `flops`), trunk names the trunk it branches from and
    trunk_flops the FLOPs of that trunk still to train up to its branch point (0 when
    trained). Branches of one trunk chosen together pay it once (`cells_cost`)."""

    n_params: float
    tokens: float
    flops: float
    train_flops: float | None = None
    trunk: str | None = None
    trunk_flops: float = 0.0

    @property
    def own_flops(self) -> float:
        """FLOPs of this cell's own training, its trunk left out."""
        return self.flops if self.train_flops is None else self.train_flops


def cells_cost(cells: Sequence[PlannedCell]) -> float:
    """FLOPs that training `cells` costs: each cell's own cost plus each trunk once, up to
    the latest branch point among the cells that branch from it."""
    trunks: dict[str, float] = {}
    for c in cells:
        if c.trunk is not None:
            trunks[c.trunk] = max(trunks.get(c.trunk, 0.0), float(c.trunk_flops))
    return float(sum(c.own_flops for c in cells)) + float(sum(trunks.values()))


@dataclass(frozen=True)
class Plan:
    """Where to spend a compute budget to predict the target best.

    cells: the runs to do, cheapest first (the order to run them in), cost_flops their
    total cost (`cells_cost`: a trunk shared by cooldown branches counted once).
    target_*: the point predicted (FLOPs, params, tokens). expected_width: the mean
    relative width ((hi - lo) / predicted) of the 95 % prediction band at the target once
    `cells` are fitted (with the existing runs), by simulation; baseline_cells /
    baseline_width: the same for a standard geometric grid of the candidates' sizes and
    token counts with its token counts scaled to spend the whole budget
    (`equal_cost_grid`; with cooldown branches `branch_aware_baseline`; NaN where no
    simulated fit succeeded, e.g. a baseline of fewer than 7 cells).
    linear_width / baseline_linear_width: the linearised criterion's widths (the search's
    objective). failure_risk / baseline_failure_risk: the criterion's expected share of
    fits whose E collapses to its bound (degenerate, no band); `failed_share` and
    `baseline_failed_share` the simulated fits' share refused or degenerate (which
    expected_width, a mean over the fits that succeeded, leaves out).
    law_source: "prior" or "fit"; law: the central law used for the target
    split; noise: run-to-run scatter assumed (log loss); kappa: extrapolation error per
    decade assumed; n_simulations, seed: of the simulation.
    """

    cells: tuple[PlannedCell, ...]
    cost_flops: float
    budget_flops: float
    target_flops: float
    target_n: float
    target_tokens: float
    expected_width: float
    baseline_cells: tuple[PlannedCell, ...]
    baseline_cost_flops: float
    baseline_width: float
    linear_width: float
    baseline_linear_width: float
    law_source: str
    law: dict[str, float]
    noise: float
    kappa: float
    n_simulations: int
    seed: int
    widths: tuple[float, ...] = field(default=(), repr=False)
    baseline_widths: tuple[float, ...] = field(default=(), repr=False)
    failure_risk: float = math.nan
    baseline_failure_risk: float = math.nan

    @property
    def failed_share(self) -> float:
        """Share of the simulated fits of `cells` refused or degenerate (NaN: none run)."""
        return _nan_share(self.widths)

    @property
    def baseline_failed_share(self) -> float:
        """Share of the simulated fits of `baseline_cells` refused or degenerate."""
        return _nan_share(self.baseline_widths)

    def to_frame(self) -> pd.DataFrame:
        """The planned cells as a frame with columns N, D, C (params, tokens, FLOPs)."""
        return cells_frame(self.cells)


def cells_frame(cells: Sequence[PlannedCell]) -> pd.DataFrame:
    """Cells as a frame with columns N, D, C."""
    return pd.DataFrame({"N": [c.n_params for c in cells], "D": [c.tokens for c in cells],
                         "C": [c.flops for c in cells]})


def six_nd(n_params: float) -> float:
    """Training FLOPs per token of an N-parameter model under C = 6·N·D."""
    return 6.0 * float(n_params)


def prior_draws(n: int = N_DRAWS, seed: int = 0) -> np.ndarray:
    """n law draws (rows E, A, B, alpha, beta) from `PRIOR` (see the comments above it)."""
    rng = np.random.default_rng(seed)
    rows: list[np.ndarray] = []
    while sum(r.shape[0] for r in rows) < n:
        m = 4 * n
        e = rng.uniform(*PRIOR["E"], m)
        log_a, log_b = np.log(PRIOR["A"]), np.log(PRIOR["B"])  # (low, high) each
        a = np.exp(rng.uniform(log_a[0], log_a[1], m))
        b = np.exp(rng.uniform(log_b[0], log_b[1], m))
        al = rng.uniform(*PRIOR["alpha"], m)
        be = rng.uniform(*PRIOR["beta"], m)
        share = be / (al + be)
        ok = (share >= ALLOCATION_RANGE[0]) & (share <= ALLOCATION_RANGE[1])
        rows.append(np.stack([e, a, b, al, be], axis=1)[ok])
    return np.concatenate(rows)[:n]


def prior_law() -> dict[str, float]:
    """The prior's central law: the geometric mean of the published fits' parameters."""
    fits = list(PUBLISHED_FITS.values())
    return {k: float(np.exp(np.mean([np.log(f[k]) for f in fits]))) for k in PARAM_NAMES}


def law_loss(law: dict[str, float], n: Any, d: Any) -> np.ndarray:
    """Loss (nats) of the law at N params, D tokens."""
    n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
    return law["E"] + law["A"] * n ** -law["alpha"] + law["B"] * d ** -law["beta"]


def optimal_split(law: dict[str, float], target_flops: float,
                  flops_per_token: Callable[[float], float] = six_nd) -> tuple[float, float]:
    """(N, D) minimising the law's loss at `target_flops` with D = C / flops_per_token(N)."""
    al, be = law["alpha"], law["beta"]
    g = (al * law["A"] / (be * law["B"])) ** (1.0 / (al + be))
    n0 = g * (target_flops / 6.0) ** (be / (al + be))

    def loss(log_n: float) -> float:
        n = 10.0 ** log_n
        return float(law_loss(law, n, target_flops / flops_per_token(n)))

    centre = math.log10(n0)
    res = minimize_scalar(loss, bounds=(centre - 3.0, centre + 3.0), method="bounded",
                          options={"xatol": 1e-6})
    n = 10.0 ** float(res.x)
    return n, target_flops / flops_per_token(n)


def _positive(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number > 0; got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ConfigError(f"{name} must be a finite number > 0; got {value!r}")
    return v


def _target(law: dict[str, float], target_flops: float, target_n: float | None,
            target_tokens: float | None, fpt: Callable[[float], float]) -> tuple[float, float]:
    if target_n is not None and target_tokens is not None:
        return _positive("target_n", target_n), _positive("target_tokens", target_tokens)
    if target_n is not None:
        n = _positive("target_n", target_n)
        return n, target_flops / fpt(n)
    if target_tokens is not None:
        d = _positive("target_tokens", target_tokens)
        res = minimize_scalar(lambda x: (math.log(fpt(10.0 ** x) * d / target_flops)) ** 2,
                              bounds=(0.0, 16.0), method="bounded", options={"xatol": 1e-9})
        return 10.0 ** float(res.x), d
    return optimal_split(law, target_flops, fpt)


def default_candidates(target_n: float, target_tokens: float, budget: float,
                       fpt: Callable[[float], float]) -> list[PlannedCell]:
    """A product grid: 8 sizes from 1/1000 to 1/3 of the target's N x 8 token counts from
    1/1000 to 1/3 of its D (so the diagonal keeps the target's tokens per parameter);
    cells costing more than the budget are left out."""
    out = []
    for n in np.geomspace(target_n / 1000.0, target_n / 10 ** 0.5, 8):
        for d in np.geomspace(target_tokens / 1000.0, target_tokens / 10 ** 0.5, 8):
            cost = float(fpt(float(n)) * d)
            if cost <= budget:
                out.append(PlannedCell(float(n), float(d), cost))
    return out


def geometric_baseline(candidates: Sequence[PlannedCell], budget: float,
                       max_side: int = 6) -> list[PlannedCell]:
    """The standard grid a researcher would run: consecutive candidate sizes x consecutive
    token counts (a full product among the candidates, up to `max_side` x `max_side`),
    the one with the most cells, then the most compute, that costs at most `budget`."""
    by_nd = {(c.n_params, c.tokens): c for c in candidates}
    sizes = sorted({c.n_params for c in candidates})
    tokens = sorted({c.tokens for c in candidates})
    if not by_nd:
        return []
    # presence and cost of every (size, tokens) pair; window sums by 2-D prefix sums
    row = {n: i for i, n in enumerate(sizes)}
    col = {d: j for j, d in enumerate(tokens)}
    have = np.zeros((len(sizes) + 1, len(tokens) + 1))
    cost = np.zeros_like(have)
    for (n, d), c in by_nd.items():
        have[row[n] + 1, col[d] + 1] = 1.0
        cost[row[n] + 1, col[d] + 1] = c.flops
    have, cost = have.cumsum(0).cumsum(1), cost.cumsum(0).cumsum(1)

    def windows(table: np.ndarray, a: int, b: int) -> np.ndarray:
        return table[a:, b:] - table[:-a, b:] - table[a:, :-b] + table[:-a, :-b]

    best_key, best_at = (0, 0.0), None
    for a in range(min(max_side, len(sizes)), 0, -1):
        for b in range(min(max_side, len(tokens)), 0, -1):
            if a * b < best_key[0]:
                continue
            full = windows(have, a, b) == a * b
            spend = windows(cost, a, b)
            ok = full & (spend <= budget)
            if not ok.any():
                continue
            at = np.unravel_index(np.argmax(np.where(ok, spend, -1.0)), ok.shape)
            key = (a * b, float(spend[at]))
            if key > best_key:
                best_key, best_at = key, (int(at[0]), int(at[1]), a, b)
    if best_at is None:
        return []
    top, left, rows, cols = best_at
    return [by_nd[(n, d)] for n in sizes[top:top + rows] for d in tokens[left:left + cols]]


def equal_cost_grid(cells: Sequence[PlannedCell], budget: float) -> list[PlannedCell]:
    """`cells` (a grid) with every token count scaled by one factor so that the grid costs
    `budget` FLOPs (cost is linear in tokens): the geometric baseline at the planner's full
    budget, whatever the candidates' spacing left unspent. Unchanged when it costs more."""
    spent = float(sum(c.flops for c in cells))
    if not cells or spent <= 0 or spent >= budget:
        return list(cells)
    scale = budget / spent
    return [PlannedCell(c.n_params, c.tokens * scale, c.flops * scale) for c in cells]


def _check_points(points: pd.DataFrame | None) -> pd.DataFrame | None:
    if points is None:
        return None
    data = validate_frame(points, ("N", "D", "loss"))
    if data.empty:
        return None
    return data


def _check_cells(cells: Sequence[PlannedCell], what: str) -> list[PlannedCell]:
    out = []
    for i, c in enumerate(cells):
        if not isinstance(c, PlannedCell):
            raise ConfigError(f"{what}[{i}] must be a PlannedCell, got {type(c).__name__}")
        for name in ("n_params", "tokens", "flops"):
            _positive(f"{what}[{i}].{name}", getattr(c, name))
        if c.train_flops is not None:
            _positive(f"{what}[{i}].train_flops", c.train_flops)
        tf = float(c.trunk_flops)
        if not (math.isfinite(tf) and tf >= 0) or (tf > 0 and c.trunk is None):
            raise ConfigError(f"{what}[{i}].trunk_flops must be a finite number >= 0 of a "
                              f"named trunk; got {c.trunk_flops!r} (trunk {c.trunk!r})")
        out.append(c)
    return out


def branch_aware_baseline(candidates: Sequence[PlannedCell], budget: float,
                          max_side: int = 6) -> list[PlannedCell]:
    """`geometric_baseline` whose real cost (`cells_cost`, a trunk paid once) is at most
    `budget`: its from-scratch budget bisected in log between `budget` and 16 times it."""
    best = list(geometric_baseline(candidates, budget, max_side))
    lo, hi = budget, budget * 16.0
    for _ in range(8):
        mid = math.sqrt(lo * hi)
        trial = list(geometric_baseline(candidates, mid, max_side))
        if trial and cells_cost(trial) <= budget:
            best, lo = trial, mid
        else:
            hi = mid
    return best


def plan_runs(
    points: pd.DataFrame | None,
    *,
    target_flops: float,
    budget_flops: float,
    candidates: Sequence[PlannedCell] | None = None,
    target_n: float | None = None,
    target_tokens: float | None = None,
    flops_per_token: Callable[[float], float] | None = None,
    baseline: Sequence[PlannedCell] | None = None,
    fit: FitResult | None = None,
    noise: float | None = None,
    kappa: float | None = None,
    n_simulations: int = 8,
    n_bootstrap: int = 100,
    seed: int = 0,
) -> Plan:
    """Choose cells (N params, D tokens) costing at most `budget_flops` FLOPs that make the
    95 % prediction band at the target narrowest.

    points: runs already done (columns N, D, loss; C optional), or None to start from the
    prior. target_flops: the target run's training compute (FLOPs), beyond every existing
    run; target_n / target_tokens: its size and tokens (default: the compute-optimal split
    under the current law). candidates: the cells to choose from (default
    `default_candidates`); flops_per_token(N): FLOPs per training token of an N-parameter
    model (default 6·N), used for the default candidates and the target split. baseline: the
    grid to compare with (default `geometric_baseline` of the candidates scaled by
    `equal_cost_grid` to cost the budget). fit: a Chinchilla
    fit of `points` with bootstrap refits (fitted here when None). noise: run-to-run scatter
    (log loss; default the fit's scatter, else 2 %). kappa: the form's extrapolation error
    per decade (log loss; default the fit's residual model's slope, else 0.5 %).
    Candidates that are cooldown branches (`PlannedCell.train_flops`, `trunk`) cost their
    cooldown and pay their trunk once per design: the budget holds `cells_cost` of the
    chosen cells, and the default baseline is the geometric grid whose `cells_cost` fits it
    (`branch_aware_baseline`, unscaled).
    The identifiability a design needs (7 runs, 3 sizes, 3 token counts, enough for the
    calibration's hold-outs) counts the runs done with the chosen cells; at least one cell
    is chosen.
    The search also charges a design the risk that its fit is degenerate (E at its bound;
    `plan_sim.Criterion.score`), reported as `Plan.failure_risk`.
    n_simulations: simulated fits per design for the reported widths (0: report the
    linearised widths); n_bootstrap: bootstrap refits in each simulated fit.
    """
    target_flops = _positive("target_flops", target_flops)
    budget_flops = _positive("budget_flops", budget_flops)
    fpt = flops_per_token or six_nd
    if n_simulations < 0 or n_bootstrap < 0:
        raise ConfigError("n_simulations and n_bootstrap must be >= 0")
    data = _check_points(points)
    if data is not None:
        largest = float(data["C"].max())
        if target_flops <= largest:
            raise DataError(f"target_flops {target_flops:.3g} is not beyond the runs already "
                            f"done (largest {largest:.3g} FLOPs): plan for a larger target")
        if fit is None:
            fit = fit_chinchilla(data, n_bootstrap=200, seed=seed)
        if fit.form != "chinchilla":
            raise ConfigError(f"the planner needs a chinchilla fit, got {fit.form!r}")
        samples = fit.bootstrap_samples()
        laws = (np.stack([samples[k] for k in PARAM_NAMES], axis=1) if samples
                else np.empty((0, 5)))
        laws = laws[np.all(np.isfinite(laws), axis=1) & (laws[:, 3] > 0) & (laws[:, 4] > 0)]
        if laws.shape[0] < 20:
            raise DataError("the fit of the runs done has too few usable bootstrap refits to "
                            "plan from; fit with bootstrap (n_bootstrap > 0)")
        law = dict(fit.params)
        source = "fit"
        sigma = float(noise) if noise is not None else max(fit.scatter_scale(), 1e-3)
        model = fit.extra.get("scatter_model") or {}
        fitted_k = float(model.get("k", 0.0) or 0.0)
        kap = float(kappa) if kappa is not None else (fitted_k if fitted_k > 0 else PRIOR_KAPPA)
    else:
        laws = prior_draws(N_DRAWS, seed)
        law = prior_law()
        source = "prior"
        sigma = float(noise) if noise is not None else PRIOR_NOISE
        kap = float(kappa) if kappa is not None else PRIOR_KAPPA
    _positive("noise", sigma)
    if kap < 0 or not math.isfinite(kap):
        raise ConfigError(f"kappa must be a finite number >= 0; got {kappa!r}")
    t_n, t_d = _target(law, target_flops, target_n, target_tokens, fpt)

    cands = (default_candidates(t_n, t_d, budget_flops, fpt) if candidates is None
             else _check_cells(candidates, "candidates"))
    cands = [c for c in cands if cells_cost([c]) <= budget_flops and c.flops < target_flops]
    if not cands:
        raise ConfigError(f"no candidate cell costs at most the budget ({budget_flops:.3g} "
                          "FLOPs) and less than the target: raise the budget or add smaller "
                          "cells")
    # cooldown branches: a cell's own cost below its compute, or a trunk to share
    branches = any(c.trunk is not None or c.train_flops is not None for c in cands)
    grid = (branch_aware_baseline(cands, budget_flops) if branches
            else geometric_baseline(cands, budget_flops))
    base_cells = (_check_cells(baseline, "baseline") if baseline is not None
                  else grid if branches else equal_cost_grid(grid, budget_flops))

    existing_n = data["N"].to_numpy(float) if data is not None else np.empty(0)
    existing_d = data["D"].to_numpy(float) if data is not None else np.empty(0)
    trunk_ids = {t: i for i, t in enumerate(sorted({c.trunk for c in cands
                                                     if c.trunk is not None}))}
    problem = DesignProblem(
        laws=laws, cand_n=np.array([c.n_params for c in cands]),
        cand_d=np.array([c.tokens for c in cands]),
        cand_cost=np.array([c.own_flops for c in cands]),
        existing_n=existing_n, existing_d=existing_d,
        existing_cost=data["C"].to_numpy(float) if data is not None else np.empty(0),
        target_n=t_n, target_d=t_d, target_flops=target_flops, sigma=sigma, kappa=kap,
        prior_precision=np.zeros((5, 5)),
        cand_compute=np.array([c.flops for c in cands]) if branches else None,
        cand_trunk=(np.array([trunk_ids.get(c.trunk, -1) if c.trunk is not None else -1
                              for c in cands]) if branches else None),
        cand_trunk_cost=(np.array([float(c.trunk_flops) for c in cands]) if branches
                         else None))
    index = {(c.n_params, c.tokens): i for i, c in enumerate(cands)}
    starts = []
    for start in (base_cells, grid):  # the baseline's cells, where they are candidates
        at = [index.get((c.n_params, c.tokens)) for c in start]
        if at and None not in at:
            starts.append(np.array(at, dtype=int))
            break
    idx = choose_design(problem, budget_flops, starts=starts, seed=seed)
    if idx.size == 0:
        raise ConfigError(f"no set of candidate cells within the budget ({budget_flops:.3g} "
                          "FLOPs) identifies the law together with the runs done (at least "
                          "7 runs over 3 sizes and 3 token counts, enough to calibrate on "
                          "inner hold-outs): raise the budget or add cheaper cells")
    cells = sorted((cands[i] for i in idx), key=lambda c: (c.flops, c.n_params))
    lin, risk = _linear_width(problem, cells)
    lin_base, risk_base = _linear_width(problem, base_cells)

    widths: tuple[float, ...] = ()
    base_widths: tuple[float, ...] = ()
    exp_w, base_w = lin, lin_base
    if n_simulations > 0:
        from scaletrack.analysis.plan_sim import simulated_widths

        widths = simulated_widths(cells, data, laws, sigma, (t_n, t_d), n_simulations,
                                  n_bootstrap=n_bootstrap, seed=seed)
        base_widths = simulated_widths(base_cells, data, laws, sigma, (t_n, t_d),
                                       n_simulations, n_bootstrap=n_bootstrap, seed=seed)
        exp_w, base_w = _finite_mean(widths), _finite_mean(base_widths)
    return Plan(
        cells=tuple(cells), cost_flops=cells_cost(cells),
        budget_flops=budget_flops, target_flops=target_flops, target_n=t_n,
        target_tokens=t_d, expected_width=exp_w, baseline_cells=tuple(base_cells),
        baseline_cost_flops=cells_cost(base_cells), baseline_width=base_w,
        linear_width=lin, baseline_linear_width=lin_base, law_source=source,
        law={k: float(v) for k, v in law.items()}, noise=sigma, kappa=kap,
        n_simulations=int(n_simulations), seed=int(seed), widths=tuple(widths),
        baseline_widths=tuple(base_widths), failure_risk=risk,
        baseline_failure_risk=risk_base)


def _nan_share(values: Sequence[float]) -> float:
    v = np.asarray(values, dtype=float)
    return float(np.isnan(v).mean()) if v.size else math.nan


def _finite_mean(values: Sequence[float]) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def _linear_width(problem: DesignProblem, cells: Sequence[PlannedCell]
                  ) -> tuple[float, float]:
    """The linearised criterion's mean width and failure risk for any cells (not only
    candidates)."""
    if not cells:
        return math.nan, math.nan
    sub = dataclasses.replace(problem, cand_n=np.array([c.n_params for c in cells]),
                              cand_d=np.array([c.tokens for c in cells]),
                              cand_cost=np.array([c.flops for c in cells]),
                              cand_compute=None, cand_trunk=None, cand_trunk_cost=None)
    crit = Criterion(sub)
    design = [np.arange(len(cells))]
    return float(crit.mean_width(design)[0]), float(crit.failure_risk(design)[0])


def expected_band_width(
    points_or_fit: pd.DataFrame | FitResult,
    *,
    target_flops: float,
    target_n: float | None = None,
    target_tokens: float | None = None,
    flops_per_token: Callable[[float], float] | None = None,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> float:
    """Relative width (hi - lo) / predicted of the 95 % prediction band at the target for
    the runs done (a frame with N, D, loss) or a Chinchilla fit of them; target as for
    `plan_runs` (FLOPs; params and tokens default to the fit's compute-optimal split)."""
    target_flops = _positive("target_flops", target_flops)
    fpt = flops_per_token or six_nd
    if isinstance(points_or_fit, FitResult):
        fit = points_or_fit
        if fit.form != "chinchilla":
            raise ConfigError(f"the band width needs a chinchilla fit, got {fit.form!r}")
    else:
        data = _check_points(points_or_fit)
        if data is None:
            raise DataError("no runs to fit: the band width needs finished runs")
        fit = fit_chinchilla(data, n_bootstrap=n_bootstrap, seed=seed)
    t_n, t_d = _target(dict(fit.params), target_flops, target_n, target_tokens, fpt)
    band = fit.predict_interval(np.array([t_n]), np.array([t_d]), seed=seed)
    return float((band["hi"].iloc[0] - band["lo"].iloc[0]) / band["pred"].iloc[0])
