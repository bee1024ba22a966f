"""Cooldown branches vs one cosine run per cell: compute, wall time, final losses and fits.

For each grid — the demo grid, and the demo grid with 8 evenly spaced budgets (1..8 x
``--base-tokens``, default 400k..3.2M tokens) — the same cells
are trained twice on this machine: as wsd cooldown branches off one trunk per size
(``[schedule] kind = "wsd", branches = true``) and as one cosine run per cell. Printed: the
FLOPs each way actually spent (a branch pays only for its cooldown; the trunk once), wall
and CPU seconds, every cell's final validation loss both ways (nats/token) and the gap, and
the Chinchilla fit's alpha and beta both ways with 95 % bootstrap intervals. Both ways warm
up over the same number of steps, so the comparison is of the decay alone.

Each schedule gets its own learning rate per model size, chosen before any reported cell is
trained: every size x LR_SET is trained once per schedule at a selection budget that is not
one of the reported budgets (by default the geometric mean of the two middle budgets), and
the lowest final validation loss picks the LR. A wsd selection run is trained from scratch
with the branches' schedule (a branch at that budget takes the very same steps). The
reported cells then run with each schedule's own pick. The tokens each reported cell trained
(its logged ``tokens`` at its last step) are checked equal between the two ways.

    .venv/bin/python bench/bench_branches.py                    # both grids (long on a CPU)
    .venv/bin/python bench/bench_branches.py --grids eight      # just the 8-budget grid
    .venv/bin/python bench/bench_branches.py --grids eight --base-tokens 100000 --workers 2
    .venv/bin/python bench/bench_branches.py --grids eight --lrs 3e-3,1e-2 --select-tokens 90000

Targets: >= 2x less compute on the 8-budget grid; every branch within 1 % of the cosine run
at the same budget; alpha and beta of each fit inside the other's interval. The last line
is ``compute ratio X, wall ratio Y, max loss gap Z%`` over the 8-budget grid's reported
cells (the demo grid's figures are printed above it; the selection runs' cost is printed
separately). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import re
import resource
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from scaletrack.sweeps.grid import Grid, expand
from scaletrack.sweeps.runner import flops_spent, run_sweep
from scaletrack.sweeps.spec import parse_spec_text

BRANCH_SCHEDULE = """[schedule]
kind = "wsd"
branches = true
cooldown = "1-sqrt"
decay_frac = 0.2
warmup_steps = {warmup}
min_lr_frac = 0.1
"""
WSD_SCRATCH_SCHEDULE = """[schedule]
kind = "wsd"
cooldown = "1-sqrt"
decay_frac = 0.2
warmup_steps = {warmup}
min_lr_frac = 0.1
"""
COSINE_SCHEDULE = """[schedule]
kind = "cosine"
warmup_steps = {warmup}
min_lr_frac = 0.1
"""

LR_SET = (3e-3, 1e-2, 3e-2)  # learning rates tried per schedule and size



@dataclass
class Side:
    """One way of training a grid: its cells' losses, compute, time and fit."""

    points: pd.DataFrame  # N, D, C, loss, lr, tokens (trained, from the last logged step)
    spent: float  # FLOPs
    wall_s: float
    cpu_s: float
    fit: object | None
    fit_error: str | None


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _swap_schedule(toml: str, schedule: str, name: str) -> str:
    """The grid text with its [schedule] table replaced and its name changed."""
    body = re.sub(r"(?ms)^\[schedule\]\n.*?(?=^\[|\Z)", "", toml)
    body = re.sub(r'(?m)^name = ".*"$', f'name = "{name}"', body)
    return body.rstrip("\n") + "\n" + schedule


def _set_axis(toml: str, axis: str, values: Sequence[float]) -> str:
    """The grid text with its ``axis = [...]`` line (tokens or lrs) replaced by ``values``."""
    line = f"{axis} = [" + ", ".join(f"{v:g}" if axis == "lrs" else str(int(v))
                                      for v in values) + "]"
    body, n = re.subn(rf"(?m)^{axis} = \[.*\]$", line, toml)
    if n != 1:
        raise SystemExit(f"grid text: expected one '{axis} = [...]' line, found {n}")
    return body


def selection_budget(budgets: Sequence[int]) -> int:
    """Tokens of the LR selection runs: the geometric mean of the two middle budgets (so never
    one of the reported budgets when those are distinct)."""
    b = sorted(budgets)
    i = (len(b) - 1) // 2
    j = min(i + 1, len(b) - 1)
    return int(round(math.sqrt(b[i] * b[j])))


def _train(grid: Grid, workdir: Path, workers: int) -> tuple[pd.DataFrame, pd.DataFrame,
                                                               float, float]:
    """Run `grid` into workdir's store: (runs, fit points with trained tokens, wall s, CPU s)."""
    from scaletrack.store import Store

    url = f"sqlite:///{workdir / (grid.name + '.db')}"
    t0, c0 = time.perf_counter(), _cpu_s()
    report = run_sweep(grid, url, workers=workers, checkpoint_dir=workdir / "ck")
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    if not report.ok:
        raise SystemExit(f"sweep {grid.name} did not finish: "
                         f"{[r.message for r in report.results if r.message]}")
    with Store.open(url) as store:
        runs = store.runs(sweep=grid.name)
        points = store.fit_runs(grid.name)
        tokens = store.metrics(list(points["run_key"]), names=["tokens"])
    trained = tokens.groupby("run_key")["value"].max()
    points = points[["run_key", "N", "D", "C", "final_loss", "lr"]].rename(
        columns={"final_loss": "loss"})
    points["tokens"] = points["run_key"].map(trained)
    points = points.drop(columns="run_key").astype("float64")
    return runs, points.sort_values(["N", "D"]).reset_index(drop=True), wall, cpu


def select_lrs(toml: str, workdir: Path, workers: int, lrs: Sequence[float],
               tokens: int) -> tuple[pd.DataFrame, float, float]:
    """Train every size x `lrs` at `tokens`: (losses N x lr, FLOPs, CPU s)."""
    spec = parse_spec_text(_set_axis(_set_axis(toml, "lrs", lrs), "tokens", [tokens]), "<bench>")
    runs, points, _, cpu = _train(expand(spec, "<bench>"), workdir, workers)
    return points.pivot(index="N", columns="lr", values="loss"), flops_spent(runs), cpu


def run_side(toml: str, workdir: Path, workers: int, bootstrap: int,
             best_lr: dict[float, float]) -> Side:
    """Train the grid with each size at its own LR (`best_lr`: N -> lr); fit it."""
    from scaletrack.analysis.chinchilla import fit_chinchilla
    from scaletrack.errors import ScaletrackError

    spec = parse_spec_text(_set_axis(toml, "lrs", sorted(set(best_lr.values()))), "<bench>")
    grid = expand(spec, "<bench>")
    cells = tuple(c for c in grid.cells if best_lr.get(float(c.N)) == c.lr)
    runs, points, wall, cpu = _train(replace(grid, cells=cells), workdir, workers)
    fit, error = None, None
    try:
        fit = fit_chinchilla(points[["N", "D", "C", "loss"]], n_bootstrap=bootstrap)
    except ScaletrackError as exc:
        error = str(exc)
    return Side(points, flops_spent(runs), wall, cpu, fit, error)


def _param(fit: object | None, name: str) -> str:
    if fit is None:
        return "-"
    lo, hi = fit.ci95.get(name, (float("nan"), float("nan")))  # type: ignore[attr-defined]
    return f"{fit.params[name]:.3f} [{lo:.3f}, {hi:.3f}]"  # type: ignore[attr-defined]


def _inside(a: object | None, b: object | None, name: str) -> bool | None:
    """Whether a's estimate lies in b's interval and b's in a's."""
    if a is None or b is None:
        return None
    va, vb = a.params[name], b.params[name]  # type: ignore[attr-defined]
    la, ha = a.ci95[name]  # type: ignore[attr-defined]
    lb, hb = b.ci95[name]  # type: ignore[attr-defined]
    return lb <= va <= hb and la <= vb <= ha


def compare(label: str, toml: str, workers: int, bootstrap: int, lrs: Sequence[float],
            select_tokens: int | None) -> dict[str, float]:
    """Pick each schedule's LR per size, train the grid both ways, print the comparison;
    return the headline figures."""
    # both ways warm up over the same steps: the grid's warmup_steps, else warmup_frac of
    # the smallest budget's steps (what a branch grid uses)
    spec = parse_spec_text(toml, "<bench>")
    w = spec.schedule.warmup_steps
    if w is None:
        step_tokens = spec.train.batch_size * spec.data.context
        w = round(spec.schedule.warmup_frac * -(-min(spec.axes.tokens) // step_tokens))
    sel = select_tokens if select_tokens is not None else selection_budget(spec.axes.tokens)
    if sel in spec.axes.tokens:
        raise SystemExit(f"--select-tokens {sel} is a reported budget; choose another")
    ways = {
        "branches": (BRANCH_SCHEDULE, WSD_SCRATCH_SCHEDULE),
        "cosine": (COSINE_SCHEDULE, COSINE_SCHEDULE),
    }
    sides: dict[str, Side] = {}
    best: dict[str, dict[float, float]] = {}
    print(f"\n== {label}: LR selection at {sel:,} tokens (not a reported budget), "
          f"warmup {w} steps; final validation loss, nats/token ==")
    with tempfile.TemporaryDirectory(prefix="bench-branches-") as tmp:
        tmp_path = Path(tmp)
        select_flops, select_cpu = 0.0, 0.0
        for way, (_, pick_schedule) in ways.items():
            losses, flops, cpu = select_lrs(
                _swap_schedule(toml, pick_schedule.format(warmup=w), f"{label}-pick-{way}"),
                tmp_path, workers, lrs, sel)
            select_flops, select_cpu = select_flops + flops, select_cpu + cpu
            best[way] = {float(n): float(row.idxmin()) for n, row in losses.iterrows()}
            print(f"{way}: " + "; ".join(
                f"N={int(n):,}: " + ", ".join(f"{lr:g}->{v:.4f}" for lr, v in row.items())
                + f" (pick {best[way][float(n)]:g})" for n, row in losses.iterrows()))
        for way, (schedule, _) in ways.items():
            sides[way] = run_side(
                _swap_schedule(toml, schedule.format(warmup=w), f"{label}-{way}"),
                tmp_path, workers, bootstrap, best[way])
    branch, cosine = sides["branches"], sides["cosine"]
    table = branch.points.merge(cosine.points, on=["N", "D"], suffixes=("_branch", "_cosine"))
    table["gap"] = 100 * (table["loss_branch"] / table["loss_cosine"] - 1)
    print(f"== {label}: {table['N'].nunique()} sizes x {table['D'].nunique()} budgets ==")
    print(f"{'N':>9} {'D':>10} {'lr cos':>7} {'lr br':>7} {'cosine':>8} {'branch':>8} "
          f"{'gap %':>7}")
    for r in table.itertuples(index=False):
        print(f"{int(r.N):>9,} {int(r.D):>10,} {r.lr_cosine:>7g} {r.lr_branch:>7g} "
              f"{r.loss_cosine:>8.4f} {r.loss_branch:>8.4f} {r.gap:>+7.2f}")
    unequal = table[table["tokens_branch"] != table["tokens_cosine"]]
    print(f"tokens trained equal, branch vs cosine: {len(table) - len(unequal)}/{len(table)} "
          f"cells" + ("" if unequal.empty else "; differ at D = " + ", ".join(
              f"{int(d):,} ({int(a):,} vs {int(b):,})" for d, a, b in zip(
                  unequal["D"], unequal["tokens_branch"], unequal["tokens_cosine"],
                  strict=True))))
    compute_ratio = cosine.spent / branch.spent
    wall_ratio = cosine.wall_s / branch.wall_s
    max_gap = float(table["gap"].abs().max())
    print(f"FLOPs spent: cosine {cosine.spent:.3g}, branches {branch.spent:.3g} "
          f"(ratio {compute_ratio:.2f}x); LR selection, both ways: {select_flops:.3g} "
          f"({select_cpu:.0f}s CPU)")
    print(f"wall: cosine {cosine.wall_s:.0f}s, branches {branch.wall_s:.0f}s "
          f"(ratio {wall_ratio:.2f}x); CPU: cosine {cosine.cpu_s:.0f}s, branches "
          f"{branch.cpu_s:.0f}s (ratio {cosine.cpu_s / branch.cpu_s:.2f}x)")
    print(f"branches within 1% of cosine: {int((table['gap'].abs() <= 1).sum())}/"
          f"{len(table)}; max |gap| {max_gap:.2f}%; mean gap {table['gap'].mean():+.2f}%")
    for side, name in ((cosine, "cosine"), (branch, "branches")):
        if side.fit is None:
            print(f"fit {name}: failed: {side.fit_error}")
            continue
        status = getattr(side.fit, "status", None)  # set where the fit reports degeneracy
        said = f" (status {status})" if status is not None else ""
        print(f"fit {name}: alpha {_param(side.fit, 'alpha')}, beta {_param(side.fit, 'beta')}, "
              f"E {side.fit.params['E']:.3g}{said}")  # type: ignore[attr-defined]
    for name in ("alpha", "beta"):
        inside = _inside(branch.fit, cosine.fit, name)
        print(f"{name}: each fit's estimate inside the other's 95% interval: "
              f"{'-' if inside is None else ('yes' if inside else 'no')}")
    return {"compute": compute_ratio, "wall": wall_ratio, "gap": max_gap}


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive learning rates, got {text!r}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", default="demo,eight",
                        help="comma-separated: demo (the demo grid), eight (4 x 8 budgets)")
    parser.add_argument("--base-tokens", type=int, default=400_000,
                        help="the 8-budget grid's budgets are 1..8 x this (tokens)")
    parser.add_argument("--lrs", type=_floats, default=LR_SET,
                        help="learning rates tried per schedule and size (comma-separated)")
    parser.add_argument("--select-tokens", type=int, default=None,
                        help="budget of the LR selection runs (tokens; default: the geometric "
                             "mean of the two middle reported budgets)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    wanted = [g.strip() for g in args.grids.split(",") if g.strip()]
    headline: dict[str, float] | None = None
    if "demo" in wanted:
        from scaletrack.demo import DEMO_GRID_TOML

        headline = compare("demo", DEMO_GRID_TOML, args.workers, args.bootstrap, args.lrs,
                           args.select_tokens)
    if "eight" in wanted:
        from scaletrack.demo import DEMO_GRID_TOML

        toml = _set_axis(DEMO_GRID_TOML, "tokens", [k * args.base_tokens for k in range(1, 9)])
        toml = re.sub(r'(?m)^name = ".*"$', 'name = "eight"', toml)
        headline = compare("eight", toml, args.workers, args.bootstrap, args.lrs,
                           args.select_tokens)
    if headline is None:
        raise SystemExit("--grids: expected demo and/or eight")
    print(f"compute ratio {headline['compute']:.2f}, wall ratio {headline['wall']:.2f}, "
          f"max loss gap {headline['gap']:.2f}%")


if __name__ == "__main__":
    main()
