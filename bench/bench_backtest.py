"""Back-test coverage on Epoch AI's 240 Chinchilla points: fit below the compute quantile,
predict the held-out top 10/20/30/50 %, report MAPE and the fraction of held-out runs inside
the 95% prediction and confidence bands and their mean relative widths. Target: prediction
coverage 85-98 %. The prediction band uses the default residual model (chosen on other data by
bench/bench_interval_selection.py) unless --residual-model names another. Prints figures;
asserts nothing.

    .venv/bin/python bench/bench_backtest.py [--bootstrap 300] [--form chinchilla]
        [--residual-model pooled|distance|distance_signed]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from scaletrack.analysis import backtest, load_epoch_chinchilla
from scaletrack.analysis.calibration import DEFAULT_RESIDUAL_MODEL, RESIDUAL_MODELS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", type=int, default=300)
    ap.add_argument("--form", default="chinchilla")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--residual-model", choices=RESIDUAL_MODELS, default=DEFAULT_RESIDUAL_MODEL)
    args = ap.parse_args()
    path = args.data / "epoch_chinchilla_svg_extracted_data.csv"
    if not path.is_file():
        print(f"skip: {path} is absent")
        return
    df = load_epoch_chinchilla(path)
    print(f"Epoch AI points: {len(df)}; form {args.form}; {args.bootstrap} bootstrap refits; "
          f"residual model {args.residual_model}")
    print(f"{'holdout':>8} {'n_train':>8} {'n_test':>7} {'MAPE %':>7} {'cov_pred':>9} "
          f"{'cov_conf':>9} {'w_pred':>7} {'w_conf':>7} {'uncal_pred':>10} {'status':>10} "
          f"{'s':>6}")
    for q in (0.1, 0.2, 0.3, 0.5):
        t0 = time.perf_counter()
        res = backtest(df, args.form, holdout_top=q, n_bootstrap=args.bootstrap,
                       residual_model=args.residual_model)
        raw = backtest(df, args.form, holdout_top=q, n_bootstrap=args.bootstrap,
                       calibrate=False)
        s = res.summary
        print(f"{q:>8.1f} {s['n_train']:>8} {s['n_test']:>7} {100 * s['mape']:>7.2f} "
              f"{s['coverage_prediction']:>9.2f} {s['coverage_confidence']:>9.2f} "
              f"{s['width_prediction']:>7.3f} {s['width_confidence']:>7.3f} "
              f"{raw.summary['coverage_prediction']:>10.2f} {s['status']:>10} "
              f"{time.perf_counter() - t0:>6.1f}")


if __name__ == "__main__":
    main()
