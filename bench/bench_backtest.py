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

Fourth selection (declared and committed before any of its outcomes was computed; the
figures of "pooled", "reach", "frontier" and "frontier_hedged" on Epoch were known, those of
the new candidates were not, on any data):

- Diagnosis that motivates it (Epoch, fits below the 80th percentile of N): the inner splits'
  reach in N is short (0.06-0.24 decades for the top 10-30 % of N of the training runs, while
  the held-out largest models lie up to 0.9 decades beyond), and residuals of one split share
  that split's drift, so pooling them (as "reach" does) sees a drift as scatter shrunk by the
  split's size. Inner splits at matching reach in N (0.25-1 decade below the largest training
  model) show no under-prediction on that training part (mean errors -0.4 % to +1.1 %): the
  drift that hits the largest models is not in the smaller runs, so no calibration on them
  can predict its size; a band can only carry the split-to-split variation of the drift.
- New candidates, from the same inner splits (no extra refits, so the fit's cost is
  unchanged): "split_drift" (each inner split's drift per decade of its own direction, b_j =
  sum(r·x)/sum(x^2); a new run deviates by b_C·d_C + b_N·d_N + s0·z with b_C, b_N drawn from
  the compute and model-size splits' drifts, kept as they are where a direction's splits agree
  on the sign, an asymmetric band, else symmetrised; s0·z the residuals less their split's
  drift) and "split_drift_symmetric" (drifts always symmetrised). Incumbents: "reach" (the
  default), "pooled", "frontier", "frontier_hedged". Model averaging over forms is not a
  candidate: a second form's bootstrap and inner refits would double the fit's cost
  (Epoch 240 points with calibration must stay <= 1.5 s CPU).
- Selection data, none from Epoch: (S1) Porian et al. 2024, 10 sets, and (S2) Open-Athena, 5
  sets (as `bench_interval_selection.selection_sets`), each held out by compute (top 20, 40 %)
  and by model size (top 20, 30 % of N); (S3) the OLMo ladder: the final C4 loss of its 16
  ladder runs (190M-1B, 1-10x Chinchilla tokens; D = tokens seen, C = 6·N·D) fitted, the 7B
  and 13B runs predicted (hold-out top 10 % of N: the two targets); (S4) simulated broken and
  (S5) Chinchilla laws, seeds 100..104, top 30 % by C and by N. 200 bootstrap refits, seed 0;
  a cell whose fit is degenerate or raises DataError is left out for every model alike.
- Groups: Porian by C, Porian by N, Open-Athena by C, Open-Athena by N, OLMo, broken by C,
  broken by N, control by C, control by N. A group's coverage is the share of all its held-out
  runs inside the 95 % prediction band (pooled over its cells); its width the median of its
  cells' median relative widths.
- Rule: eligible is a model whose every group covers at least 0.85; among the eligible the
  one with the smallest median group width becomes the default. If none is eligible, or the
  pick is "reach", the default stays "reach" (no fallback adoption).

    .venv/bin/python bench/bench_backtest.py [--bootstrap 200] [--seeds 10] [--skip-sim]
        [--identify-seeds 20] [--select] [--residual-model NAME]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from scaletrack.analysis import backtest, load_epoch_chinchilla
from scaletrack.analysis.backtesting import rescore
from scaletrack.analysis.calibration import DEFAULT_RESIDUAL_MODEL, RESIDUAL_MODELS
from scaletrack.errors import DataError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BY_C = (0.1, 0.2, 0.3, 0.4, 0.5)
BY_N = (0.2, 0.3)
SIM = {"E": 1.7, "A": 400.0, "B": 1800.0, "alpha": 0.34, "beta": 0.36}
N_BREAK, NOISE = 1e9, 0.02
CANDIDATES = ("pooled", "reach", "frontier", "frontier_hedged", "split_drift",
              "split_drift_symmetric")
SELECT_SEEDS = range(100, 105)
SELECT_HOLDOUTS = (("C", 0.2), ("C", 0.4), ("N", 0.2), ("N", 0.3))
OLMO = "olmo_ladder_task_bpb_acc.csv"
MIN_COVERAGE = 0.85
HEADER = (f"{'set':>22} {'by':>3} {'top':>5} {'n_tr':>5} {'n_te':>5} {'MAPE%':>6} {'bias%':>6} "
          + " ".join(f"{name[:15]:>15}" for name in CANDIDATES) + f" {'s':>5}")
sys.path.insert(0, str(Path(__file__).resolve().parent))


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
    """One back-test, scored under every candidate residual model (same fit): candidate ->
    summary; prints coverage / median width per candidate."""
    t0 = time.process_time()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = backtest(df, "chinchilla", holdout_top=top, holdout_by=by,
                           n_bootstrap=args.bootstrap, residual_model=args.residual_model)
            out = {c: dict(rescore(res, c).summary) for c in CANDIDATES}
    except DataError as exc:
        print(f"{name:>22} {by:>3} {top:>5.2f} skipped: {exc}")
        return None
    s = res.summary
    cells = " ".join(f"{out[c]['coverage_prediction']:>6.2f}/"
                     f"{out[c]['median_width_prediction']:<8.3f}" for c in CANDIDATES)
    print(f"{name:>22} {by:>3} {top:>5.2f} {s['n_train']:>5} {s['n_test']:>5} "
          f"{100 * s['mape']:>6.2f} {100 * s['mean_rel_error']:>6.2f} {cells} "
          f"{time.process_time() - t0:>5.1f}", flush=True)
    return out


def sim_cells(label: str, alpha2: float, by: str, seeds, args) -> dict[str, dict] | None:
    """Simulated grids over `seeds`, top 30 % held out by `by`: candidate -> mean and lowest
    coverage, median of the median widths."""
    rows = [row(f"{label} s{seed}", by, 0.3, sim_grid(seed, alpha2), args) for seed in seeds]
    rows = [r for r in rows if r is not None]
    if not rows:
        return None
    out = {}
    for c in CANDIDATES:
        cov = np.array([r[c]["coverage_prediction"] for r in rows])
        wid = np.array([r[c]["median_width_prediction"] for r in rows])
        out[c] = {"coverage": float(cov.mean()), "min": float(cov.min()),
                  "width": float(np.median(wid))}
    print(f"{label:>22} {by:>3}  0.30 over {len(rows)} seeds (mean cover, lowest, median "
          "width): " + "; ".join(f"{c} {v['coverage']:.2f} {v['min']:.2f} {v['width']:.3f}"
                                 for c, v in out.items()), flush=True)
    return out


def olmo_ladder(data: Path) -> pd.DataFrame:
    """OLMo ladder runs' final C4 loss: 16 ladder runs and the 7B and 13B targets (N params,
    D tokens seen at the last step, C = 6·N·D FLOPs, loss nats)."""
    raw = pd.read_csv(data / OLMO).dropna(subset=["c4_loss"])
    last = raw.sort_values("tokens").groupby("run", as_index=False).last()
    n, d = last["n_params"].to_numpy(float), last["tokens"].to_numpy(float)
    return pd.DataFrame({"N": n, "D": d, "C": 6 * n * d, "loss": last["c4_loss"]})


def _cell(out: dict | None) -> dict[str, dict] | None:
    """Per candidate: held-out runs, runs inside the band, median relative width; None for a
    cell left out (no fit, degenerate, or no coverage)."""
    if out is None or any(v["status"] != "ok" or not np.isfinite(v["coverage_prediction"])
                          for v in out.values()):
        return None
    return {c: {"n": v["n_test"], "inside": v["coverage_prediction"] * v["n_test"],
                "width": v["median_width_prediction"]} for c, v in out.items()}


def select(args) -> None:
    """The fourth declared selection: Porian, Open-Athena, OLMo ladder, simulated laws."""
    from bench_interval_selection import selection_sets

    groups: dict[str, list[dict[str, dict]]] = {}

    def add(group: str, out: dict | None) -> None:
        cell = _cell(out)
        if cell is not None:
            groups.setdefault(group, []).append(cell)

    if (args.data / "porian2024_isoflop_points.csv").is_file():
        for name, df in selection_sets(args.data):
            family = name.split("/")[0]
            for by, top in SELECT_HOLDOUTS:
                add(f"{family} by {by}", row(name[:22], by, top, df, args))
    if (args.data / OLMO).is_file():
        add("olmo ladder", row("olmo ladder", "N", 0.1, olmo_ladder(args.data), args))
    for label, alpha2 in (("broken", SIM["alpha"] / 2), ("control", SIM["alpha"])):
        for by in ("C", "N"):
            for seed in SELECT_SEEDS:
                add(f"{label} by {by}", row(f"select {label} s{seed}", by, 0.3,
                                            sim_grid(seed, alpha2), args))
    print(f"selection groups (eligible: every group covers >= {MIN_COVERAGE}); per candidate "
          "pooled coverage / median of cell median widths:")
    print(f"{'group':>22} {'cells':>5} {'runs':>5} "
          + " ".join(f"{c[:15]:>15}" for c in CANDIDATES))
    summary = {c: {"low": 1.0, "widths": []} for c in CANDIDATES}
    for group, cells in groups.items():
        line = []
        for c in CANDIDATES:
            n = sum(cell[c]["n"] for cell in cells)
            cover = sum(cell[c]["inside"] for cell in cells) / n
            width = float(np.median([cell[c]["width"] for cell in cells]))
            summary[c]["low"] = min(summary[c]["low"], cover)
            summary[c]["widths"].append(width)
            line.append(f"{cover:>6.2f}/{width:<8.3f}")
        runs = sum(cell[CANDIDATES[0]]["n"] for cell in cells)
        print(f"{group:>22} {len(cells):>5} {runs:>5} " + " ".join(line))
    eligible = []
    for c in CANDIDATES:
        low, width = summary[c]["low"], float(np.median(summary[c]["widths"]))
        ok = low >= MIN_COVERAGE
        if ok:
            eligible.append((width, c))
        print(f"  {c:>22}: lowest group coverage {low:.2f}, median group width {width:.3f}"
              f"{'' if ok else ' (not eligible)'}")
    pick = min(eligible)[1] if eligible else None
    print(f"eligible: {', '.join(c for _, c in sorted(eligible)) or 'none'}; chosen by the "
          f"declared rule: {pick or 'none, the default stays reach'}")


def former_rule(fit) -> bool:
    """The parameter-interval rule `status` used by earlier versions (for comparison only)."""
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
    ap.add_argument("--skip-identify", action="store_true")
    ap.add_argument("--select", action="store_true",
                    help="run the declared selection instead of the report")
    ap.add_argument("--identify-seeds", type=int, default=20)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--residual-model", choices=RESIDUAL_MODELS, default=DEFAULT_RESIDUAL_MODEL)
    args = ap.parse_args()
    t0 = time.process_time()
    print(f"default residual model {args.residual_model}; {args.bootstrap} bootstrap refits; "
          "bias = mean (predicted - loss)/loss; per candidate: share of held-out runs in "
          "the 95% prediction band / median (hi - lo)/predicted")
    print(HEADER)
    path = args.data / "epoch_chinchilla_svg_extracted_data.csv"
    df = None
    if args.skip_epoch:
        pass
    elif path.is_file():
        df = load_epoch_chinchilla(path, drop_highest_loss=5)
    else:
        print(f"skip Epoch: {path} is absent")
    if args.select:
        select(args)
        print(f"total CPU {time.process_time() - t0:.0f} s")
        return
    if df is not None:
        for by, tops in (("C", BY_C), ("N", BY_N)):
            for top in tops:
                row("epoch", by, top, df, args)
    if not args.skip_sim:
        for label, alpha2 in (("broken (a2 = a1/2)", SIM["alpha"] / 2),
                              ("control (a2 = a1)", SIM["alpha"])):
            for by in ("C", "N"):
                sim_cells(label, alpha2, by, range(args.seeds), args)
    if not args.skip_identify:
        identification(args.identify_seeds, args.bootstrap)
    print(f"total CPU {time.process_time() - t0:.0f} s")


if __name__ == "__main__":
    main()
