"""The planner with runs already done and with cooldown branches: the runs done count
towards identifying the law, a plan always proposes a run, and branches of one trunk chosen
together pay the trunk once."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scaletrack.analysis import PlannedCell, fit_chinchilla, plan_runs
from scaletrack.analysis.plan import PUBLISHED_FITS, cells_cost
from scaletrack.errors import ConfigError

LAW = PUBLISHED_FITS["besiroglu2024"]
SIZES = 3e7 * 10 ** (np.arange(5) / 4)  # params
TOKENS = 6e8 * 10 ** (np.arange(5) / 4)  # tokens
TARGET = 100 * 6 * SIZES[-1] * TOKENS[-1]  # FLOPs
COOLDOWN = 0.2  # a branch's own share of its compute; the trunk trains the rest


def law_frame(pairs: list[tuple[float, float]], seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = np.array([p[0] for p in pairs])
    d = np.array([p[1] for p in pairs])
    loss = LAW["E"] + LAW["A"] * n ** -LAW["alpha"] + LAW["B"] * d ** -LAW["beta"]
    return pd.DataFrame({"N": n, "D": d, "loss": loss * np.exp(rng.normal(0, 0.02, n.size))})


# Twelve runs over four sizes and five token counts: they identify the law on their own.
DONE = law_frame([(SIZES[0], TOKENS[0]), (SIZES[0], TOKENS[1]), (SIZES[0], TOKENS[2]),
                  (SIZES[1], TOKENS[0]), (SIZES[1], TOKENS[2]), (SIZES[1], TOKENS[4]),
                  (SIZES[3], TOKENS[0]), (SIZES[3], TOKENS[1]), (SIZES[3], TOKENS[2]),
                  (SIZES[4], TOKENS[0]), (SIZES[4], TOKENS[2]), (SIZES[4], TOKENS[3])])


def branches(size: float, trunk_trained: bool = False) -> list[PlannedCell]:
    """Cooldown branches of one size at every token count; the trunk trains each to its
    branch point (1 - COOLDOWN of its tokens)."""
    return [PlannedCell(size, d, 6 * size * d, train_flops=COOLDOWN * 6 * size * d,
                        trunk=None if trunk_trained else f"trunk-{size:.3g}",
                        trunk_flops=0.0 if trunk_trained else (1 - COOLDOWN) * 6 * size * d)
            for d in TOKENS]


def test_cells_cost_pays_a_trunk_once_up_to_its_latest_branch_point():
    cells = branches(SIZES[2])[:3]
    own = sum(COOLDOWN * c.flops for c in cells)
    assert cells_cost(cells) == pytest.approx(own + (1 - COOLDOWN) * cells[-1].flops)
    assert cells_cost(cells) < sum(c.flops for c in cells)
    plain = [PlannedCell(SIZES[0], d, 6 * SIZES[0] * d) for d in TOKENS]
    assert cells_cost(plain) == pytest.approx(sum(c.flops for c in plain))


def test_runs_done_identify_the_law_when_one_branch_fits_the_budget():
    """Only one candidate fits (each carries its trunk in a flat cost), and the criterion
    rates the runs done alone narrower than with it: the plan still proposes that cell
    instead of refusing the design as unidentified."""
    fit = fit_chinchilla(DONE, n_bootstrap=100)
    size = SIZES[2]
    flat = [PlannedCell(size, d, (1 - COOLDOWN) * 6 * size * TOKENS[-1] + COOLDOWN * 6 * size * d)
            for d in TOKENS]
    budget = 1.3 * min(c.flops for c in flat)
    plan = plan_runs(DONE, target_flops=TARGET, budget_flops=budget, candidates=flat,
                     fit=fit, n_simulations=0)
    assert len(plan.cells) == 1
    assert plan.cells[0] in flat and plan.cost_flops <= budget


def test_branches_of_an_untrained_trunk_share_its_cost_within_the_budget():
    """The trunk plus three cooldowns fit the budget; no two branches would if each carried
    the trunk. The plan takes several branches and counts the trunk once."""
    fit = fit_chinchilla(DONE, n_bootstrap=100)
    cands = branches(SIZES[2])
    budget = cells_cost(cands[:3]) * 1.01
    assert 2 * min((1 - COOLDOWN) * 6 * SIZES[2] * TOKENS[2] + c.own_flops for c in cands) \
        > budget  # flat costs: at most one branch
    plan = plan_runs(DONE, target_flops=TARGET, budget_flops=budget, candidates=cands,
                     fit=fit, n_simulations=0)
    assert set(plan.cells) <= set(cands)
    assert plan.cost_flops == pytest.approx(cells_cost(plan.cells))
    assert plan.cost_flops <= budget
    assert plan.cost_flops < sum(c.flops for c in plan.cells)  # the trunk counted once


def test_a_prior_plan_of_branches_identifies_the_law_within_a_branch_aware_budget():
    """From the prior, with every size a trunk to train: the budget holds a plan of at least
    7 cells over 3 sizes and 3 token counts only because each trunk is paid once."""
    cands = [c for size in SIZES[:4] for c in branches(size)]
    budget = 0.4 * cells_cost(cands)
    plan = plan_runs(None, target_flops=TARGET, budget_flops=budget, candidates=cands,
                     n_simulations=0)
    assert len(plan.cells) >= 7
    assert len({c.n_params for c in plan.cells}) >= 3
    assert len({c.tokens for c in plan.cells}) >= 3
    assert plan.cost_flops <= budget
    assert plan.cost_flops == pytest.approx(cells_cost(plan.cells))
    assert max(sum(c.trunk == t for c in plan.cells) for t in {c.trunk for c in plan.cells}) > 1
    assert plan.baseline_cost_flops <= budget
    assert plan.baseline_cost_flops == pytest.approx(cells_cost(plan.baseline_cells))


def test_cells_without_trunks_plan_as_before():
    """A cell whose own cost is its compute and that has no trunk is a plain cell."""
    plain = [PlannedCell(n, d, 6 * n * d) for n in SIZES for d in TOKENS]
    same = [PlannedCell(c.n_params, c.tokens, c.flops, train_flops=c.flops) for c in plain]
    budget = 0.3 * sum(c.flops for c in plain)
    a = plan_runs(None, target_flops=TARGET, budget_flops=budget, candidates=plain,
                  n_simulations=0)
    b = plan_runs(None, target_flops=TARGET, budget_flops=budget, candidates=same,
                  n_simulations=0)
    assert [(c.n_params, c.tokens) for c in a.cells] == [(c.n_params, c.tokens) for c in b.cells]
    assert math.isclose(a.linear_width, b.linear_width)


def test_trunk_flops_without_a_trunk_is_refused():
    bad = [PlannedCell(SIZES[0], TOKENS[0], 1e18, trunk_flops=5e17)]
    with pytest.raises(ConfigError, match=r"candidates\[0\]\.trunk_flops"):
        plan_runs(None, target_flops=TARGET, budget_flops=1e20, candidates=bad,
                  n_simulations=0)


def test_a_branch_grid_plan_counts_what_the_grid_trains():
    """`scaletrack plan --schedule wsd-branches`: the plan's cost is what its grid file
    really trains (each size's trunk once), within the budget."""
    from scaletrack.planning import plan_builtin_grid

    budget = 3e11
    planned = plan_builtin_grid(target_compute=1e14, budget=budget, schedule="wsd-branches",
                                n_simulations=0)
    assert planned.plan.cost_flops == pytest.approx(planned.cost_flops, rel=1e-9)
    assert planned.cost_flops <= budget
    assert any(sum(c.trunk == t for c in planned.plan.cells) > 1
               for t in {c.trunk for c in planned.plan.cells})
    assert all(c.trunk is not None for c in planned.plan.cells)


def test_branches_of_a_trained_trunk_cost_their_cooldown_only():
    """Every trunk trained: four cooldowns fit a budget that holds one cell from scratch."""
    fit = fit_chinchilla(DONE, n_bootstrap=100)
    cands = branches(SIZES[2], trunk_trained=True)
    budget = 1.01 * sum(c.own_flops for c in cands[:4])
    assert budget < cands[0].flops + cands[1].flops  # from scratch: one cell at most
    plan = plan_runs(DONE, target_flops=TARGET, budget_flops=budget, candidates=cands,
                     fit=fit, n_simulations=0)
    assert len(plan.cells) >= 2
    assert plan.cost_flops == pytest.approx(sum(c.own_flops for c in plan.cells))
    assert plan.cost_flops <= budget
