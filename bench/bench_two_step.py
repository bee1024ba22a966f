"""Two-step task prediction (scale -> task loss -> accuracy) on the OLMo model ladder.

Protocol, fixed before any 7B or 13B outcome was computed:
- VARIANTS below: 9 named fit_two_step configurations. Step-1 loss: "final" (each run's
  last checkpoint), "mean5" (mean of its last 5 checkpoints) or "last10%" (every checkpoint
  past 90 % of its run's tokens, trailing mean of 5). Step-2 points: "half" (second half of
  each run) or "skip10%" (all but the first 10 %), centred smoothing over 5 or 11
  checkpoints, with or without the (loss 0, accuracy 1) anchor.
- Rule: analysis.two_step.select_two_step_method over LADDER_FOLDS, ladder runs only. Folds:
  largest size (fit 190M-760M, predict the four 1B runs), largest ratio (fit 1x/2x/5xC,
  predict every 10xC run), corner (fit 190M-760M at 1x-5xC, predict 1B-10xC), two largest
  sizes (fit 190M+370M, predict 760M and 1B). Each fold's error = mean |predicted - mean
  accuracy of a run's last 5 checkpoints| in points over test runs x 8 tasks; the score
  averages the folds with weights = decades of compute (N x D) each extrapolates. Lowest
  score wins; a tie goes to the variant declared first.
- Outcomes only: the 7B-4T and 13B-5T targets predicted from the full ladder, for every
  variant. Goal: MAE <= 3.0 points on 13B (the ladder's own published chained error 4.17).
Prints figures; asserts nothing.

    .venv/bin/python bench/bench_two_step.py
"""

from __future__ import annotations

import argparse
import inspect
import time
from pathlib import Path

import pandas as pd

from scaletrack.analysis.two_step import (
    fit_two_step,
    load_olmo_ladder,
    select_two_step_method,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _cfg(step1: str, s2_min: float, smooth: int, anchor: bool) -> dict:
    s1 = {"final": (None, 1), "mean5": (None, 5), "last10%": (0.9, 5)}[step1]
    return {"step1_min_fraction": s1[0], "final_window": s1[1], "step2_min_fraction": s2_min,
            "step2_smooth": smooth, "step2_anchor": anchor}


# declared before scoring; the order breaks ties
VARIANTS: dict[str, dict] = {
    "last10%, half s11": _cfg("last10%", 0.5, 11, False),
    "last10%, half s11, anchor": _cfg("last10%", 0.5, 11, True),
    "last10%, skip10% s5, anchor": _cfg("last10%", 0.1, 5, True),
    "final, half s11": _cfg("final", 0.5, 11, False),
    "final, half s11, anchor": _cfg("final", 0.5, 11, True),
    "final, skip10% s5, anchor": _cfg("final", 0.1, 5, True),
    "mean5, half s11, anchor": _cfg("mean5", 0.5, 11, True),
    "mean5, half s5": _cfg("mean5", 0.5, 5, False),
    "mean5, skip10% s11": _cfg("mean5", 0.1, 11, False),
}
TARGETS = (("7B", "peteish7_eval_anneal"), ("13B", "peteish13_eval_final"))


def targets(df: pd.DataFrame) -> dict[str, tuple[float, float, pd.Series]]:
    """label -> (N, final D, mean accuracy of the last 5 checkpoints per task)."""
    out = {}
    for label, run in TARGETS:
        t = df[df["run"] == run]
        actual = t.sort_values("step").groupby("task").tail(5).groupby("task")["acc"].mean()
        out[label] = (float(t["N"].iloc[0]), float(t["D"].max()), actual)
    return out


def library_defaults(keys: list[str]) -> dict:
    sig = inspect.signature(fit_two_step).parameters
    return {k: sig[k].default for k in keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()
    path = args.data / "olmo_ladder_task_bpb_acc.csv"
    if not path.is_file():
        print(f"skip: {path} is absent")
        return
    df = load_olmo_ladder(path)
    ladder = df[df["role"] == "ladder"]
    fmt = {"display.width": 220, "display.float_format": "{:.2f}".format,
           "display.max_columns": 12}

    t0 = time.perf_counter()
    sel = select_two_step_method(ladder, VARIANTS)
    t_sel = time.perf_counter() - t0
    with pd.option_context(*sum(fmt.items(), ())):
        print("1. selection, ladder only: fold MAE in points; score = mean weighted by decades "
              "of compute extrapolated")
        print("   weights: " + ", ".join(f"{k} {v:.2f}" for k, v in sel.distances.items()))
        print(sel.table)
    chosen = sel.chosen
    ranked = sel.table["score"].sort_values()
    print(f"chosen: {chosen!r} (score {ranked.iloc[0]:.2f}; runner-up {ranked.index[1]!r} "
          f"{ranked.iloc[1]:.2f})")
    cfg = VARIANTS[chosen]
    agree = library_defaults(list(cfg)) == cfg
    print(f"library defaults {'agree' if agree else 'DO NOT agree'} with the chosen variant: "
          f"{library_defaults(list(cfg))}")
    print(f"(selection: {t_sel:.0f} s)")

    t0 = time.perf_counter()
    tg = targets(df)
    rows, per_task = [], {}
    for label, kw in VARIANTS.items():
        row = {"variant": label, "score": sel.table.loc[label, "score"]}
        models = {str(t): fit_two_step(g, task=str(t), n_bootstrap=0, **kw)
                  for t, g in ladder.groupby("task", sort=True)}
        fits = {}
        for name, (n, d, actual) in tg.items():
            pred = pd.Series({t: float(m.predict(N=n, D=d)[()]) for t, m in models.items()})
            err = (pred - actual).abs() * 100
            row[name] = err.mean()
            fits[name] = pd.DataFrame({"actual": actual, "predicted": pred, "error_points": err})
        per_task[label] = fits
        rows.append(row)
    out = pd.DataFrame(rows).set_index("variant")
    with pd.option_context(*sum(fmt.items(), ())):
        print("\n2. outcomes (chose nothing): MAE in points, 8 tasks, fit on the whole ladder")
        print(out)
        for name in tg:
            print(f"\n{name} per task ({chosen}):")
            print(per_task[chosen][name])
    print(f"(outcomes: {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
