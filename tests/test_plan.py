"""The run planner: cells within budget, narrower bands for more compute, the prior when no
runs exist, and one clear error for bad input."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from scaletrack.analysis import (
    Plan,
    PlannedCell,
    expected_band_width,
    fit_chinchilla,
    plan_runs,
)
from scaletrack.analysis.plan import (
    PUBLISHED_FITS,
    equal_cost_grid,
    geometric_baseline,
    optimal_split,
    prior_draws,
    prior_law,
)
from scaletrack.analysis.plan_sim import (
    Criterion,
    DesignProblem,
    choose_design,
    expected_reach_model,
)
from scaletrack.errors import ConfigError, DataError, ScaletrackError

LAW = PUBLISHED_FITS["besiroglu2024"]
SIZES = 3e7 * 10 ** (np.arange(5) / 4)
TOKENS = 6e8 * 10 ** (np.arange(5) / 4)


def candidates() -> list[PlannedCell]:
    return [PlannedCell(n, d, 6 * n * d) for n in SIZES for d in TOKENS]


def simulated_points(seed: int = 0, noise: float = 0.02) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = np.repeat(SIZES[:4], 4)
    d = np.tile(TOKENS[:4], 4)
    loss = (LAW["E"] + LAW["A"] * n ** -LAW["alpha"] + LAW["B"] * d ** -LAW["beta"])
    return pd.DataFrame({"N": n, "D": d, "loss": loss * np.exp(rng.normal(0, noise, n.size))})


def grid_cost() -> float:
    return sum(c.flops for c in candidates())


def test_planned_cells_are_candidates_within_budget():
    budget = 0.3 * grid_cost()
    target = 100 * 6 * SIZES[-1] * TOKENS[-1]
    plan = plan_runs(None, target_flops=target, budget_flops=budget, candidates=candidates(),
                     n_simulations=0)
    assert isinstance(plan, Plan)
    assert plan.cells and plan.cost_flops <= budget
    assert math.isclose(plan.cost_flops, sum(c.flops for c in plan.cells))
    assert set(plan.cells) <= set(candidates())
    assert len(set(plan.cells)) == len(plan.cells)
    assert len(plan.cells) >= 7
    assert len({c.n_params for c in plan.cells}) >= 3
    assert len({c.tokens for c in plan.cells}) >= 3
    assert plan.baseline_cost_flops <= budget
    assert plan.target_flops == target


def test_score_shrinks_with_budget():
    """More compute buys a narrower band or a fit less likely to be degenerate: the score
    the search minimises (width plus the charge for failure risk) falls with the budget."""
    from scaletrack.analysis import plan_sim

    target = 100 * 6 * SIZES[-1] * TOKENS[-1]
    plans = [plan_runs(None, target_flops=target, budget_flops=f * grid_cost(),
                       candidates=candidates(), n_simulations=0) for f in (0.1, 0.3, 1.0)]
    scores = [p.linear_width + plan_sim.FAILURE_PENALTY
              * max(p.failure_risk - plan_sim.MAX_FAILURE_RISK, 0.0) for p in plans]
    assert scores[0] > scores[1] > scores[2] > 0
    assert plans[0].failure_risk > plans[2].failure_risk


def test_no_points_plans_from_the_prior():
    target = 100 * 6 * SIZES[-1] * TOKENS[-1]
    plan = plan_runs(None, target_flops=target, budget_flops=grid_cost(),
                     candidates=candidates(), n_simulations=0)
    assert plan.law_source == "prior"
    assert plan.law == pytest.approx(prior_law())
    n_opt, d_opt = optimal_split(prior_law(), target)
    assert plan.target_n == pytest.approx(n_opt, rel=1e-4)
    assert plan.target_tokens == pytest.approx(d_opt, rel=1e-4)
    assert plan.target_n * plan.target_tokens * 6 == pytest.approx(target, rel=1e-6)


def test_prior_spans_the_published_fits():
    draws = prior_draws(2000, seed=1)
    assert draws.shape == (2000, 5)
    for fit in PUBLISHED_FITS.values():
        for i, name in enumerate(("E", "A", "B", "alpha", "beta")):
            assert draws[:, i].min() < fit[name] < draws[:, i].max()
    share = draws[:, 4] / (draws[:, 3] + draws[:, 4])
    assert share.min() >= 0.44 and share.max() <= 0.58


def test_existing_runs_plan_from_the_fit():
    points = simulated_points()
    fit = fit_chinchilla(points, n_bootstrap=100)
    target = 100 * 6 * SIZES[-1] * TOKENS[-1]
    plan = plan_runs(points, target_flops=target, budget_flops=0.3 * grid_cost(),
                     candidates=candidates(), n_simulations=0, fit=fit)
    assert plan.law_source == "fit"
    assert plan.law == pytest.approx(dict(fit.params))
    assert plan.noise == pytest.approx(fit.scatter_scale())
    assert plan.cost_flops <= 0.3 * grid_cost()


def test_target_size_given_fixes_the_tokens():
    target = 100 * 6 * SIZES[-1] * TOKENS[-1]
    plan = plan_runs(None, target_flops=target, budget_flops=grid_cost(),
                     candidates=candidates(), target_n=2e10, n_simulations=0)
    assert plan.target_n == 2e10
    assert plan.target_tokens == pytest.approx(target / (6 * 2e10))


def test_flops_per_token_sets_the_default_candidates_cost():
    target = 1e21

    def per_token(n: float) -> float:
        return 6 * n + 1e6

    plan = plan_runs(None, target_flops=target, budget_flops=1e20,
                     flops_per_token=per_token, n_simulations=0)
    for c in plan.cells:
        assert c.flops == pytest.approx(per_token(c.n_params) * c.tokens)
    assert per_token(plan.target_n) * plan.target_tokens == pytest.approx(target, rel=1e-6)


def test_geometric_baseline_is_a_full_grid_within_budget():
    cells = geometric_baseline(candidates(), 0.5 * grid_cost())
    sizes = {c.n_params for c in cells}
    tokens = {c.tokens for c in cells}
    assert len(cells) == len(sizes) * len(tokens) > 0
    assert sum(c.flops for c in cells) <= 0.5 * grid_cost()


def test_band_width_grows_with_extrapolation():
    points = simulated_points()
    c_max = float((6 * points["N"] * points["D"]).max())
    near = expected_band_width(points, target_flops=10 * c_max, n_bootstrap=100)
    far = expected_band_width(points, target_flops=1000 * c_max, n_bootstrap=100)
    assert 0 < near < far


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"budget_flops": 0.0}, ConfigError, "budget_flops"),
        ({"budget_flops": -1e20}, ConfigError, "budget_flops"),
        ({"budget_flops": float("nan")}, ConfigError, "budget_flops"),
        ({"target_flops": float("nan")}, ConfigError, "target_flops"),
        ({"target_flops": "big"}, ConfigError, "target_flops"),
        ({"target_n": -5.0}, ConfigError, "target_n"),
        ({"budget_flops": 1.0}, ConfigError, "budget"),
    ],
)
def test_bad_arguments_give_one_line(kwargs, error, words):
    args = {"target_flops": 1e22, "budget_flops": grid_cost(), "candidates": candidates(),
            "n_simulations": 0, **kwargs}
    with pytest.raises(error) as info:
        plan_runs(None, **args)
    message = str(info.value)
    assert words in message and "\n" not in message


def test_target_below_the_data_is_refused():
    points = simulated_points()
    c_max = float((6 * points["N"] * points["D"]).max())
    with pytest.raises(DataError, match="not beyond"):
        plan_runs(points, target_flops=c_max / 2, budget_flops=grid_cost(),
                  candidates=candidates(), n_simulations=0)


def test_nan_in_points_is_refused():
    points = simulated_points()
    points.loc[3, "loss"] = float("nan")
    with pytest.raises(ScaletrackError, match="loss"):
        plan_runs(points, target_flops=1e22, budget_flops=grid_cost(),
                  candidates=candidates(), n_simulations=0)


def test_bad_candidate_is_named():
    bad = [*candidates(), PlannedCell(1e8, float("inf"), 1e18)]
    with pytest.raises(ConfigError, match=r"candidates\[25\]\.tokens"):
        plan_runs(None, target_flops=1e22, budget_flops=grid_cost(), candidates=bad,
                  n_simulations=0)


@pytest.mark.slow
def test_simulated_widths_of_plan_and_baseline():
    target = 100 * 6 * SIZES[-1] * TOKENS[-1]
    plan = plan_runs(None, target_flops=target, budget_flops=grid_cost(),
                     candidates=candidates(), n_simulations=3, n_bootstrap=50, seed=3)
    assert plan.n_simulations == 3 and len(plan.widths) == 3 and len(plan.baseline_widths) == 3
    # a refused or degenerate simulated fit (e.g. E at its bound 0) counts as NaN, never 0
    widths = np.asarray(plan.widths)
    assert np.all(np.isnan(widths) | (widths > 0))
    finite = widths[np.isfinite(widths)]
    if finite.size:
        assert plan.expected_width == pytest.approx(finite.mean())
    else:
        assert math.isnan(plan.expected_width)
    assert np.isfinite(plan.baseline_width) and plan.baseline_width > 0
    assert plan.baseline_width == pytest.approx(np.nanmean(plan.baseline_widths))


def test_default_candidates_give_a_full_baseline_grid():
    plan = plan_runs(None, target_flops=1e21, budget_flops=1e19, n_simulations=0)
    sizes = {c.n_params for c in plan.baseline_cells}
    tokens = {c.tokens for c in plan.baseline_cells}
    assert len(sizes) >= 3 and len(tokens) >= 3
    assert len(plan.baseline_cells) == len(sizes) * len(tokens)
    assert plan.baseline_cost_flops <= 1e19
    assert [c.flops for c in plan.cells] == sorted(c.flops for c in plan.cells)


def distance_problem(distance_error: float) -> DesignProblem:
    cells = candidates()
    return DesignProblem(
        laws=prior_draws(64, seed=0), cand_n=np.array([c.n_params for c in cells]),
        cand_d=np.array([c.tokens for c in cells]), cand_cost=np.array([c.flops for c in cells]),
        existing_n=np.empty(0), existing_d=np.empty(0), existing_cost=np.empty(0),
        target_n=SIZES[-1] * 30, target_d=TOKENS[-1] * 30,
        target_flops=6 * SIZES[-1] * TOKENS[-1] * 900, sigma=0.02, kappa=0.005,
        prior_precision=np.zeros((5, 5)), distance_error=distance_error)


def test_distance_error_discounts_cells_by_their_distance_from_the_target():
    plain, far = Criterion(distance_problem(0.0)), Criterion(distance_problem(0.02))
    decades = np.log10(distance_problem(0.0).target_flops / plain.cost)
    expected = plain.s2 / (plain.s2 + (0.02 * decades) ** 2)
    ratio = far.outer[:, :, 0, 0] / plain.outer[:, :, 0, 0]
    assert np.allclose(ratio, expected[None, :])
    # the cheapest cells lose the most weight, so a design of them widens the most
    small = np.argsort(plain.cost)[:9]
    large = np.argsort(plain.cost)[-9:]
    grow_small = far.mean_width([small])[0] / plain.mean_width([small])[0]
    grow_large = far.mean_width([large])[0] / plain.mean_width([large])[0]
    assert grow_small > grow_large > 1.0


def test_distance_error_moves_the_design_towards_the_target():
    budget = 0.3 * grid_cost()
    near = {"target_flops": 10 * 6 * SIZES[-1] * TOKENS[-1], "target_n": 3 * SIZES[-1],
            "target_d": 3 * TOKENS[-1]}
    problems = [dataclasses.replace(distance_problem(lam), **near) for lam in (0.0, 0.1)]
    designs = [choose_design(p, budget) for p in problems]
    cost = problems[0].cand_cost
    mean_log_cost = [float(np.mean(np.log10(cost[idx]))) for idx in designs]
    assert all(cost[idx].sum() <= budget for idx in designs)
    assert mean_log_cost[1] > mean_log_cost[0]


def brute_force_baseline(cells, budget):
    """(cells, FLOPs) of the largest full product of consecutive sizes x consecutive token
    counts within budget (most cells, then most compute), by enumerating every window."""
    by_nd = {(c.n_params, c.tokens): c for c in cells}
    sizes = sorted({c.n_params for c in cells})
    tokens = sorted({c.tokens for c in cells})
    best_key = (0, 0.0)
    for a in range(1, min(6, len(sizes)) + 1):
        for b in range(1, min(6, len(tokens)) + 1):
            for i in range(len(sizes) - a + 1):
                for j in range(len(tokens) - b + 1):
                    found = [by_nd.get((n, d)) for n in sizes[i:i + a] for d in tokens[j:j + b]]
                    if None in found:
                        continue
                    key = (a * b, sum(c.flops for c in found))
                    if key[1] <= budget and key > best_key:
                        best_key = key
    return best_key


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_geometric_baseline_matches_every_window_searched(seed):
    rng = np.random.default_rng(seed)
    cells = [c for c in candidates() if rng.random() > 0.2]  # a ladder with holes
    budget = 0.4 * sum(c.flops for c in cells)
    found = geometric_baseline(cells, budget)
    key = (len(found), sum(c.flops for c in found))
    assert key[0] == brute_force_baseline(cells, budget)[0]
    assert key[1] == pytest.approx(brute_force_baseline(cells, budget)[1])


def test_equal_cost_grid_spends_the_budget_on_the_same_sizes():
    grid = geometric_baseline(candidates(), 0.5 * grid_cost())
    spent = sum(c.flops for c in grid)
    scaled = equal_cost_grid(grid, 0.5 * grid_cost())
    assert spent < 0.5 * grid_cost()
    assert sum(c.flops for c in scaled) == pytest.approx(0.5 * grid_cost())
    assert [c.n_params for c in scaled] == [c.n_params for c in grid]
    ratios = {round(s.tokens / g.tokens, 9) for s, g in zip(scaled, grid, strict=True)}
    assert len(ratios) == 1 and ratios.pop() > 1.0
    assert equal_cost_grid(grid, 0.5 * spent) == grid  # never shrunk


def test_plan_baseline_costs_the_whole_budget():
    budget = 0.37 * grid_cost()
    plan = plan_runs(None, target_flops=1e22, budget_flops=budget, candidates=candidates(),
                     n_simulations=0)
    assert plan.baseline_cost_flops == pytest.approx(budget)
    assert plan.cost_flops <= budget


def test_expected_reach_model_recovers_growth_with_reach():
    d = np.repeat([0.0, 0.2, 0.5, 1.0, 1.5], 6)
    s0_sq, k_sq = expected_reach_model(0.02 ** 2 + (0.03 * d) ** 2, d)
    assert s0_sq == pytest.approx(0.02 ** 2, rel=0.15)
    assert k_sq == pytest.approx(0.03 ** 2, rel=0.3)
    flat = expected_reach_model(np.full(d.size, 0.02 ** 2), d)
    assert flat[0] == pytest.approx(0.02 ** 2) and flat[1] == 0.0


def test_band_widens_as_the_target_reaches_beyond_the_largest_model():
    crit = Criterion(distance_problem(0.0))
    design = [np.argsort(crit.cost)[:12]]
    near = crit.mean_width(design)[0]
    far_n = dataclasses.replace(distance_problem(0.0), target_n=SIZES[-1] * 300,
                                target_d=TOKENS[-1] * 3)  # same compute, 10x larger model
    assert Criterion(far_n).mean_width(design)[0] > near


def test_batched_widths_equal_one_at_a_time():
    crit = Criterion(distance_problem(0.01))
    rng = np.random.default_rng(4)
    designs = [np.sort(rng.choice(crit.cost.size, size, replace=False)) for size in (9, 12, 20)]
    together = crit.mean_width(designs)
    alone = [crit.mean_width([d])[0] for d in designs]
    assert np.allclose(together, alone)
    assert np.allclose(together, [crit.design_widths(d).mean() for d in designs])


def test_failure_risk_falls_with_spread_in_n_and_d():
    """A design over a narrow block of sizes and token counts pins E worse (its fits more
    often put E at its bound) than one of as many cells spread over the whole range."""
    crit = Criterion(distance_problem(0.0))
    n, d = crit.problem.cand_n, crit.problem.cand_d
    block = np.flatnonzero((n <= SIZES[2]) & (d <= TOKENS[2]))  # 3 x 3, half a decade each
    corners = np.flatnonzero(np.isin(n, SIZES[[0, 2, 4]]) & np.isin(d, TOKENS[[0, 2, 4]]))
    risk = crit.failure_risk([block, corners])
    assert block.size == corners.size == 9
    assert 0.0 <= risk[1] < risk[0] <= 0.5
    # noisier runs pin E worse
    noisy = Criterion(dataclasses.replace(distance_problem(0.0), sigma=0.04))
    assert noisy.failure_risk([corners])[0] > risk[1]


def test_score_charges_only_the_risk_beyond_the_allowance():
    from scaletrack.analysis import plan_sim

    crit = Criterion(distance_problem(0.0))
    n, d = crit.problem.cand_n, crit.problem.cand_d
    designs = [np.flatnonzero((n <= SIZES[2]) & (d <= TOKENS[2])), np.arange(n.size)]
    width, risk = crit.mean_width(designs), crit.failure_risk(designs)
    excess = np.maximum(risk - plan_sim.MAX_FAILURE_RISK, 0.0)
    assert np.allclose(crit.score(designs), width + plan_sim.FAILURE_PENALTY * excess)
    assert excess[0] > 0  # the narrow block is charged


def test_plan_reports_failure_risk_and_failed_share():
    budget = 0.5 * grid_cost()
    target = 100 * 6 * SIZES[-1] * TOKENS[-1]
    plan = plan_runs(None, target_flops=target, budget_flops=budget, candidates=candidates(),
                     n_simulations=3, n_bootstrap=20)
    assert 0.0 <= plan.failure_risk <= 1.0 and 0.0 <= plan.baseline_failure_risk <= 1.0
    assert plan.failed_share == np.mean(np.isnan(plan.widths))
    assert plan.baseline_failed_share == np.mean(np.isnan(plan.baseline_widths))
    assert math.isnan(dataclasses.replace(plan, widths=()).failed_share)
