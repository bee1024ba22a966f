"""Two-step prediction (scale -> task loss -> accuracy): synthetic recovery and the OLMo ladder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.two_step import (
    fit_loss_to_accuracy,
    fit_task_loss,
    fit_two_step,
    load_olmo_ladder,
    predict_two_step,
)
from scaletrack.errors import DataError

E, A, ALPHA, B, BETA = 0.6, 400.0, 0.35, 900.0, 0.3


def _loss(N, D):
    return E + A / np.asarray(N, float) ** ALPHA + B / np.asarray(D, float) ** BETA


def _acc(L):
    return 0.25 + 0.7 / (1.0 + np.exp(6.0 * (np.asarray(L, float) - 1.1)))


def _ladder(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for N in (2e8, 4e8, 8e8, 1.3e9):
        for mult in (1, 2, 5, 10):
            Dmax = 20 * N * mult
            for i, frac in enumerate(np.linspace(0.1, 1.0, 10)):
                D = Dmax * frac
                L = _loss(N, D) + rng.normal(0, 0.005)
                rows.append({"task": "t", "run": f"{N:g}-{mult}", "step": i, "N": N, "D": D,
                             "C": 6 * N * D, "loss": L, "acc": _acc(L) + rng.normal(0, 0.005)})
    return pd.DataFrame(rows)


def test_step1_recovers_the_loss_surface() -> None:
    df = _ladder()
    fin = df.sort_values("step").groupby("run").tail(1)
    fit = fit_task_loss(fin["loss"], N=fin["N"], D=fin["D"], n_boot=20)
    target = (1.3e10, 5e12)
    assert abs(float(fit.predict(*target)) - float(_loss(*target))) < 0.03
    with pytest.raises(DataError, match="needs N and D, or C"):
        fit_task_loss(fin["loss"])


def test_step2_recovers_the_sigmoid() -> None:
    L = np.linspace(0.8, 1.6, 60)
    fit = fit_loss_to_accuracy(L, _acc(L), chance=0.25, n_boot=0)
    assert abs(fit.params["k"] - 6.0) < 0.3
    assert abs(fit.params["L0"] - 1.1) < 0.02
    assert abs(float(fit.predict(0.7)) - float(_acc(0.7))) < 0.01


def test_chained_prediction_of_a_bigger_target() -> None:
    df = _ladder()
    fit = fit_two_step(df, task="t", n_boot=30)
    N, D = 1.3e10, 5e12
    truth = float(_acc(_loss(N, D)))
    pred = float(fit.predict(N=N, D=D))
    lo, hi = fit.predict_ci95(N=N, D=D)
    assert abs(pred - truth) < 0.03
    assert float(lo) <= pred <= float(hi)
    table = predict_two_step(df, C=6 * N * D, n_boot=0)  # compute form
    assert abs(table.loc[0, "predicted_acc"] - truth) < 0.05


@pytest.mark.slow
def test_olmo_ladder_predicts_13b_accuracy(shared_data: Path) -> None:
    """Fit on the ladder runs, predict OLMo 13B-5T; published chained MAE is 4.17 points."""
    df = load_olmo_ladder(shared_data / "olmo_ladder_task_bpb_acc.csv")
    ladder = df[df["role"] == "ladder"]
    target = df[df["run"] == "peteish13_eval_final"]
    N, D = float(target["N"].iloc[0]), float(target["D"].max())
    pred = predict_two_step(ladder, N=N, D=D, n_boot=0).set_index("task")
    actual = (target.sort_values("step").groupby("task").tail(5).groupby("task")["acc"].mean())
    assert set(pred.index) == set(actual.index) and len(pred) == 8
    err = (pred["predicted_acc"] - actual).abs() * 100
    # the reproduction lands in the published method's range (4.2 points), not far off it
    assert err.mean() < 6.5
    assert err.loc["hellaswag_val_5shot"] < 3.0
    pub = pd.read_csv(shared_data / "olmo_ladder_13b_chained_predictions.csv")
    pub_nd = pub[pub["method_and_source"].str.contains("chained_main")].set_index("task")
    np.testing.assert_allclose(pub_nd["actual_acc"].sort_index(), actual.sort_index(), atol=1e-6)
