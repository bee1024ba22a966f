"""Cooldown branches vs one cosine run per cell: compute, wall time, final losses and fits.

For each grid — the demo grid, and a 4 sizes x 8 evenly spaced budgets grid — the same cells
are trained twice on this machine: as wsd cooldown branches off one trunk per size
(``[schedule] kind = "wsd", branches = true``) and as one cosine run per cell. Printed: the
FLOPs each way actually spent (a branch pays only for its cooldown; the trunk once), wall
and CPU seconds, every cell's final validation loss both ways (nats/token) and the gap, and
the Chinchilla fit's alpha and beta both ways with 95 % bootstrap intervals. Both ways warm
up over the same number of steps, so the comparison is of the decay alone.

    .venv/bin/python bench/bench_branches.py                    # both grids (long on a CPU)
    .venv/bin/python bench/bench_branches.py --grids eight      # just the 8-budget grid
    .venv/bin/python bench/bench_branches.py --grids eight --base-tokens 20480 --workers 2

Targets: >= 2x less compute on the 8-budget grid; every branch within 1 % of the cosine run
at the same budget; alpha and beta of each fit inside the other's interval. The last line
is ``compute ratio X, wall ratio Y, max loss gap Z%`` over the 8-budget grid (the demo
grid's figures are printed above it). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import re
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scaletrack.sweeps.grid import expand
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
COSINE_SCHEDULE = """[schedule]
kind = "cosine"
warmup_steps = {warmup}
min_lr_frac = 0.1
"""

EIGHT_GRID = """name = "{name}"
[data]
corpus = "stdlib"
context = 64
[model]
family = "gpt"
sizes = [
  {{ n_layer = 1, n_head = 2, d_model = 32 }},
  {{ n_layer = 2, n_head = 2, d_model = 48 }},
  {{ n_layer = 2, n_head = 4, d_model = 64 }},
  {{ n_layer = 3, n_head = 4, d_model = 96 }},
]
[axes]
tokens = [{tokens}]
seeds = [0]
lrs = [3e-3]
[train]
batch_size = 16
device = "cpu"
[eval]
every = 50
batches = 8
[checkpoint]
every = 250
[schedule]
warmup_frac = 0.1
[executor]
kind = "local"
workers = 2
"""


@dataclass
class Side:
    """One way of training a grid: its cells' losses, compute, time and fit."""

    points: pd.DataFrame  # N, D, C, loss
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


def run_side(toml: str, workdir: Path, workers: int, bootstrap: int) -> Side:
    from scaletrack.analysis.chinchilla import fit_chinchilla
    from scaletrack.errors import ScaletrackError
    from scaletrack.store import Store

    spec = parse_spec_text(toml, "<bench>")
    grid = expand(spec, "<bench>")
    url = f"sqlite:///{workdir / (spec.name + '.db')}"
    t0, c0 = time.perf_counter(), _cpu_s()
    report = run_sweep(grid, url, workers=workers, checkpoint_dir=workdir / "ck")
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    if not report.ok:
        raise SystemExit(f"sweep {spec.name} did not finish: "
                         f"{[r.message for r in report.results if r.message]}")
    with Store.open(url) as store:
        runs = store.runs(sweep=spec.name)
        points = store.fit_runs(spec.name)
    spent = flops_spent(runs)
    points = points[["N", "D", "C", "final_loss"]].rename(columns={"final_loss": "loss"})
    points = points.astype("float64").sort_values(["N", "D"]).reset_index(drop=True)
    fit, error = None, None
    try:
        fit = fit_chinchilla(points, n_bootstrap=bootstrap)
    except ScaletrackError as exc:
        error = str(exc)
    return Side(points, spent, wall, cpu, fit, error)


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


def compare(label: str, toml: str, workers: int, bootstrap: int) -> dict[str, float]:
    """Train the grid both ways, print the comparison; return the headline figures."""
    # both ways warm up over the same steps: the grid's warmup_steps, else warmup_frac of
    # the smallest budget's steps (what a branch grid uses)
    spec = parse_spec_text(toml, "<bench>")
    w = spec.schedule.warmup_steps
    if w is None:
        step_tokens = spec.train.batch_size * spec.data.context
        w = round(spec.schedule.warmup_frac * -(-min(spec.axes.tokens) // step_tokens))
    with tempfile.TemporaryDirectory(prefix="bench-branches-") as tmp:
        tmp_path = Path(tmp)
        branch = run_side(_swap_schedule(toml, BRANCH_SCHEDULE.format(warmup=w),
                                         f"{label}-branches"), tmp_path, workers, bootstrap)
        cosine = run_side(_swap_schedule(toml, COSINE_SCHEDULE.format(warmup=w),
                                         f"{label}-cosine"), tmp_path, workers, bootstrap)
    table = branch.points.merge(cosine.points, on=["N", "D"], suffixes=("_branch", "_cosine"))
    table["gap"] = 100 * (table["loss_branch"] / table["loss_cosine"] - 1)
    print(f"\n== {label}: {table['N'].nunique()} sizes x {table['D'].nunique()} budgets ==")
    print(f"{'N':>9} {'D':>10} {'cosine':>8} {'branch':>8} {'gap %':>7}")
    for r in table.itertuples(index=False):
        print(f"{int(r.N):>9,} {int(r.D):>10,} {r.loss_cosine:>8.4f} {r.loss_branch:>8.4f} "
              f"{r.gap:>+7.2f}")
    compute_ratio = cosine.spent / branch.spent
    wall_ratio = cosine.wall_s / branch.wall_s
    max_gap = float(table["gap"].abs().max())
    print(f"FLOPs spent: cosine {cosine.spent:.3g}, branches {branch.spent:.3g} "
          f"(ratio {compute_ratio:.2f}x)")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", default="demo,eight",
                        help="comma-separated: demo (the demo grid), eight (4 x 8 budgets)")
    parser.add_argument("--base-tokens", type=int, default=102_400,
                        help="the 8-budget grid's budgets are 1..8 x this (tokens)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    wanted = [g.strip() for g in args.grids.split(",") if g.strip()]
    headline: dict[str, float] | None = None
    if "demo" in wanted:
        from scaletrack.demo import DEMO_GRID_TOML

        headline = compare("demo", DEMO_GRID_TOML, args.workers, args.bootstrap)
    if "eight" in wanted:
        tokens = ", ".join(str(k * args.base_tokens) for k in range(1, 9))
        toml = EIGHT_GRID.format(name="eight", tokens=tokens)
        headline = compare("eight", toml, args.workers, args.bootstrap)
    if headline is None:
        raise SystemExit("--grids: expected demo and/or eight")
    print(f"compute ratio {headline['compute']:.2f}, wall ratio {headline['wall']:.2f}, "
          f"max loss gap {headline['gap']:.2f}%")


if __name__ == "__main__":
    main()
