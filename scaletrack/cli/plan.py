"""CLI: `scaletrack plan`: the small runs that predict a target best, written as a grid file."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from scaletrack.cli.common import (
    StoreOption,
    console,
    err_console,
    fail,
    literal,
    print_table,
)
from scaletrack.cli.fit import CCol, DCol, LossCol, NCol
from scaletrack.errors import ConfigError
from scaletrack.number_format import fmt_number

if TYPE_CHECKING:
    from scaletrack.planning import PlannedGrid

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # a sweep name (grid format)
# The largest target the planner designs for (FLOPs): some 1e5 times the largest runs trained
# to date, and a target whose planned cells' token counts and shapes still fit the 64-bit
# integers of a grid file.
MAX_TARGET_COMPUTE = 1e30
COUNT_LIMIT = 2**63 - 1  # parameters and tokens a grid file holds
PLANNED_SOURCE = "<plan>"  # how planning.expand_spec names the grid it checks


def parse_flops(option: str, text: str | None) -> float | None:
    """A positive finite number from an option's text ("1e14", "3.2e12"), or one error line."""
    if text is None:
        return None
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        fail(f"{option}: expected a number such as 1e12, got {text!r}")
    if not math.isfinite(value) or value <= 0:
        fail(f"{option}: expected a finite number > 0, got {text!r}")
    return value


def parse_width(text: str | None) -> float | None:
    """A relative band width from "2%" or "0.02" (0 < width < 1), or one error line."""
    if text is None:
        return None
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        fail(f"--until-width: expected a width such as 2% or 0.02, got {text!r}")
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        fail(f"--until-width: expected a width between 0 and 100 %, got {text!r}")
    return value


def parse_sizes(text: str | None) -> list[float] | None:
    """Parameter counts from "3e3,1e4,3e4", or one error line."""
    if text is None:
        return None
    out = []
    for item in text.split(","):
        value = parse_flops("--sizes", item.strip())
        assert value is not None
        out.append(value)
    return out


def check_target_range(c_star: float, n_star: float | None, d_star: float | None) -> None:
    """One error line when the target lies beyond what the planner can design for: above
    MAX_TARGET_COMPUTE FLOPs, or a --target-n / --target-d leaving the other count (about
    C / (6 N) tokens, C / (6 D) parameters) beyond the 64-bit counts of a grid file."""
    if c_star > MAX_TARGET_COMPUTE:
        fail(f"--target-compute: {fmt_number(c_star)} FLOPs is beyond the range the planner "
             f"can design for (at most {fmt_number(MAX_TARGET_COMPUTE)} FLOPs)")
    for option, given, other in (("--target-n", n_star, "tokens"),
                                 ("--target-d", d_star, "parameters")):
        if given is None:
            continue
        implied = c_star / (6.0 * given)
        if given > COUNT_LIMIT:
            fail(f"{option}: {fmt_number(given)} is beyond the range the planner can design "
                 f"for (counts up to {fmt_number(COUNT_LIMIT)})")
        if implied > COUNT_LIMIT:
            fail(f"{option}: {fmt_number(given)} with --target-compute {fmt_number(c_star)} "
                 f"FLOPs leaves the target at {fmt_number(implied)} {other}, beyond the range "
                 f"the planner can design for (counts up to {fmt_number(COUNT_LIMIT)})")


def _pct(x: float) -> str:
    return "n/a (too few cells to fit)" if not math.isfinite(x) else f"{fmt_number(100 * x)} %"


def plan_command(
    target_compute: str = typer.Option(..., "--target-compute", help="FLOPs of the large run "
                                       "to predict, e.g. 1e14."),
    budget: str = typer.Option(..., "--budget", help="FLOPs the small runs may spend."),
    target_n: str | None = typer.Option(None, "--target-n", help="Parameters N of the target "
                                        "(default: its compute-optimal split)."),
    target_d: str | None = typer.Option(None, "--target-d", help="Training tokens D of the "
                                        "target (default: its compute-optimal split)."),
    sweep: str | None = typer.Option(None, "--sweep", help="Plan on from this sweep's "
                                     "finished runs."),
    csv: Path | None = typer.Option(None, "--csv", help="Plan on from the runs in this CSV "
                                    "(read as `fit --csv` reads it)."),
    store: str | None = StoreOption,
    n_col: str = NCol,
    d_col: str = DCol,
    loss_col: str = LossCol,
    c_col: str = CCol,
    sizes: str | None = typer.Option(None, "--sizes", help="Candidate model sizes, parameter "
                                     "counts separated by commas (default: a ladder below the "
                                     "target's N)."),
    schedule: str = typer.Option("cosine", "--schedule", help="cosine (each cell from "
                                 "scratch) or wsd-branches (cells of a size share one trunk, "
                                 "paid once)."),
    until_width: str | None = typer.Option(None, "--until-width", help="Write an adaptive "
                                           "grid: `sweep run` stops once the band at the "
                                           "target is this narrow (e.g. 2%)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the grid file here."),
    name: str | None = typer.Option(None, "--name", help="Sweep name in the grid (default: "
                                    "the output file's name)."),
    simulations: int = typer.Option(8, "--simulations", min=0, help="Simulated fits per "
                                    "design for the expected widths (0: linearised widths)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the simulations."),
) -> None:
    """Propose the cells (N, D) whose results most narrow the prediction band at a target run
    for a compute budget; print them with the expected band width against a geometric grid of
    equal cost, and write a grid file ready for `scaletrack sweep run`. Plans for the built-in
    GPT on the Zipf-words corpus; without --sweep or --csv it starts from published fits."""
    from scaletrack.cli.fit import _load as load_fit_points
    from scaletrack.planning import SCHEDULES, load_points, plan_builtin_grid

    c_star = parse_flops("--target-compute", target_compute)
    flops = parse_flops("--budget", budget)
    n_star = parse_flops("--target-n", target_n)
    d_star = parse_flops("--target-d", target_d)
    width = parse_width(until_width)
    ladder = parse_sizes(sizes)
    assert c_star is not None and flops is not None
    check_target_range(c_star, n_star, d_star)
    if schedule not in SCHEDULES:
        fail(f"--schedule: expected one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if sweep is not None and csv is not None:
        fail("give at most one of --sweep NAME or --csv FILE")
    if flops >= c_star:
        fail(f"--budget {fmt_number(flops)} FLOPs is not below --target-compute "
             f"{fmt_number(c_star)}: the small runs would cost as much as the target")
    grid_name = name or (output.stem if output is not None else "planned")
    if not NAME_PATTERN.fullmatch(grid_name):
        fail(f"--name: {grid_name!r} is not a sweep name (letters, digits, '.', '_', '-'); "
             "give --name")
    if output is not None and output.is_dir():
        fail(f"--output: {str(output)!r} is a folder; give a file name such as next.toml")
    if output is not None and not output.parent.is_dir():
        fail(f"--output: folder {str(output.parent)!r} does not exist")
    points = None
    if sweep is not None or csv is not None:
        if csv is not None and not csv.is_file():
            fail(f"--csv: file {str(csv)!r} not found")
        # the runs as `scaletrack fit` reads them, best lr per (N, D) and seeds averaged
        points = load_points(points=load_fit_points(sweep, csv, store,
                                                    (n_col, d_col, loss_col, c_col)))
    try:
        planned = plan_builtin_grid(
            target_compute=c_star, budget=flops, points=points, target_n=n_star,
            target_tokens=d_star, sizes=ladder, schedule=schedule, name=grid_name,
            until_width=width, n_simulations=simulations, seed=seed,
        )
    except ConfigError as exc:  # the planned grid itself is refused: a target out of range
        if not str(exc).startswith(f"{PLANNED_SOURCE}:"):
            raise
        fail(f"--target-compute: {fmt_number(c_star)} FLOPs (with these --target-n, "
             f"--target-d, --sizes) is beyond the range the planner can design for: the "
             f"planned grid's {str(exc).splitlines()[0].removeprefix(PLANNED_SOURCE + ': ')}")
    plan = planned.plan
    _print_plan(planned)
    if output is not None:
        tmp = output.with_name(output.name + ".tmp")
        tmp.write_text(planned.grid_toml, encoding="utf-8")
        tmp.replace(output)
        console.print(f"wrote {literal(output)}: run it with `scaletrack sweep run "
                      f"{literal(output)}`", highlight=False, soft_wrap=True)
    elif plan.cells:
        console.print("(give -o FILE to write the grid file)")


def _print_plan(planned: PlannedGrid) -> None:
    import pandas as pd

    plan = planned.plan
    rows = [{"order": i + 1, "size": c.size_label, "N": c.N, "D": c.D, "C": c.C, "steps": c.steps}
            for i, c in enumerate(_in_plan_order(planned))]
    console.print(f"target: {fmt_number(plan.target_flops)} FLOPs, "
                  f"N = {fmt_number(plan.target_n)} params, "
                  f"D = {fmt_number(plan.target_tokens)} tokens (law from the {plan.law_source}; "
                  f"run-to-run noise {100 * plan.noise:.1f} %)", highlight=False)
    print_table(pd.DataFrame(rows), title="proposed cells, cheapest first")
    how = (f"by {plan.n_simulations} simulated fits" if plan.n_simulations
           else "linearised")
    console.print(f"cost {fmt_number(planned.cost_flops)} FLOPs of "
                  f"{fmt_number(plan.budget_flops)}; "
                  f"expected 95 % band width at the target ({how}): {_pct(plan.expected_width)}",
                  highlight=False)
    console.print(f"a geometric grid of equal cost ({len(plan.baseline_cells)} cells, "
                  f"{fmt_number(planned.baseline_cost_flops)} FLOPs): "
                  f"{_pct(plan.baseline_width)}", highlight=False)
    from scaletrack.planning import plan_fails_more, plan_is_worse

    if plan.n_simulations:
        console.print(f"simulated fits refused or degenerate (no band; the widths above are "
                      f"over the others): {_pct(plan.failed_share)} of the plan's, "
                      f"{_pct(plan.baseline_failed_share)} of the grid's", highlight=False)
    if plan.n_simulations and plan_is_worse(plan):
        err_console.print("warning: in simulation the geometric grid of equal cost gives the "
                          "narrower band at the target; prefer a plain grid over this plan",
                          highlight=False, soft_wrap=True)
    if plan.n_simulations and plan_fails_more(plan):
        err_console.print("warning: in simulation more of this plan's fits than the geometric "
                          "grid's fail; prefer a plain grid over this plan",
                          highlight=False, soft_wrap=True)


def _in_plan_order(planned: PlannedGrid) -> list[Any]:
    """The grid's cells (trunks left out) in the planner's order."""
    plan = planned.plan
    cells = {(float(c.N), float(c.D)): c for c in planned.cells
             if c.role != "trunk" and c.N is not None}
    return [cells[(c.n_params, c.tokens)] for c in plan.cells
            if (c.n_params, c.tokens) in cells]


def register(app: typer.Typer) -> None:
    """Add `plan` to the main app."""
    app.command("plan")(plan_command)


# ------------------------------------------------------------------- adaptive `sweep run`


def adaptive_settings(grid: Any, until_width: str | None, target_compute: str | None,
                      budget: str | None) -> Any:
    """`sweep run`'s adaptive settings (scaletrack.adaptive.AdaptiveSettings) from its options
    and the grid's [plan] table, or None for an ordinary run; bad values: one error line."""
    from scaletrack.adaptive import settings_for

    width = parse_width(until_width)
    c_star = parse_flops("--target-compute", target_compute)
    flops = parse_flops("--budget", budget)
    if flops is not None and width is None and not (grid.spec.plan and grid.spec.plan.adaptive):
        fail("--budget is for an adaptive run: give --until-width too (e.g. --until-width 2%)")
    return settings_for(grid, width, c_star, flops)


def run_adaptive_command(grid: Any, settings: Any, store_url: str,
                         train: Callable[[Any], Any]) -> None:
    """Run `grid` adaptively (scaletrack.adaptive), printing each decision as it is made."""
    from scaletrack.adaptive import band_text, run_adaptive

    target = (f"{fmt_number(settings.target_compute)} FLOPs" if settings.target_compute
              else f"N {fmt_number(settings.target_n)}, D {fmt_number(settings.target_tokens)}")
    console.print(f"adaptive sweep [bold]{literal(grid.name)}[/]: until the 95 % band at "
                  f"the target ({target}) is {100 * settings.until_width:g} % wide"
                  + (f" or {fmt_number(settings.budget)} FLOPs are spent"
                     if settings.budget else ""),
                  highlight=False)

    def show(step: Any) -> None:
        width = step.band or band_text(step.width, step.n_points)
        if step.action == "stop":
            console.print(f"stop: {literal(step.reason)}; band {width}; "
                          f"{len(step.skipped)} cells skipped", highlight=False)
        else:
            console.print(f"step {step.step}: {step.action} {literal(step.size)} "
                          f"D={step.D:,.0f} ({literal(step.reason)}); band after it {width}; "
                          f"{fmt_number(step.spent_flops)} FLOPs spent", highlight=False,
                          soft_wrap=True)

    report = run_adaptive(grid, settings, store_url, run_cells=train, on_step=show)
    if report.interrupted:
        console.print("[yellow]interrupted[/]: run the same command again to resume")
        raise typer.Exit(130)
    saved = report.full_flops - report.spent_flops
    console.print(f"sweep [bold]{literal(report.sweep)}[/]: {report.trained} cells trained, "
                  f"{fmt_number(report.spent_flops)} FLOPs of the full grid's "
                  f"{fmt_number(report.full_flops)} ({fmt_number(saved)} saved); "
                  f"see `scaletrack sweep status {literal(report.sweep)}`",
                  highlight=False)


def print_decisions(rows: list[dict[str, Any]], sweep: str) -> None:
    """The recorded decisions of a sweep's adaptive runs (`scaletrack.adaptive.decisions`),
    as `sweep status` shows them."""
    import pandas as pd

    table = pd.DataFrame([{
        "step": r.get("step"), "action": r.get("action"),
        "cell": f"{r['size']} D={r['D']:,.0f}" if r.get("size") else "-",
        "points": r.get("n_points"), "band": r.get("band") or "-",
        "FLOPs spent": r.get("spent_flops"),
        "why": r.get("reason")} for r in rows])
    print_table(table, title=f"adaptive decisions of {sweep}")
    last = rows[-1]
    if last.get("action") == "stop" and last.get("skipped"):
        shown = ", ".join(last["skipped"][:8])
        more = len(last["skipped"]) - 8
        console.print(f"skipped: {literal(shown)}" + (f" and {more} more" if more > 0 else ""),
                      highlight=False, soft_wrap=True)
