"""Back-test coverage: will the largest runs land in the band? Prints figures; asserts nothing.

Protocol of the extrapolation band (declared and committed before any of its outcomes was
computed; the figures of the earlier "pooled" default were known, those of the candidates
below were not):

- Candidates, all drawn from the same inner splits of the training runs (the calibration's
  grow-the-frontier back-tests: fit on the runs below the training set's 90/80/70/50 %
  compute quantile and below its 90/80/70 % N quantile, predict the runs beyond; no extra
  refits): "pooled" (the former default), "reach" (the former reach model), "frontier"
  (signed log error r = b_C·d_C + b_N·d_N + sigma·z with d_C, d_N the decades of compute
  and of N beyond the training runs, sigma^2 = s0^2 + (k_C·d_C)^2 + (k_N·d_N)^2 by Gaussian
  maximum likelihood; a direction's drift b is kept only where that direction's inner
  splits all agree on the sign of their mean error beyond the training runs, else it is 0
  and the drift shows as width), and "frontier_hedged" (as "frontier", with the drift drawn
  as u·(b_C·d_C + b_N·d_N), u uniform on [0, 2]: a drift of uncertain size, so it widens
  the band on its side as well as shifting it).
- Selection data (never the reported hold-outs' targets): (S1) Epoch's runs with N below
  the 70th percentile of N (168 runs, the training set of the top-30 % N hold-out), outer
  hold-outs inside it of the top 20 % and 30 % of N and the top 20 % and 40 % of compute;
  (S2) the simulated Chinchilla law below (alpha2 = alpha1) and (S3) the simulated broken
  law (alpha2 = alpha1 / 2), seeds 100..104, top 30 % by C and by N. 200 bootstrap refits,
  bootstrap seed 0 (simulation noise seeded by the grid seed).
- Rule: a candidate is eligible when every selection cell covers at least 0.85 (simulated
  cells: the mean over their seeds); the eligible candidate with the smallest median band
  width (median over cells of each cell's median relative width) becomes the default; if
  none is eligible, the one with the highest lowest-cell coverage. Model averaging over
  forms is not among the candidates.
- Reported (`--select` prints the selection, the default run the report): Epoch AI's 240
  Chinchilla points (245 less the 5 highest losses, as Besiroglu et al. 2024) held out by
  compute (top 10, 20, 30, 40, 50 % of runs) and by model size (top 20 and 30 % of N, the
  largest models at every budget); simulated broken power laws fitted with Chinchilla and
  the correctly specified control, seeds 0..9, top 30 % by C and by N. For each: MAPE, mean
  signed error, the share of held-out runs inside the 95 % prediction band and the band's
  median and mean relative width ((hi - lo) / predicted), for the default and, rescored on
  the same fit, for every candidate. Target: coverage 85-98 % everywhere, width beside it.
- Simulated misspecification (truth known, not the Chinchilla form): a broken power law in
  N, L = E + A·N^-alpha1 below N_b = 1e9 and A·N_b^-alpha1·(N/N_b)^-alpha2 above it
  (alpha2 = alpha1 / 2: returns fall off at scale) plus B/D^beta; E, A, B, alpha1, beta as
  the Chinchilla fit. Grid: 8 sizes 5e7..2e10 x 6 budgets 20..160 tokens per parameter
  (x N), 2 % log-normal noise.
- Identification on simulated 6 x 6 grids: the Chinchilla law above (no break), 6 sizes
  5e7..2e9 x 6 budgets 1e9..5e10 tokens, noise 2 % and 3 %, seeds 0..19, 200 bootstrap
  refits. For each: the share the fit calls degenerate, the share the former rule (a
  parameter interval wider than a factor 1e6, or an exponent's wider than 6) would have,
  and, at the fit's target (its compute-optimal N, D at 10x the largest compute), the
  median |error| of the prediction and the share of fresh single runs inside the 95% band.

    .venv/bin/python bench/bench_backtest.py [--bootstrap 200] [--seeds 10] [--skip-sim]
        [--identify-seeds 20] [--select] [--residual-model NAME]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from scaletrack.analysis import backtest, load_epoch_chinchilla
from scaletrack.analysis.calibration import DEFAULT_RESIDUAL_MODEL, RESIDUAL_MODELS
from scaletrack.errors import DataError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BY_C = (0.1, 0.2, 0.3, 0.4, 0.5)
BY_N = (0.2, 0.3)
SIM = {"E": 1.7, "A": 400.0, "B": 1800.0, "alpha": 0.34, "beta": 0.36}
N_BREAK, NOISE = 1e9, 0.02
HEADER = (f"{'set':>22} {'by':>3} {'top':>5} {'n_train':>7} {'n_test':>6} {'MAPE%':>6} "
          f"{'bias%':>6} {'cover':>6} {'w_med':>6} {'w_mean':>6} {'status':>10} {'s':>5}")


def broken_law(n: np.ndarray, d: np.ndarray, alpha2: float) -> np.ndarray:
    """Loss (nats) of the simulated law: N term bends from alpha1 to alpha2 at N_BREAK."""
    a1 = SIM["alpha"]
    n_term = np.where(n <= N_BREAK, SIM["A"] * n ** -a1,
                      SIM["A"] * N_BREAK ** -a1 * (n / N_BREAK) ** -alpha2)
    return SIM["E"] + n_term + SIM["B"] * d ** -SIM["beta"]


def sim_grid(seed: int, alpha2: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = np.repeat(np.geomspace(5e7, 2e10, 8), 6)
    d = n * np.tile(np.geomspace(20, 160, 6), 8)
    loss = broken_law(n, d, alpha2) * np.exp(rng.normal(0, NOISE, n.size))
    return pd.DataFrame({"N": n, "D": d, "C": 6 * n * d, "loss": loss})


def row(name: str, by: str, top: float, df: pd.DataFrame, args) -> dict | None:
    t0 = time.process_time()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = backtest(df, "chinchilla", holdout_top=top, holdout_by=by,
                           n_bootstrap=args.bootstrap, residual_model=args.residual_model)
    except DataError as exc:
        print(f"{name:>22} {by:>3} {top:>5.2f} skipped: {exc}")
        return None
    s = res.summary
    print(f"{name:>22} {by:>3} {top:>5.2f} {s['n_train']:>7} {s['n_test']:>6} "
          f"{100 * s['mape']:>6.2f} {100 * s['mean_rel_error']:>6.2f} "
          f"{s['coverage_prediction']:>6.2f} {s['median_width_prediction']:>6.3f} "
          f"{s['width_prediction']:>6.3f} {s['status']:>10} {time.process_time() - t0:>5.1f}",
          flush=True)
    return dict(s)


def former_rule(fit) -> bool:
    """The parameter-interval rule `status` used before issue 27 (for comparison only)."""
    for k, (lo, hi) in fit.ci95.items():
        if not (np.isfinite(lo) and np.isfinite(hi)) or k == "E":
            continue
        if k in ("alpha", "beta") and hi - lo > 6.0:
            return True
        if k in ("A", "B") and (lo <= 0 or hi / lo > 1e6):
            return True
    return False


def identification(seeds: int, bootstrap: int) -> None:
    from scaletrack.analysis import fit_chinchilla

    n = np.repeat(np.geomspace(5e7, 2e9, 6), 6)
    d = np.tile(np.geomspace(1e9, 5e10, 6), 6)
    for noise in (0.02, 0.03):
        degenerate = former = 0
        errors, inside = [], []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            df = pd.DataFrame({"N": n, "D": d, "loss": broken_law(n, d, SIM["alpha"])
                               * np.exp(rng.normal(0, noise, n.size))})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                fit = fit_chinchilla(df, n_bootstrap=bootstrap, seed=seed)
            degenerate += fit.degenerate
            former += former_rule(fit)
            t = fit.extra.get("target")
            if not t:
                continue
            truth = float(broken_law(np.array([t["N"]]), np.array([t["D"]]), SIM["alpha"])[0])
            errors.append(abs(t["pred"] / truth - 1))
            new = truth * np.exp(rng.normal(0, noise))
            inside.append(t["lo"] <= new <= t["hi"])
        print(f"6x6 grid, noise {noise:.0%}, {seeds} seeds: degenerate {degenerate / seeds:.0%}"
              f" (former parameter-interval rule: {former / seeds:.0%}); at 10x compute: "
              f"median |error| {100 * np.median(errors):.1f} %, new run inside the 95% band "
              f"{np.mean(inside):.0%} ({len(inside)} fits)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--skip-sim", action="store_true")
    ap.add_argument("--skip-epoch", action="store_true")
    ap.add_argument("--identify-seeds", type=int, default=20)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--residual-model", choices=RESIDUAL_MODELS, default=DEFAULT_RESIDUAL_MODEL)
    args = ap.parse_args()
    print(f"residual model {args.residual_model}; {args.bootstrap} bootstrap refits; "
          "columns: bias = mean (predicted - loss)/loss; cover = share of held-out runs in "
          "the 95% prediction band; w = (hi - lo)/predicted")
    print(HEADER)
    path = args.data / "epoch_chinchilla_svg_extracted_data.csv"
    if args.skip_epoch:
        pass
    elif path.is_file():
        df = load_epoch_chinchilla(path, drop_highest_loss=5)
        for by, tops in (("C", BY_C), ("N", BY_N)):
            for top in tops:
                row("epoch", by, top, df, args)
    else:
        print(f"skip Epoch: {path} is absent")
    if args.skip_sim:
        return
    identification(args.identify_seeds, args.bootstrap)
    for label, alpha2 in (("broken (a2 = a1/2)", SIM["alpha"] / 2), ("control (a2 = a1)",
                                                                      SIM["alpha"])):
        for by in ("C", "N"):
            cells = [row(f"{label} s{seed}", by, 0.3, sim_grid(seed, alpha2), args)
                     for seed in range(args.seeds)]
            cells = [c for c in cells if c is not None]
            if cells:
                cov = np.array([c["coverage_prediction"] for c in cells])
                wid = np.array([c["median_width_prediction"] for c in cells])
                print(f"{label:>22} {by:>3}  0.30 summary over {len(cells)} seeds: coverage "
                      f"mean {cov.mean():.2f} min {cov.min():.2f}; pooled median width "
                      f"{np.median(wid):.3f}", flush=True)


if __name__ == "__main__":
    main()
