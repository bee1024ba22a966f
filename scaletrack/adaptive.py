"""Adaptive sweeps: train a grid's cells one at a time in the planner's order, refit after
each, and stop once the prediction band at the target is narrow enough or the budget is spent.

What `scaletrack sweep run GRID --until-width 2% --target-compute C` (or a grid whose `[plan]`
table sets `until_width`) runs. Each step:

1. the sweep's finished cells are fitted (Chinchilla, bootstrap refits) and the relative width
   of the 95 % prediction band at the target is measured (`analysis.plan.expected_band_width`);
   with fewer runs than a fit needs (7) there is no width yet;
2. narrow enough (width <= until_width) on a fit that identifies the law and whose band is
   calibrated on inner hold-outs: stop;
3. otherwise the planner (`analysis.plan.plan_runs`) chooses among the cells not run yet whose
   cost fits what is left of the budget (with cooldown branches the branches of one untrained
   trunk chosen together pay it once), starting from the published prior until a fit exists
   (the runs done count towards identifying the law; the planner proposes at least one
   cell); none affordable: stop; a planner that cannot plan: the next cell in the prior's
   order;
4. the planner's first cell (with its trunk) is trained by the ordinary sweep runner.

Every step (the cell run, the width after it, the FLOPs spent, why it stopped and which cells
it skipped) is recorded in the store's fits table as form "adaptive" under the sweep's name,
where `scaletrack sweep status` shows it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from scaletrack.errors import ConfigError, ScaletrackError
from scaletrack.number_format import fmt_number

if TYPE_CHECKING:
    from scaletrack.analysis.plan import PlannedCell
    from scaletrack.store.protocol import StoreLike
    from scaletrack.sweeps.grid import Cell, Grid
    from scaletrack.sweeps.runner import SweepReport

DECISION_FORM = "adaptive"  # the fits table's form for an adaptive sweep's decisions
DONE = ("finished", "diverged")
MIN_FIT_POINTS = 7  # Chinchilla: 5 free parameters + 2
# A 95 % band wider than ten times the predicted loss bounds nothing: such a refit (a law the
# runs do not pin down, bootstrap refits running off) is recorded as unbounded, not a width.
MAX_BAND_WIDTH = 10.0


def band_text(width: float | None, n_points: int | None = None, degenerate: str = "") -> str:
    """A recorded band width (relative, 0.02 = 2 %) as a researcher reads it: "2.1 %", "none
    yet" before a fit has its MIN_FIT_POINTS runs, "none" without a usable fit, or
    "unbounded" when the band is infinite or wider than MAX_BAND_WIDTH (with why the fit is
    degenerate, if known)."""
    if width is None or math.isnan(width):
        if n_points is not None and n_points < MIN_FIT_POINTS:
            return "none yet"  # fewer runs than a fit needs (MIN_FIT_POINTS)
        return "none (no usable fit)"
    if width > MAX_BAND_WIDTH:
        return "unbounded (fit degenerate" + (f": {degenerate})" if degenerate else ")")
    return f"{fmt_number(100 * width)} %"


def bounded_width(width: float | None) -> float | None:
    """`width` when it measures something, None when it is unknown or unbounded."""
    if width is None or not math.isfinite(width) or width > MAX_BAND_WIDTH:
        return None
    return float(width)


@dataclass(frozen=True)
class AdaptiveSettings:
    """When an adaptive sweep stops: a relative band width at the target (0.02 = 2 %), the
    target (FLOPs; params and tokens optional) and the FLOPs it may spend (None: every cell)."""

    until_width: float
    target_compute: float | None
    target_n: float | None = None
    target_tokens: float | None = None
    budget: float | None = None
    seed: int = 0


@dataclass(frozen=True)
class AdaptiveStep:
    """One decision: action "run" (a cell trained), "failed" (it did not finish),
    "interrupted" (Ctrl-C or SIGTERM while it trained; run again to resume) or "stop"."""

    step: int
    action: str
    reason: str
    run_key: str | None = None
    size: str | None = None
    N: float | None = None
    D: float | None = None
    cell_flops: float = 0.0
    spent_flops: float = 0.0
    n_points: int = 0
    width: float | None = None  # relative 95 % band width at the target after this step
    prediction: float | None = None  # loss predicted at the target (nats/token)
    skipped: tuple[str, ...] = ()  # cells never run (on "stop"): "size D=tokens"
    band: str = ""  # the width as text: "2.1 %", "none yet (...)", "unbounded (...)"

    def to_payload(self, settings: AdaptiveSettings, full_flops: float) -> dict[str, Any]:
        """What the store keeps (JSON)."""
        out = {k: getattr(self, k) for k in ("step", "action", "reason", "run_key", "size",
                                              "N", "D", "cell_flops", "spent_flops",
                                              "n_points", "width", "prediction")}
        out["skipped"] = list(self.skipped)
        out["band"] = self.band or band_text(self.width, self.n_points)
        out["until_width"] = settings.until_width
        out["target_compute"] = settings.target_compute
        out["budget"] = settings.budget
        out["full_grid_flops"] = full_flops
        return out


@dataclass(frozen=True)
class AdaptiveReport:
    """What an adaptive sweep did: its steps, why it stopped, FLOPs spent (this grid's cells,
    trunks included) against the full grid's, and the last sweep report."""

    sweep: str
    steps: tuple[AdaptiveStep, ...]
    stopped: str
    width: float | None
    spent_flops: float
    full_flops: float
    interrupted: bool = False
    reports: tuple[SweepReport, ...] = field(default=(), repr=False)

    @property
    def trained(self) -> int:
        return sum(1 for s in self.steps if s.action == "run")


def settings_for(grid: Grid, until_width: float | None, target_compute: float | None,
                 budget: float | None = None) -> AdaptiveSettings | None:
    """The adaptive settings of a run: the grid's `[plan]` table, overridden by the command
    line's; None when neither asks for an adaptive run."""
    plan = grid.spec.plan
    width = until_width if until_width is not None else (plan.until_width if plan else None)
    if width is None:
        if target_compute is not None:
            raise ConfigError("--target-compute is for an adaptive run: give --until-width too "
                              "(e.g. --until-width 2%)")
        return None
    c_star = target_compute if target_compute is not None else (
        plan.target_compute if plan else None)
    n_star = plan.target_n if plan else None
    d_star = plan.target_tokens if plan else None
    if c_star is None and not (n_star and d_star):
        raise ConfigError("an adaptive run needs a target: --target-compute FLOPS (or [plan] "
                          "target_compute in the grid)")
    if target_compute is not None and plan is not None and plan.target_compute is not None \
            and target_compute != plan.target_compute:
        n_star = d_star = None  # the grid's N*, D* were for another target
    return AdaptiveSettings(
        until_width=float(width), target_compute=c_star, target_n=n_star,
        target_tokens=d_star, budget=budget if budget is not None else (
            plan.budget if plan else None), seed=plan.seed if plan else 0)


def _cell_name(cell: Cell) -> str:
    return f"{cell.size_label} D={fmt_number(cell.D)}"


class _State:
    """The grid's cells and what the store says of them now."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.cells = [c for c in grid.cells if c.role != "trunk"]
        self.by_key = {c.run_key: c for c in grid.cells}
        self.status: dict[str, str] = {}

    def refresh(self, store: StoreLike) -> None:
        runs = store.runs(sweep=self.grid.name)
        self.status = dict(zip(runs["run_key"], runs["status"], strict=True)) if len(runs) \
            else {}

    def done(self, cell: Cell) -> bool:
        return self.status.get(cell.run_key) in DONE

    def spent(self) -> float:
        return float(sum(c.spent_flops for c in self.grid.cells if self.done(c)))

    def marginal(self, cell: Cell) -> float:
        """FLOPs training `cell` costs now (its trunk too, where that is not trained)."""
        cost = cell.spent_flops
        trunk = self.by_key.get(cell.parent_run_key or "")
        if trunk is not None and not self.done(trunk):
            cost += trunk.spent_flops
        return cost

    def planned(self, cell: Cell) -> PlannedCell:
        """`cell` as the planner's candidate: its compute C, its own cost (a branch: its
        cooldown) and, while its trunk is not trained, that trunk's FLOPs, which the
        branches of one trunk chosen together pay once."""
        from scaletrack.analysis.plan import PlannedCell

        trunk = self.by_key.get(cell.parent_run_key or "")
        untrained = trunk is not None and not self.done(trunk)
        own = max(float(cell.spent_flops), 1.0)
        return PlannedCell(float(cell.N or 0.0), float(cell.D), max(float(cell.C or 0.0), own),
                           train_flops=own,
                           trunk=trunk.run_key if untrained and trunk is not None else None,
                           trunk_flops=float(trunk.spent_flops) if untrained
                           and trunk is not None else 0.0)

    def with_trunk(self, cell: Cell) -> tuple[Cell, ...]:
        trunk = self.by_key.get(cell.parent_run_key or "")
        return (trunk, cell) if trunk is not None and not self.done(trunk) else (cell,)


def _points(store: StoreLike, state: _State) -> Any:
    """The finished cells of this grid as fit points (best lr, seeds averaged), or None."""
    from scaletrack.analysis.selection import select_points
    from scaletrack.store.fit_points import sweep_points

    try:
        frame = sweep_points(store, state.grid.name)
    except ScaletrackError:
        return None
    frame = frame[frame.index.isin([c.run_key for c in state.cells])]
    if frame.empty:
        return None
    return select_points(frame, "chinchilla")[0]


@dataclass(frozen=True)
class _Band:
    """The fit of the finished cells and its band at the target: fit (None: too few runs or
    no usable fit), width (relative, (hi - lo) / predicted), prediction (nats/token), the
    target's FLOPs, and why the fit cannot stop the sweep ("" when it can)."""

    fit: Any
    width: float | None
    prediction: float | None
    c_star: float | None
    untrusted: str = ""
    unbounded: bool = False  # the refit's band is infinite or over MAX_BAND_WIDTH: no width

    def text(self, n_points: int) -> str:
        """The band as `band_text` writes it."""
        if self.unbounded:
            return band_text(math.inf, n_points, self.untrusted)
        return band_text(self.width, n_points)


def _target_flops(settings: AdaptiveSettings, fpt: Callable[[float], float]) -> float | None:
    if settings.target_compute is not None:
        return settings.target_compute
    if settings.target_n and settings.target_tokens:  # the target given by N and D alone
        return fpt(settings.target_n) * settings.target_tokens
    return None


def _untrusted(fit: Any, points: Any) -> str:
    """Why `fit` must not stop the sweep ("" when it may): the identification checks of
    `analysis.status` other than the band's width (too few distinct N or D, a parameter at
    a bound, more than a tenth of the bootstrap refits failed), or a band with no calibrated
    scatter (too few runs for `analysis.calibration`'s inner hold-outs: no reach term).
    `planning.fit_points` keeps such fits to plan from; a narrow band from a law the runs do
    not identify, or one that leaves out the extrapolation error, is no reason to stop. The
    band's width is the stop criterion itself."""
    import numpy as np

    from scaletrack.analysis.status import MAX_FAILED_REFITS, assess_fit

    design = {"n_distinct_N": int(np.unique(points["N"]).size),
              "n_distinct_D": int(np.unique(points["D"]).size)}
    bare = replace(fit, status="ok", status_reason="",  # no refits: no band check
                   boot_params=np.empty((0, len(fit.params))))
    judged = assess_fit(bare, design=design, min_loss=float(points["loss"].min()))
    if judged.degenerate:
        return judged.status_reason
    draws = np.asarray(fit.boot_params, dtype=float)
    failed = float((~np.isfinite(draws).all(axis=1)).mean()) if draws.size else 0.0
    if failed > MAX_FAILED_REFITS:
        return f"{failed:.0%} of the bootstrap refits failed"
    if not fit.extra.get("scatter_model"):  # no reach term: the band ignores extrapolation
        return ("its band is not calibrated on inner hold-outs (too few runs), so it "
                "leaves out the form's extrapolation error")
    return ""


def _points_key(points: Any) -> tuple[Any, ...] | None:
    """What a fit of `points` depends on (their N, D and losses), to refit only on change."""
    if points is None:
        return None
    cols = [c for c in ("N", "D", "C", "loss") if c in points.columns]
    return tuple(map(tuple, points[cols].to_numpy(float).round(12).tolist()))


def _band(points: Any, settings: AdaptiveSettings, fpt: Callable[[float], float],
          seed: int) -> _Band:
    """The fit and the band at the target for the finished cells now."""
    import numpy as np

    from scaletrack.analysis.plan import expected_band_width
    from scaletrack.planning import fit_points, target_split

    c_star = _target_flops(settings, fpt)
    if points is None or len(points) < MIN_FIT_POINTS:
        return _Band(None, None, None, c_star)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = fit_points(points, seed)
    if fit is None or c_star is None:
        return _Band(fit, None, None, c_star)
    try:
        width = expected_band_width(fit, target_flops=c_star, target_n=settings.target_n,
                                    target_tokens=settings.target_tokens, flops_per_token=fpt,
                                    seed=seed)
        t_n, t_d = target_split(dict(fit.params), c_star, settings.target_n,
                                settings.target_tokens, fpt)
        pred = float(np.asarray(fit.predict(np.array([t_n]), np.array([t_d]))).ravel()[0])
        untrusted = _untrusted(fit, points)
    except ScaletrackError:
        return _Band(fit, None, None, c_star)
    if math.isnan(width):
        return _Band(fit, None, pred, c_star, untrusted)
    if bounded_width(width) is None:
        return _Band(fit, None, pred, c_star, untrusted, unbounded=True)
    return _Band(fit, width, pred, c_star, untrusted)


def _flops_per_token(state: _State) -> Callable[[float], float]:
    """FLOPs per token against N: the grid's own sizes' counts, interpolated in log-log, for
    the target split (a built-in GPT's count has attention and logits terms; 6·N otherwise)."""
    import numpy as np

    pairs = sorted({(float(c.N), float(c.C) / float(c.D)) for c in state.cells
                    if c.N and c.C})
    if len(pairs) < 2:
        return lambda n: 6.0 * float(n)
    log_n = np.log([p[0] for p in pairs])
    log_f = np.log([p[1] for p in pairs])
    slope, icept = np.polyfit(log_n, log_f, 1)

    def fpt(n: float) -> float:
        return max(6.0 * float(n), float(np.exp(icept + slope * math.log(max(n, 1.0)))))

    return fpt


def _choose(state: _State, points: Any, fit: Any, settings: AdaptiveSettings,
            c_star: float | None, left: float, fpt: Callable[[float], float],
            prior_order: list[str]) -> tuple[Cell | None, str]:
    """The next cell to train, or None with the reason to stop."""
    from scaletrack.analysis.plan import plan_runs

    todo = [c for c in state.cells if not state.done(c)]
    if not todo:
        return None, "every cell of the grid is trained"
    affordable = [c for c in todo if state.marginal(c) <= left * (1 + 1e-9)]
    if not affordable:
        return None, "budget spent: no cell left costs what remains"
    rank = {k: i for i, k in enumerate(prior_order)}
    affordable.sort(key=lambda c: (rank.get(c.run_key, len(rank)), state.marginal(c)))
    if fit is None:  # no fit yet: follow the order planned from the prior (or the file's)
        have = 0 if points is None else len(points)
        why = (f"{have} run{'' if have == 1 else 's'}, a fit needs {MIN_FIT_POINTS}"
               if have < MIN_FIT_POINTS
               else "no usable fit")
        return affordable[0], f"prior's order ({why})"
    cands: list[PlannedCell] = []
    by_nd: dict[tuple[float, float], Cell] = {}
    for c in affordable:
        if not c.N:  # a cell of unknown N has no place on the fit
            continue
        key = (float(c.N), float(c.D))
        if key not in by_nd:
            by_nd[key] = c
            cands.append(state.planned(c))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            planned = plan_runs(points, target_flops=c_star or 0.0, budget_flops=left,
                                candidates=cands, target_n=settings.target_n,
                                target_tokens=settings.target_tokens, flops_per_token=fpt,
                                fit=fit, n_simulations=0, seed=settings.seed)
    except ScaletrackError as exc:
        # a planner that cannot plan is no reason to stop: the band or the budget decides
        return affordable[0], f"prior's order (the planner could not plan: {exc})"
    if not planned.cells:
        return None, "no cell left narrows the band at the target"
    first = planned.cells[0]
    return by_nd[(first.n_params, first.tokens)], (
        f"first of {len(planned.cells)} planned (width {100 * planned.linear_width:.1f} % "
        "after them)")


def _prior_order(state: _State, settings: AdaptiveSettings, budget: float,
                 fpt: Callable[[float], float]) -> list[str]:
    """Run keys in the order the planner takes them from the published prior: the grid's
    `[plan] cells` order where it lists them, else a plan from the prior."""
    from scaletrack.analysis.plan import plan_runs

    plan = state.grid.spec.plan
    if plan is not None and plan.cells:
        where = {(c.size_label, c.D): c.run_key for c in state.cells}
        return [where[(p.size, p.tokens)] for p in plan.cells if (p.size, p.tokens) in where]
    by_nd = {(float(c.N), float(c.D)): c for c in state.cells if c.N and c.C}
    cands = [state.planned(c) for c in by_nd.values()]  # C known; trunks paid once
    c_star = settings.target_compute or fpt(settings.target_n or 1.0) * (
        settings.target_tokens or 1.0)
    try:
        planned = plan_runs(None, target_flops=c_star, budget_flops=budget, candidates=cands,
                            target_n=settings.target_n, target_tokens=settings.target_tokens,
                            flops_per_token=fpt, n_simulations=0, seed=settings.seed)
    except ScaletrackError:
        return []
    return [by_nd[(c.n_params, c.tokens)].run_key for c in planned.cells]


def run_adaptive(
    grid: Grid,
    settings: AdaptiveSettings,
    store_url: str | None = None,
    *,
    run_cells: Callable[[Grid], SweepReport],
    on_step: Callable[[AdaptiveStep], None] | None = None,
) -> AdaptiveReport:
    """Train `grid` adaptively (see the module docstring). `run_cells(subgrid)` trains the
    cells of a sub-grid of `grid` (e.g. `scaletrack.run_sweep` with the caller's executor
    and display); `on_step` sees each decision as it is recorded."""
    from scaletrack.store import Store, resolve_store_url

    url = resolve_store_url(store_url)
    state = _State(grid)
    full = float(sum(c.spent_flops for c in grid.cells))
    budget = settings.budget if settings.budget is not None else full
    fpt = _flops_per_token(state)
    steps: list[AdaptiveStep] = []
    reports: list[SweepReport] = []
    failed: set[str] = set()
    prior_order = _prior_order(state, settings, budget, fpt)
    with Store.open(url) as store:
        store.upsert_sweep(grid.name, grid.stored_spec())
        before = len(decisions(store, grid.name))  # a resumed run numbers its steps on

    def record(step: AdaptiveStep) -> None:
        steps.append(step)
        with Store.open(url) as st:
            label = f"{step.step}: {step.action}" + (f" {step.size} D={step.D:,.0f}"
                                                     if step.size else "")
            st.save_fit(DECISION_FORM, step.to_payload(settings, full), sweep=grid.name,
                        label=label)
        if on_step is not None:
            on_step(step)

    cache: dict[Any, _Band] = {}

    def band_now() -> tuple[Any, _Band]:
        """The finished cells' points and their band (refitted only when they changed)."""
        with Store.open(url) as store:
            state.refresh(store)
            points = _points(store, state)
        key = _points_key(points)
        if key not in cache:
            cache.clear()
            cache[key] = _band(points, settings, fpt, settings.seed)
        return points, cache[key]

    stopped, interrupted = "", False
    while True:
        points, band = band_now()
        spent = state.spent()
        n_points = 0 if points is None else len(points)
        width = band.width if band.width is not None else math.inf
        narrow = width <= settings.until_width
        if narrow and not band.untrusted:
            stopped = (f"band at the target {fmt_number(100 * width)} % <= "
                       f"{100 * settings.until_width:g} %")
            break
        cell, why = _choose(state, points, band.fit, settings, band.c_star, budget - spent,
                            fpt, [k for k in prior_order if k not in failed])
        if narrow:  # narrow, but the fit cannot be trusted there: say so, go on
            why = (f"band {fmt_number(100 * width)} % but the fit is degenerate "
                   f"({band.untrusted}); {why}")
        if cell is None or cell.run_key in failed:
            stopped = why if cell is None else "the planner's next cell failed before"
            break
        cost = state.marginal(cell)
        report = run_cells(replace(grid, cells=state.with_trunk(cell)))
        reports.append(report)
        points, band = band_now()
        n_points = 0 if points is None else len(points)
        ok = state.done(cell)
        if not ok:
            failed.add(cell.run_key)
            state.cells = [c for c in state.cells if c.run_key != cell.run_key]
        record(AdaptiveStep(
            step=before + len(steps) + 1, reason=why,
            action="run" if ok else "interrupted" if report.interrupted else "failed",
            run_key=cell.run_key, size=cell.size_label, N=cell.N, D=cell.D, cell_flops=cost,
            spent_flops=state.spent(), n_points=n_points, width=band.width,
            prediction=band.prediction, band=band.text(n_points)))
        if report.interrupted:
            stopped, interrupted = "interrupted", True
            break
    skipped = tuple(_cell_name(c) for c in state.cells if not state.done(c))
    if not interrupted:
        record(AdaptiveStep(step=before + len(steps) + 1, action="stop", reason=stopped,
                            spent_flops=spent, n_points=n_points, width=band.width,
                            prediction=band.prediction, skipped=skipped,
                            band=band.text(n_points)))
    return AdaptiveReport(sweep=grid.name, steps=tuple(steps), stopped=stopped,
                          width=band.width,
                          spent_flops=state.spent(), full_flops=full, interrupted=interrupted,
                          reports=tuple(reports))


def decisions(store: StoreLike, sweep: str) -> list[dict[str, Any]]:
    """The recorded decisions of the adaptive runs of `sweep`, oldest first (payload dicts
    with the time each was recorded)."""
    fits = store.fits(DECISION_FORM)
    if fits.empty:
        return []
    mine = fits[fits["sweep"] == sweep]
    return [_readable({**dict(r["payload"] or {}), "created_at": r["created_at"]})
            for r in mine.to_dict("records")]


def _readable(decision: dict[str, Any]) -> dict[str, Any]:
    """A recorded decision with its band as text ("band"), and no width where the band was
    unbounded (decisions recorded before "band" existed kept the huge number)."""
    width = decision.get("width")
    measured = None if width is None else float(width)
    if "band" not in decision:
        decision["band"] = band_text(measured, decision.get("n_points"))
    decision["width"] = bounded_width(measured)
    return decision
