"""The planner on Epoch AI's published Chinchilla points: choose among runs that exist, then
predict the largest runs held out. Prints figures; asserts nothing.

Protocol, declared before any outcome below was computed:

- Data: Epoch AI's 240 points (`load_epoch_chinchilla`, 245 rows less the 5 highest losses,
  as Besiroglu et al. 2024). Held out: the top 10 % of runs by compute (C >= its 0.9
  quantile). Pool the designs choose from: the runs at least 10x below the held-out
  threshold in compute (one decade of extrapolation at least).
- Target: N* and D* the geometric means of the held-out runs' N and D, C* = 6·N*·D*.
- Budgets: 1/8, 1/4 and 1/2 of the pool's total compute.
- Designs at each budget (cost = C of the runs taken, at most the budget):
  planned: `plan_runs(None, ...)` from its prior (no runs known), candidates = the pool;
  random: RANDOM_DRAWS random orders of the pool, each run taken if it still fits
  (seeds 0..RANDOM_DRAWS-1); geometric: the most runs whose log C best matches an even
  spacing from the pool's smallest run up to the highest top the budget allows.
- Each design is fitted with `fit_chinchilla` (200 bootstrap refits, calibrated scatter:
  the library default) and predicts every held-out run: MAPE, share of held-out runs in the
  95 % prediction band (coverage), median relative band width. A refused or degenerate fit
  is reported as such.
- The planner runs with its default distance error (`plan_sim.DISTANCE_ERROR`), chosen by
  `bench_plan_select.py` on Porian's and Llama 3's points, never on these.
- Second version of the planner's criterion (it models the library's "reach" band; see
  `analysis.plan_sim`), declared before this bench was run with it: same protocol, run
  once, reported whatever it shows; per budget also the share of random subsets more
  accurate than the planned one and the random draws' coverage p10-p90.
- Third version of the criterion (it also charges a design the risk that its fit is
  degenerate, `analysis.plan_sim.Criterion.score`), declared before this bench was run with
  it: same protocol, data, budgets and random seeds, run once and reported whatever it
  shows. Printed beside it, as diagnostics of why a design predicts as it does: each
  design's mean signed error on the held-out runs, the criterion's linearised width and
  failure risk for it, and where its runs lie (sizes, decades of N and D spanned, decades
  off the target's tokens per parameter); for random, means over the draws.
- Caveat: the prior's ranges include Besiroglu et al.'s fit, made on these same points,
  held-out runs included. The prior only says where the planner linearises; the fits that
  predict use the chosen runs alone.

    .venv/bin/python bench/bench_plan_epoch.py [--random 20] [--bootstrap 200]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from scaletrack.analysis import fit_chinchilla, load_epoch_chinchilla
from scaletrack.analysis.plan import (
    PRIOR_KAPPA,
    PRIOR_NOISE,
    PlannedCell,
    plan_runs,
    prior_draws,
)
from scaletrack.analysis.plan_sim import Criterion, DesignProblem
from scaletrack.errors import DataError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HOLDOUT_TOP = 0.1
POOL_GAP = 10.0
BUDGET_FRACTIONS = (0.125, 0.25, 0.5)
RANDOM_DRAWS = 20


def evaluate(train: pd.DataFrame, test: pd.DataFrame, n_boot: int) -> dict:
    """Fit `train`, predict `test`: MAPE, coverage and median width of the 95 % band."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fit = fit_chinchilla(train, n_bootstrap=n_boot, seed=0)
    except DataError as exc:
        return {"status": f"refused ({exc})", "mape": np.nan, "bias": np.nan, "cover": np.nan,
                "width": np.nan}
    band = fit.predict_interval(test)
    y = test["loss"].to_numpy(float)
    pred, lo, hi = (band[c].to_numpy(float) for c in ("pred", "lo", "hi"))
    return {"status": fit.status, "mape": float(np.mean(np.abs(pred - y) / y)),
            "bias": float(np.mean((pred - y) / y)),
            "cover": float(np.mean((lo <= y) & (y <= hi))),
            "width": float(np.median((hi - lo) / pred))}


def criterion_view(design: pd.DataFrame, target: tuple[float, float, float]) -> dict:
    """What the planner's criterion (prior draws, 2 % noise) expects of a design: linearised
    band width and failure risk; and where the design lies: distinct N, decades of N and D
    spanned, mean |log10(D/N) - log10(D*/N*)| (decades off the target's tokens per param)."""
    n, d, c = (design[k].to_numpy(float) for k in ("N", "D", "C"))
    problem = DesignProblem(
        laws=prior_draws(64, 0), cand_n=n, cand_d=d, cand_cost=c, existing_n=np.empty(0),
        existing_d=np.empty(0), existing_cost=np.empty(0), target_n=target[0],
        target_d=target[1], target_flops=target[2], sigma=PRIOR_NOISE, kappa=PRIOR_KAPPA,
        prior_precision=np.zeros((5, 5)))
    crit = Criterion(problem)
    every = [np.arange(n.size)]
    return {"lin": float(crit.mean_width(every)[0]), "risk": float(crit.failure_risk(every)[0]),
            "n_sizes": len(set(n.tolist())), "span_n": float(np.log10(n.max() / n.min())),
            "span_d": float(np.log10(d.max() / d.min())),
            "off_ratio": float(np.mean(np.abs(np.log10(d / n)
                                              - np.log10(target[1] / target[0]))))}


def random_subset(pool: pd.DataFrame, budget: float, seed: int) -> pd.DataFrame:
    order = np.random.default_rng(seed).permutation(len(pool))
    keep, spent = [], 0.0
    for i in order:
        c = float(pool["C"].iloc[i])
        if spent + c <= budget:
            keep.append(i)
            spent += c
    return pool.iloc[sorted(keep)]


def geometric_subset(pool: pd.DataFrame, budget: float) -> pd.DataFrame:
    """The most runs (>= 7) whose log C match an even spacing from the smallest run up to a
    top, within the budget: bisection on the count, and for each count on the top."""
    logc = np.log10(pool["C"].to_numpy(float))
    order = np.argsort(logc)

    def pick(m: int, top: float) -> np.ndarray:
        free = np.ones(logc.size, dtype=bool)
        chosen = []
        for x in np.linspace(logc.min(), top, m):
            gap = np.where(free, np.abs(logc - x), np.inf)
            i = int(np.argmin(gap))
            free[i] = False
            chosen.append(i)
        return np.sort(np.asarray(chosen))

    def cheapest(m: int) -> np.ndarray | None:
        lo, hi = float(logc[order[m - 1]]), float(logc.max())
        best = None
        for _ in range(20):
            mid = (lo + hi) / 2
            rows = pick(m, mid)
            if pool["C"].iloc[rows].sum() <= budget:
                best, lo = rows, mid
            else:
                hi = mid
        rows = pick(m, float(logc[order[m - 1]]))
        if best is None and pool["C"].iloc[rows].sum() <= budget:
            best = rows
        return best

    lo_m, hi_m, found = 7, logc.size, None
    while lo_m <= hi_m:
        m = (lo_m + hi_m) // 2
        rows = cheapest(m)
        if rows is not None:
            found, lo_m = rows, m + 1
        else:
            hi_m = m - 1
    return pool.iloc[found] if found is not None else pool.iloc[:0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--random", type=int, default=RANDOM_DRAWS)
    ap.add_argument("--bootstrap", type=int, default=200)
    args = ap.parse_args()
    path = args.data / "epoch_chinchilla_svg_extracted_data.csv"
    if not path.is_file():
        print(f"skip: {path} not found")
        return
    t0 = time.perf_counter()
    df = load_epoch_chinchilla(path, drop_highest_loss=5)
    cut = float(df["C"].quantile(1.0 - HOLDOUT_TOP))
    test = df[df["C"] >= cut]
    pool = df[df["C"] < cut / POOL_GAP].reset_index(drop=True)
    t_n = float(np.exp(np.log(test["N"]).mean()))
    t_d = float(np.exp(np.log(test["D"]).mean()))
    target = 6.0 * t_n * t_d
    print(f"held out {len(test)} runs (C >= {cut:.3g}); pool {len(pool)} runs "
          f"(C < {cut / POOL_GAP:.3g}), pool compute {pool['C'].sum():.3g} FLOPs; target "
          f"N {t_n:.3g}, D {t_d:.3g}, C {target:.3g}")
    cands = [PlannedCell(float(r.N), float(r.D), float(r.C)) for r in pool.itertuples()]
    print(f"{'budget':>7} {'design':>10} {'runs':>5} {'cost':>6} {'MAPE%':>6} {'cover':>6} "
          f"{'width':>6}  status")
    summary = []
    for frac in BUDGET_FRACTIONS:
        budget = frac * float(pool["C"].sum())
        t1, c1 = time.perf_counter(), time.process_time()
        plan = plan_runs(None, target_flops=target, budget_flops=budget, candidates=cands,
                         target_n=t_n, target_tokens=t_d, n_simulations=0)
        plan_s, plan_cpu = time.perf_counter() - t1, time.process_time() - c1
        picked = {(c.n_params, c.tokens) for c in plan.cells}
        planned = pool[[(n, d) in picked for n, d in zip(pool["N"], pool["D"], strict=True)]]
        geo = geometric_subset(pool, budget)
        rows = {"planned": [evaluate(planned, test, args.bootstrap)],
                "geometric": [evaluate(geo, test, args.bootstrap)],
                "random": [evaluate(random_subset(pool, budget, s), test, args.bootstrap)
                           for s in range(args.random)]}
        sizes = {"planned": len(planned), "geometric": len(geo),
                 "random": np.mean([len(random_subset(pool, budget, s))
                                    for s in range(args.random)])}
        costs = {"planned": planned["C"].sum() / budget,
                 "geometric": geo["C"].sum() / budget,
                 "random": np.mean([random_subset(pool, budget, s)["C"].sum() / budget
                                    for s in range(args.random)])}
        for name, res in rows.items():
            r = pd.DataFrame(res)
            ok = r["status"] == "ok"
            status = (r["status"].iloc[0] if len(r) == 1
                      else f"{ok.mean():.0%} ok of {len(r)}")
            print(f"{frac:>7.3f} {name:>10} {sizes[name]:>5.0f} {costs[name]:>6.2f} "
                  f"{100 * r['mape'].mean():>6.2f} {r['cover'].mean():>6.2f} "
                  f"{r['width'].mean():>6.3f}  {status}")
            summary.append({"frac": frac, "design": name, "mape": r["mape"].mean(),
                            "cover": r["cover"].mean(), "width": r["width"].mean()})
        rand = pd.DataFrame(rows["random"])
        views = {"planned": [criterion_view(planned, (t_n, t_d, target))],
                 "geometric": [criterion_view(geo, (t_n, t_d, target))],
                 "random": [criterion_view(random_subset(pool, budget, s), (t_n, t_d, target))
                            for s in range(args.random)]}
        for name, v in views.items():
            v_mean = pd.DataFrame(v).mean()
            bias = 100 * pd.DataFrame(rows[name])["bias"].mean()
            print(f"{'':>7} {name:>10}: signed error {bias:+.2f} %; "
                  f"criterion width {v_mean['lin']:.3f}, failure risk {v_mean['risk']:.3f}; "
                  f"{v_mean['n_sizes']:.0f} sizes, N over {v_mean['span_n']:.2f} and D over "
                  f"{v_mean['span_d']:.2f} decades, {v_mean['off_ratio']:.2f} decades off the "
                  "target's D/N")
        below = float(np.mean(rand["mape"] < rows["planned"][0]["mape"]))
        print(f"{'':>7} planner: {plan_s:.1f} s wall, {plan_cpu:.1f} s CPU; random: MAPE% "
              f"p10-p90 {100 * rand['mape'].quantile(.1):.2f}-"
              f"{100 * rand['mape'].quantile(.9):.2f}, coverage p10-p90 "
              f"{rand['cover'].quantile(.1):.2f}-{rand['cover'].quantile(.9):.2f}; random "
              f"subsets more accurate than the planned one: {below:.0%}")
    s = pd.DataFrame(summary).groupby("design")[["mape", "cover", "width"]].mean()
    print(f"wall {time.perf_counter() - t0:.0f} s")
    print("mean over budgets: " + "; ".join(
        f"{d} MAPE {100 * r.mape:.2f}% coverage {r.cover:.0%} width {r.width:.3f}"
        for d, r in s.iterrows()))


if __name__ == "__main__":
    main()
