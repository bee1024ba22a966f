"""Plan the small runs that predict a target run, as a grid file: what `scaletrack plan` and
`scaletrack.plan` are.

The numerics live in `scaletrack.analysis.plan` (`plan_runs`); this module supplies what
they need from the layers around them: the runs done so far (a sweep of a store, or a
frame), the candidate cells (for the built-in GPT: shapes from `models.ladder` with their
exact parameter and FLOP counts, found by expanding a grid of candidates with
`sweeps.grid`), the branch-aware cost of a plan (with cooldown branches a size's trunk is
paid once), and the grid file (TOML) the plan becomes, with a `[plan]` table
(`sweeps.plan_spec`) listing the planned cells. The adaptive sweep that follows a plan cell
by cell is `scaletrack.adaptive`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaletrack.errors import ConfigError, DataError
from scaletrack.number_format import fmt_number

if TYPE_CHECKING:
    import pandas as pd

    from scaletrack.analysis.plan import Plan, PlannedCell
    from scaletrack.analysis.result import FitResult
    from scaletrack.store.protocol import StoreLike
    from scaletrack.sweeps.grid import Cell, Grid

SCHEDULES = ("cosine", "wsd-branches")
# The built-in GPT on the Zipf-words corpus, as `scaletrack demo` trains it (2 CPU cores)
ZIPF_CONTEXT = 32
ZIPF_BATCH = 32
ZIPF_LR = 1e-2
MIN_GPT_PARAMS = 1000  # models.ladder's smallest GPT
N_SIZES = 8  # candidate sizes: N*/1000 .. N*/3 on a geometric ladder
TOKEN_STEP = 2.0  # candidate token budgets: a geometric ladder of this ratio
MIN_BOOTSTRAP_DRAWS = 20  # what analysis.plan needs of a fit to plan from
MIN_STEPS = 50  # the shortest candidate run (steps): shorter ones hardly train


@dataclass(frozen=True)
class PlannedGrid:
    """A plan and the grid file that runs it.

    plan: the planner's result (`analysis.plan.Plan`). cost_flops: what the grid really
    trains (FLOPs; with cooldown branches each trunk once, as the plan counts it).
    baseline_cost_flops: the same for the geometric grid it is compared with.
    grid_toml: the grid file's text; cells: its cells (sweeps.grid.Cell) in schedule order.
    """

    plan: Plan
    cost_flops: float
    baseline_cost_flops: float
    grid_toml: str
    cells: tuple[Cell, ...]


# ------------------------------------------------------------------------------- points


def load_points(
    *,
    store: StoreLike | str | None = None,
    sweep: str | None = None,
    points: pd.DataFrame | str | Path | None = None,
) -> pd.DataFrame | None:
    """The runs done so far as the frame the planner takes (N params, D tokens, C FLOPs, loss
    nats), the best learning rate per (N, D) and seeds averaged as `scaletrack fit` does:
    a sweep of a store (an open store or a URL), a frame, a CSV path read as `fit --csv`
    reads it, or None (no runs: plan from the prior)."""
    import pandas as pd

    from scaletrack.analysis.selection import select_points

    if sweep is not None and points is not None:
        raise ConfigError("give a sweep or points, not both")
    if sweep is not None:
        from scaletrack.store import Store
        from scaletrack.store.fit_points import sweep_points

        if store is None or isinstance(store, str):
            with Store.open(store, create=False) as st:
                frame = sweep_points(st, sweep)
        else:
            frame = sweep_points(store, sweep)
    elif isinstance(points, (str, Path)):
        frame = read_points_csv(points)
    elif points is not None:
        if not isinstance(points, pd.DataFrame):
            raise ConfigError(f"points must be a DataFrame or a CSV path, got "
                              f"{type(points).__name__}")
        frame = points
    else:
        return None
    frame = frame.copy()
    if "C" not in frame.columns and {"N", "D"} <= set(frame.columns):
        frame["C"] = 6.0 * frame["N"].astype(float) * frame["D"].astype(float)
    selected, _ = select_points(frame, "chinchilla")
    return selected


def read_points_csv(path: str | Path) -> pd.DataFrame:
    """A CSV of runs read as `scaletrack fit --csv` reads it (N, D, loss; C optional, D from
    C/(6·N) when the file has N and C only)."""
    from scaletrack.analysis.io import read_fit_csv

    df = read_fit_csv(path, columns={"N": "N", "D": "D", "loss": "loss", "C": "C"},
                      required=("loss",))
    missing = [c for c in ("N", "D") if c not in df.columns]
    if missing:
        raise DataError(f"CSV {str(path)!r} has no column {missing[0]!r} (and no C to derive "
                        "it from)")
    return df


# --------------------------------------------------------------------------- the target


def gpt_flops_per_token(context: int, vocab_size: int) -> Callable[[float], float]:
    """FLOPs per training token of the built-in GPT that `models.ladder` builds for N
    non-embedding parameters (the 'full' convention, logits counted)."""
    from scaletrack.models.accounting import flops_per_token
    from scaletrack.models.ladder import shape_for

    @functools.lru_cache(maxsize=4096)
    def per_token(n_rounded: int) -> float:
        cfg = shape_for("gpt", max(MIN_GPT_PARAMS, n_rounded), context=context,
                        vocab_size=vocab_size)
        return float(flops_per_token(cfg))

    def fpt(n_params: float) -> float:
        # the ladder is discrete; between its shapes scale linearly in N (never below 6·N)
        n = max(float(n_params), 1.0)
        base = per_token(int(float(f"{n:.2g}")))
        return max(6.0 * n, base * n / max(float(f"{n:.2g}"), 1.0))

    return fpt


def target_split(
    law: dict[str, float], target_flops: float, target_n: float | None,
    target_tokens: float | None, fpt: Callable[[float], float],
) -> tuple[float, float]:
    """The target's (N params, D tokens): as given, or the compute-optimal split of
    `target_flops` under `law` with D = C / fpt(N)."""
    from scaletrack.analysis.plan import optimal_split

    if target_n is not None and target_tokens is not None:
        return float(target_n), float(target_tokens)
    if target_n is not None:
        return float(target_n), target_flops / fpt(float(target_n))
    if target_tokens is not None:
        lo, hi = 1.0, 1e16
        for _ in range(200):  # fpt(N)·D grows with N: bisect log N for C = fpt(N)·D
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if fpt(mid) * target_tokens < target_flops else (lo, mid)
        return math.sqrt(lo * hi), float(target_tokens)
    return optimal_split(law, target_flops, fpt)


# ------------------------------------------------------------------- the built-in GPT grid


def zipf_gpt_spec(name: str, schedule: str, sizes: Sequence[dict[str, int]],
                  tokens: Sequence[int]) -> dict[str, Any]:
    """A grid (as the dict a grid file holds) of the built-in GPT on the Zipf-words corpus:
    `sizes` (explicit shapes) x `tokens`, one seed and learning rate, local CPU executor."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"--schedule: expected one of {', '.join(SCHEDULES)}, got "
                          f"{schedule!r}")
    sched: dict[str, Any] = {"kind": "cosine", "warmup_frac": 0.05, "min_lr_frac": 0.1}
    if schedule == "wsd-branches":
        sched = {"kind": "wsd", "branches": True, "cooldown": "1-sqrt", "decay_frac": 0.2,
                 "warmup_steps": 20, "min_lr_frac": 0.1}
    return {
        "name": name,
        "description": "cells chosen by `scaletrack plan` for the built-in GPT on Zipf words",
        "data": {"corpus": "zipf-words", "context": ZIPF_CONTEXT},
        "model": {"family": "gpt", "sizes": [dict(s) for s in sizes]},
        "axes": {"tokens": [int(t) for t in tokens], "seeds": [0], "lrs": [ZIPF_LR]},
        "train": {"batch_size": ZIPF_BATCH, "device": "cpu"},
        "schedule": sched,
        "eval": {"every": 50, "batches": 8},
        "checkpoint": {"every": 250},
        "executor": {"kind": "local", "workers": 1},
    }


def gpt_ladder(target_n: float, smallest: float | None = None,
               sizes: Sequence[float] | None = None) -> list[dict[str, int]]:
    """Distinct GPT shapes (n_layer, n_head, d_model) from `models.ladder` for `sizes`
    (target parameter counts), default N_SIZES from max(N*/1000, smallest) to N*/3."""
    import numpy as np

    from scaletrack.models.ladder import shape_for

    if sizes is None:
        lo = max(target_n / 1000.0, smallest or 0.0, float(MIN_GPT_PARAMS))
        hi = max(target_n / math.sqrt(10.0), lo)
        sizes = [float(x) for x in np.geomspace(lo, hi, N_SIZES)]
    shapes: list[dict[str, int]] = []
    for n in sizes:
        if not (math.isfinite(n) and n >= MIN_GPT_PARAMS):
            raise ConfigError(f"--sizes: {n:g} is too small for a GPT (at least "
                              f"{MIN_GPT_PARAMS} parameters)")
        cfg = shape_for("gpt", int(round(n)), context=ZIPF_CONTEXT, vocab_size=256)
        shape = {"n_layer": cfg.n_layer, "n_head": cfg.n_head, "d_model": cfg.d_model}
        if shape not in shapes:
            shapes.append(shape)
    return shapes


def token_ladder(lo: float, hi: float, step_tokens: int) -> list[int]:
    """Token budgets from `lo` to `hi` on a ratio-TOKEN_STEP ladder, whole steps, at least one
    step each."""
    out: list[int] = []
    d = max(float(lo), float(step_tokens))
    while d <= hi * 1.0001 or not out:
        value = int(round(d / step_tokens)) * step_tokens
        if value not in out:
            out.append(value)
        d *= TOKEN_STEP
    return out


def expand_spec(spec: dict[str, Any], source: str = "<plan>") -> Grid:
    """Validate and expand a grid dict exactly as `scaletrack sweep validate` would a file."""
    from scaletrack.sweeps.grid import expand
    from scaletrack.sweeps.spec import parse_spec

    return expand(parse_spec(spec, source), source, Path.cwd())


def candidate_cells(grid: Grid, step_tokens: int | None = None
                    ) -> tuple[list[PlannedCell], dict[tuple[float, float], Cell]]:
    """The planner's candidates from a grid's cells (N, D, planned FLOPs; trunks left out),
    and each candidate's cell by (N, D). With `step_tokens` (tokens per step) a cooldown
    branch is a candidate that costs its cooldown plus its size's trunk up to its branch
    point, paid once for the branches of a size (as `spent_flops` counts it)."""
    from scaletrack.analysis.plan import PlannedCell

    cands: list[PlannedCell] = []
    by_nd: dict[tuple[float, float], Cell] = {}
    for c in grid.cells:
        if c.role == "trunk" or c.N is None or c.C is None:
            continue
        key = (float(c.N), float(c.D))
        if key in by_nd:
            continue
        by_nd[key] = c
        if step_tokens and c.role == "branch" and c.branch_step and c.steps:
            trunk = c.branch_step * step_tokens * float(c.C) / float(c.D)
            cands.append(PlannedCell(float(c.N), float(c.D), float(c.C),
                                     train_flops=float(c.C) * (c.steps - c.branch_step)
                                     / c.steps, trunk=c.size_label, trunk_flops=trunk))
        else:
            cands.append(PlannedCell(float(c.N), float(c.D), float(c.C)))
    return cands, by_nd


def spent_flops(chosen: Sequence[Cell], step_tokens: int) -> float:
    """FLOPs that training `chosen` (cells of one grid) really costs: from scratch each, or
    for cooldown branches each branch's cooldown plus, per size, one trunk up to the latest
    branch point among the chosen (as `sweeps.grid` builds it)."""
    total = 0.0
    trunk_steps: dict[str, tuple[int, float]] = {}
    for c in chosen:
        if c.C is None:
            continue
        if c.role != "branch" or not c.branch_step or not c.steps:
            total += float(c.C)
            continue
        total += float(c.C) * (c.steps - c.branch_step) / c.steps
        per_token = float(c.C) / float(c.D)
        steps = max(trunk_steps.get(c.size_label, (0, 0.0))[0], int(c.branch_step))
        trunk_steps[c.size_label] = (steps, per_token)
    return total + sum(s * step_tokens * fpt for s, fpt in trunk_steps.values())


def restricted(spec: dict[str, Any], chosen: Sequence[Cell]) -> dict[str, Any]:
    """`spec` with a `[plan] cells` list naming `chosen`, in their order."""
    cells = [{"size": c.size_label, "tokens": int(c.D)} for c in chosen]
    return {**spec, "plan": {**spec.get("plan", {}), "cells": cells}}


# ------------------------------------------------------------------------------ planning


def fit_points(points: pd.DataFrame | None, seed: int = 0) -> FitResult | None:
    """The Chinchilla fit (with bootstrap refits) the planner starts from, or None when
    there are too few runs to fit or the fit did not converge or has too few usable
    bootstrap refits (the planner then starts from its published prior). A fit flagged
    degenerate because its band at the target is wide is kept: that width is what more runs
    should narrow."""
    import warnings

    import numpy as np

    from scaletrack.analysis.chinchilla import fit_chinchilla

    if points is None or len(points) < 7:  # five free parameters + 2
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = fit_chinchilla(points, n_bootstrap=200, seed=seed)
    draws = fit.bootstrap_samples()
    usable = (np.all(np.isfinite(np.stack(list(draws.values()), axis=1)), axis=1).sum()
              if draws else 0)
    if not fit.extra.get("converged", True) or usable < MIN_BOOTSTRAP_DRAWS:
        return None
    return fit


def plan(
    points: pd.DataFrame | str | Path | None = None,
    *,
    target_compute: float,
    budget: float,
    target_n: float | None = None,
    target_tokens: float | None = None,
    store: StoreLike | str | None = None,
    sweep: str | None = None,
    candidates: Sequence[PlannedCell] | None = None,
    flops_per_token: Callable[[float], float] | None = None,
    n_simulations: int = 8,
    seed: int = 0,
) -> Plan:
    """The cells (N params, D tokens) costing at most `budget` FLOPs whose results most
    narrow the 95 % prediction band of the loss at the target run (`target_compute` FLOPs;
    `target_n` params and `target_tokens` tokens, default its compute-optimal split).

    The runs done so far are a `sweep` of a `store` (a Store or URL), `points` (a frame with
    N, D, loss or a CSV path), or neither (plan from the published prior). Returns the
    planner's `Plan`: cells, cost_flops, expected_width and the equal-cost geometric grid's
    baseline_cells and baseline_width (relative widths of the band, by simulation).
    """
    from scaletrack.analysis.plan import plan_runs

    data = load_points(store=store, sweep=sweep, points=points)
    fit = fit_points(data, seed)
    return plan_runs(
        data if fit is not None else None, target_flops=target_compute, budget_flops=budget,
        candidates=candidates, target_n=target_n, target_tokens=target_tokens,
        flops_per_token=flops_per_token, fit=fit, n_simulations=n_simulations, seed=seed,
    )


def plan_builtin_grid(
    *,
    target_compute: float,
    budget: float,
    points: pd.DataFrame | None = None,
    target_n: float | None = None,
    target_tokens: float | None = None,
    sizes: Sequence[float] | None = None,
    schedule: str = "cosine",
    name: str = "planned",
    until_width: float | None = None,
    n_simulations: int = 8,
    seed: int = 0,
) -> PlannedGrid:
    """Plan cells of the built-in GPT on the Zipf-words corpus and write them as a grid.

    Candidates: `sizes` (target parameter counts; default a ladder below the target's N)
    resolved by `models.ladder` x a geometric ladder of token budgets, with exact FLOPs. With
    `schedule="wsd-branches"` cells of a size share one trunk paid once: the planner counts
    each chosen size's trunk once, up to its latest branch point, against `budget`.
    """
    from scaletrack.analysis.plan import (
        cells_cost,
        equal_cost_grid,
        geometric_baseline,
        plan_runs,
        prior_law,
    )

    for what, value in (("--target-compute", target_compute), ("--budget", budget)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ConfigError(f"{what} must be a finite number of FLOPs > 0, got {value!r}")
    if budget >= target_compute:
        raise ConfigError(f"--budget {fmt_number(budget)} FLOPs is not below --target-compute "
                          f"{fmt_number(target_compute)}: the small runs would cost the target "
                          "itself")
    fit = fit_points(points, seed)
    fpt = gpt_flops_per_token(ZIPF_CONTEXT, 256)
    law = dict(fit.params) if fit is not None else prior_law()
    t_n, t_d = target_split(law, target_compute, target_n, target_tokens, fpt)
    smallest = float(points["N"].min()) / 3.0 if points is not None and len(points) else None
    shapes = gpt_ladder(t_n, smallest, sizes)
    step = ZIPF_BATCH * ZIPF_CONTEXT
    ratio = t_d / t_n
    n_lo = max(t_n / 1000.0, smallest or 0.0, MIN_GPT_PARAMS) if sizes is None else min(sizes)
    n_hi = max(t_n / math.sqrt(10.0), n_lo) if sizes is None else max(sizes)
    tokens = token_ladder(max(step * MIN_STEPS, n_lo * ratio / 8.0),
                          max(min(n_hi * ratio * 4.0, t_d), step * MIN_STEPS), step)
    real_spec = zipf_gpt_spec(name, schedule, shapes, tokens)
    branches = schedule == "wsd-branches"
    cands, by_nd = candidate_cells(expand_spec(real_spec), step if branches else None)
    cands = [c for c in cands if cells_cost([c]) <= budget]
    if not cands:
        raise ConfigError(f"no candidate cell costs at most --budget {fmt_number(budget)} "
                          "FLOPs: raise the budget or give smaller --sizes")
    real_spec["plan"] = {"target_compute": float(target_compute), "target_n": float(t_n),
                         "target_tokens": float(t_d), "budget": float(budget), "seed": seed}
    if until_width is not None:
        real_spec["plan"]["until_width"] = float(until_width)

    def real_cost(cells: Sequence[PlannedCell]) -> float:
        known = [by_nd[(c.n_params, c.tokens)] for c in cells if (c.n_params, c.tokens) in by_nd]
        other = sum(c.flops for c in cells if (c.n_params, c.tokens) not in by_nd)
        return spent_flops(known, step) + other  # cells off the grid: each from scratch

    # the geometric grid spending the whole budget: with cooldown branches the largest
    # grid of the candidates whose real cost fits (plan_runs' default for branches), else the
    # candidates' grid with its token counts scaled to cost the budget (simulated only)
    baseline = None if branches else equal_cost_grid(geometric_baseline(cands, budget), budget)
    result = plan_runs(points if fit is not None else None, target_flops=target_compute,
                       budget_flops=budget, candidates=cands, target_n=t_n,
                       target_tokens=t_d, flops_per_token=fpt, fit=fit, baseline=baseline,
                       n_simulations=n_simulations, seed=seed)
    chosen = [by_nd[(c.n_params, c.tokens)] for c in result.cells]
    cost = spent_flops(chosen, step)
    final = restricted(real_spec, chosen)
    grid = expand_spec(final)
    return PlannedGrid(plan=result, cost_flops=cost,
                       baseline_cost_flops=real_cost(result.baseline_cells),
                       grid_toml=grid_toml(final, header=plan_header(result, cost)),
                       cells=grid.cells)


def plan_is_worse(result: Plan) -> bool:
    """Whether the geometric grid of equal cost is expected to give the narrower band (both
    widths finite): the linearised criterion can miss how badly a design far off the
    compute-optimal ratio fits, and the simulated widths catch it."""
    return (math.isfinite(result.expected_width) and math.isfinite(result.baseline_width)
            and result.baseline_width < result.expected_width)


def plan_fails_more(result: Plan) -> bool:
    """Whether more of the plan's simulated fits than the geometric grid's were refused or
    degenerate (E at its bound, a band too wide to trust): such fits give no band at all."""
    return (math.isfinite(result.failed_share) and math.isfinite(result.baseline_failed_share)
            and result.failed_share > result.baseline_failed_share)


def plan_header(result: Plan, cost: float) -> str:
    """Comment lines that head a planned grid file: target, cost and expected widths."""
    def pct(x: float) -> str:
        return "n/a" if not math.isfinite(x) else f"{100 * x:.1f} %"

    return "\n".join([
        "# Written by `scaletrack plan`: the cells whose results most narrow the 95 % band of",
        f"# the loss predicted at the target ({fmt_number(result.target_flops)} FLOPs, "
        f"N = {fmt_number(result.target_n)} params, "
        f"D = {fmt_number(result.target_tokens)} tokens).",
        f"# {len(result.cells)} cells, {fmt_number(cost)} FLOPs; expected band width at the target "
        f"{pct(result.expected_width)} (law from the {result.law_source}); a geometric grid "
        f"of equal cost: {pct(result.baseline_width)}.",
        *([f"# Simulated fits refused or degenerate (no band): {pct(result.failed_share)} of "
           f"this plan's, {pct(result.baseline_failed_share)} of the geometric grid's."]
          if math.isfinite(result.failed_share) else []),
        *(["# Warning: in simulation the geometric grid of equal cost gives the narrower band;",
           "# prefer a plain grid over this plan."] if plan_is_worse(result) else []),
        *(["# Warning: in simulation more of this plan's fits than the geometric grid's fail;",
           "# prefer a plain grid over this plan."] if plan_fails_more(result) else []),
        "# Run it: scaletrack sweep run THIS_FILE",
    ])


# ------------------------------------------------------------------------------- TOML


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:_}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"cannot write {value!r} into a grid file")
        return repr(value) if value != int(value) or abs(value) < 1e6 else f"{value:.6e}"
    if isinstance(value, str):
        import json

        return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], dict):
            return "[\n" + "".join(f"  {_toml_value(v)},\n" for v in value) + "]"
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write a {type(value).__name__} into a grid file")


def grid_toml(spec: dict[str, Any], header: str = "") -> str:
    """A grid dict as grid-file text (top-level keys first, then one table per section)."""
    lines = [header] if header else []
    tables = {k: v for k, v in spec.items() if isinstance(v, dict)}
    for key, value in spec.items():
        if key not in tables:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, table in tables.items():
        lines.append(f"\n[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
