"""Two-step task prediction (scale -> task loss -> accuracy) on the OLMo model ladder.

Protocol: a declared set of method variants (below, fixed before scoring) is scored on the
ladder alone: fit on the 190M, 370M and 760M runs, predict the 4 runs of the 1B size from
their (N, D), error = |predicted - mean accuracy of each run's last 5 checkpoints| in points,
averaged over 4 runs x 8 tasks. The variant with the lowest ladder-only error is the
default. The 7B-4T and 13B-5T targets are then predicted from the full ladder and reported
per task as outcomes; they never choose anything. Goal: MAE <= 3.0 points on 13B (the
ladder's own published chained error is 4.2). Prints figures; asserts nothing.

    .venv/bin/python bench/bench_two_step.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from scaletrack.analysis.two_step import holdout_validation, load_olmo_ladder, predict_two_step

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# fit_two_step options; {} is the library default
VARIANTS: dict[str, dict] = {
    "library default": {},
    "as the docstring said (step1 last 10%, step2 2nd half, smooth 11, no anchor)": {
        "step1_min_fraction": 0.9, "step2_min_fraction": 0.5, "step2_smooth": 11,
        "step2_anchor": False},
    "docstring + (0,1) anchor": {
        "step1_min_fraction": 0.9, "step2_min_fraction": 0.5, "step2_smooth": 11,
        "step2_anchor": True},
    "step1 last 10%, step2 default": {"step1_min_fraction": 0.9},
    "step2 2nd half, smooth 11, anchor": {"step2_min_fraction": 0.5, "step2_smooth": 11},
    "old default (last point, all ckpts, smooth 5, no anchor)": {
        "final_window": 1, "step1_min_fraction": None, "step2_min_fraction": 0.0,
        "step2_smooth": 5, "step2_anchor": False},
}


def targets(df: pd.DataFrame) -> dict[str, tuple[float, float, pd.Series]]:
    out = {}
    for label, run in (("7B", "peteish7_eval_anneal"), ("13B", "peteish13_eval_final")):
        t = df[df["run"] == run]
        actual = t.sort_values("step").groupby("task").tail(5).groupby("task")["acc"].mean()
        out[label] = (float(t["N"].iloc[0]), float(t["D"].max()), actual)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()
    path = args.data / "olmo_ladder_task_bpb_acc.csv"
    if not path.is_file():
        print(f"skip: {path} is absent")
        return
    df = load_olmo_ladder(path)
    ladder = df[df["role"] == "ladder"]
    tg = targets(df)
    one_b = [float(ladder["N"].max())]
    rows, per_task = [], {}
    t0 = time.perf_counter()
    for label, kw in VARIANTS.items():
        val = holdout_validation(ladder, held_out_N=one_b, method=kw)
        row = {"variant": label, "ladder 1B hold-out": val["abs_error_points"].mean()}
        for name, (n, d, actual) in tg.items():
            pred = predict_two_step(ladder, N=n, D=d, n_bootstrap=0, **kw).set_index("task")
            err = (pred["predicted_acc"] - actual).abs() * 100
            row[name] = err.mean()
            per_task[(label, name)] = pd.DataFrame(
                {"actual": actual, "predicted": pred["predicted_acc"], "error_points": err})
        rows.append(row)
    table = pd.DataFrame(rows).set_index("variant")
    chosen = table["ladder 1B hold-out"].idxmin()
    with pd.option_context("display.width", 220, "display.float_format", "{:.2f}".format,
                           "display.max_colwidth", 80, "display.max_columns", 10):
        print("MAE in accuracy points; the choice uses the ladder 1B hold-out column only")
        print(table)
        print(f"\nchosen on the ladder hold-out: {chosen!r}")
        for name in tg:
            print(f"\n{name} per task ({chosen}):")
            print(per_task[(chosen, name)])
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
