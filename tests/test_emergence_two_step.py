"""Two-step prediction (scale -> task loss -> accuracy): synthetic recovery and the OLMo ladder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaletrack.analysis.two_step import (
    LADDER_FOLDS,
    LadderFold,
    fit_two_step,
    holdout_validation,
    ladder_score,
    load_olmo_ladder,
    predict_two_step,
    select_two_step_method,
    split_ladder,
)
from scaletrack.analysis.two_step_fit import fit_loss_to_accuracy, fit_task_loss
from scaletrack.errors import DataError

E, A, ALPHA, B, BETA = 0.6, 400.0, 0.35, 900.0, 0.3


def _loss(N, D):
    return E + A / np.asarray(N, float) ** ALPHA + B / np.asarray(D, float) ** BETA


def _acc(L):
    return 0.25 + 0.7 / (1.0 + np.exp(6.0 * (np.asarray(L, float) - 1.1)))


def _ladder(seed: int = 0, lag: float = 0.0) -> pd.DataFrame:
    """4 sizes x 4 token ratios (20, 40, 100, 200 tokens/param), 10 checkpoints a run. `lag`:
    accuracy trails the loss -> accuracy curve by lag x (1 - fraction of the run's tokens)."""
    rng = np.random.default_rng(seed)
    rows = []
    for N in (2e8, 4e8, 8e8, 1.3e9):
        for mult in (1, 2, 5, 10):
            Dmax = 20 * N * mult
            for i, frac in enumerate(np.linspace(0.1, 1.0, 10)):
                D = Dmax * frac
                L = _loss(N, D) + rng.normal(0, 0.005)
                acc = _acc(L) - lag * (1 - frac) + rng.normal(0, 0.005)
                rows.append({"task": "t", "run": f"{N:g}-{mult}", "step": i, "N": N, "D": D,
                             "C": 6 * N * D, "loss": L, "acc": acc})
    return pd.DataFrame(rows)


def test_step1_recovers_the_loss_surface() -> None:
    df = _ladder()
    fin = df.sort_values("step").groupby("run").tail(1)
    fit = fit_task_loss(fin["loss"], N=fin["N"], D=fin["D"], n_bootstrap=20)
    target = (1.3e10, 5e12)
    assert abs(float(fit.predict(*target)) - float(_loss(*target))) < 0.03
    with pytest.raises(DataError, match="needs N and D, or C"):
        fit_task_loss(fin["loss"])


def test_step2_recovers_the_sigmoid() -> None:
    L = np.linspace(0.8, 1.6, 60)
    fit = fit_loss_to_accuracy(L, _acc(L), chance=0.25, n_bootstrap=0)
    assert abs(fit.params["k"] - 6.0) < 0.3
    assert abs(fit.params["L0"] - 1.1) < 0.02
    assert abs(float(fit.predict(0.7)) - float(_acc(0.7))) < 0.01


def test_chained_prediction_of_a_bigger_target() -> None:
    df = _ladder()
    # 10 sparse checkpoints a run: the final loss is the last one, not a mean of the last 5;
    # the synthetic sigmoid tops out at 0.95, so the (0 loss, 1.0 accuracy) anchor is off.
    fit = fit_two_step(df, task="t", final_window=1, step2_anchor=False, n_bootstrap=30)
    N, D = 1.3e10, 5e12
    truth = float(_acc(_loss(N, D)))
    pred = float(fit.predict(N=N, D=D))
    band = fit.predict_interval(N=N, D=D, kind="confidence")
    lo, hi = band["lo"].iloc[0], band["hi"].iloc[0]
    assert abs(pred - truth) < 0.03
    assert float(lo) <= pred <= float(hi)
    table = predict_two_step(df, C=6 * N * D, n_bootstrap=0)  # compute form
    assert abs(table.loc[0, "predicted_acc"] - truth) < 0.05


def test_step2_fixed_ceiling_and_weights() -> None:
    L = np.linspace(0.8, 1.6, 60)
    y = 0.25 + 0.75 / (1.0 + np.exp(6.0 * (L - 1.1)))  # ceiling exactly 1
    fit = fit_loss_to_accuracy(L, y, chance=0.25, fixed_ceiling=True, n_bootstrap=0)
    assert fit.params["a"] + fit.params["b"] == pytest.approx(1.0)
    assert abs(fit.params["k"] - 6.0) < 0.1
    # ten corrupted points: equal weights are pulled off, near-zero weights ignore them
    bad = y.copy()
    bad[:10] -= 0.2
    w = np.ones_like(L)
    w[:10] = 1e-6
    plain = fit_loss_to_accuracy(L, bad, chance=0.25, n_bootstrap=0)
    weighted = fit_loss_to_accuracy(L, bad, chance=0.25, weights=w, n_bootstrap=0)
    assert abs(weighted.params["L0"] - 1.1) < 0.01 < abs(plain.params["L0"] - 1.1)
    with pytest.raises(DataError, match="same length"):
        fit_loss_to_accuracy(L, y, weights=w[:5])


def test_step_options_change_the_points_used() -> None:
    df = _ladder()
    tail = fit_two_step(df, task="t", step1_min_fraction=0.75, final_window=1, n_bootstrap=0)
    final = fit_two_step(df, task="t", step1_min_fraction=None, n_bootstrap=0)
    assert final.step1.n_points == df["run"].nunique() == 16
    assert tail.step1.n_points == 16 * 3  # fractions 0.8, 0.9, 1.0 of each run
    late = fit_two_step(df, task="t", step2_min_fraction=0.45, step2_anchor=True, n_bootstrap=0)
    assert late.step2.n_points == 16 * 6 + 1  # fractions 0.5 .. 1.0, plus the (0, 1) anchor
    with pytest.raises(DataError, match="weighting"):
        fit_two_step(df, task="t", step2_weighting="bogus", n_bootstrap=0)


def test_holdout_validation_on_a_synthetic_ladder() -> None:
    df = _ladder()
    # 10 checkpoints a run: no averaging; the synthetic ceiling is 0.95, so no (0, 1) anchor.
    coarse = {"final_window": 1, "step1_min_fraction": 0.9, "step1_huber": 1e-2,
              "step2_min_fraction": 0.5, "step2_smooth": 1, "step2_anchor": False}
    val = holdout_validation(df, actual_window=1, method=coarse)
    assert set(val["N"]) == {1.3e9} and len(val) == 4  # 4 held-out runs x 1 task
    assert val["abs_error_points"].max() < 2.0
    np.testing.assert_allclose(
        val["abs_error_points"], 100 * (val["predicted_acc"] - val["actual_acc"]).abs()
    )
    with pytest.raises(DataError, match="at least 2 other sizes"):
        holdout_validation(df, held_out_N=[2e8, 4e8, 8e8], method=coarse)


def test_ladder_folds_split_by_size_and_token_ratio() -> None:
    df = _ladder()
    dist = {}
    for fold in LADDER_FOLDS:
        train, test, dist[fold.name] = split_ladder(df, fold)
        assert not set(train["run"]) & set(test["run"])
    _, corner, _ = split_ladder(df, LadderFold("corner", hold_sizes=1, hold_ratios=1))
    assert set(corner["run"]) == {"1.3e+09-10"}
    train, test, _ = split_ladder(df, LadderFold("ratio", hold_ratios=1))
    assert set(test["run"].str.split("-").str[1]) == {"10"} and train["run"].nunique() == 12
    # compute extrapolated (decades): the two-size fold reaches furthest, the ratio fold least
    assert dist["two largest sizes"] > dist["corner"] > dist["largest size"] > \
        dist["largest ratio"] > 0
    with pytest.raises(DataError, match="holds nothing out"):
        split_ladder(df, LadderFold("none"))
    with pytest.raises(DataError, match="fewer than 2 sizes"):
        split_ladder(df, LadderFold("too many", hold_sizes=3))


def test_ladder_score_weights_folds_by_distance() -> None:
    bt = pd.DataFrame({"distance_decades": [1.0, 3.0], "mae_points": [4.0, 0.0]})
    assert ladder_score(bt) == pytest.approx(1.0)


def test_selection_picks_the_declared_winner_on_a_synthetic_ladder() -> None:
    """Early checkpoints' accuracy lags the loss -> accuracy curve (by up to 9 points), final
    ones do not: step 2 on every checkpoint is biased, step 2 on the last 20 % is not. The
    winner is declared second, so a tie would not pick it."""
    df = _ladder(lag=0.1)
    base = {"final_window": 1, "step1_min_fraction": 0.9, "step1_huber": 1e-2,
            "step2_smooth": 1, "step2_anchor": False}
    variants = {"every checkpoint": {**base, "step2_min_fraction": 0.0},
                "last 20 %": {**base, "step2_min_fraction": 0.8}}
    folds = [f for f in LADDER_FOLDS if f.name in ("largest size", "corner")]
    sel = select_two_step_method(df, variants, folds=folds)
    assert sel.chosen == "last 20 %"
    assert list(sel.table.columns) == ["largest size", "corner", "score"]
    assert sel.table.loc["every checkpoint", "score"] > sel.table.loc["last 20 %", "score"] + 2
    with pytest.raises(DataError, match="at least one variant"):
        select_two_step_method(df, {})


@pytest.mark.slow
def test_olmo_ladder_predicts_13b_accuracy(shared_data: Path) -> None:
    """Fit on the ladder runs, predict OLMo 13B-5T with the defaults, chosen by the ladder-only
    back-test in bench/bench_two_step.py (step 1 on each run's final point, loss the mean of
    its last 5 checkpoints; step 2 on the second half, 11-checkpoint smoothing, (0, 1)
    anchor). On 13B they score 4.03 points of mean absolute error (an outcome, not a choice;
    the published chained prediction 4.17, the goal 3.0); on the 1B hold-out 1.03."""
    df = load_olmo_ladder(shared_data / "olmo_ladder_task_bpb_acc.csv")
    ladder = df[df["role"] == "ladder"]
    target = df[df["run"] == "peteish13_eval_final"]
    N, D = float(target["N"].iloc[0]), float(target["D"].max())
    pred = predict_two_step(ladder, N=N, D=D, n_bootstrap=0).set_index("task")
    actual = (target.sort_values("step").groupby("task").tail(5).groupby("task")["acc"].mean())
    assert set(pred.index) == set(actual.index) and len(pred) == 8
    err = (pred["predicted_acc"] - actual).abs() * 100
    assert err.mean() < 4.5  # measured 4.03
    assert err.loc["hellaswag_val_5shot"] < 3.0
    pub = pd.read_csv(shared_data / "olmo_ladder_13b_chained_predictions.csv")
    pub_nd = pub[pub["method_and_source"].str.contains("chained_main")].set_index("task")
    np.testing.assert_allclose(pub_nd["actual_acc"].sort_index(), actual.sort_index(), atol=1e-6)
    val = holdout_validation(ladder)
    assert len(val) == 4 * 8 and set(val["run"]) == {"1B-1xC", "1B-2xC", "1B-5xC", "1B-10xC"}
    assert val["abs_error_points"].mean() < 1.2  # measured 1.03 points


def test_two_step_prediction_band_contains_confidence_band() -> None:
    fit = fit_two_step(_ladder(), task="t", final_window=1, n_bootstrap=40)
    conf = fit.predict_interval(N=1.3e10, D=5e12, kind="confidence")
    pred = fit.predict_interval(N=1.3e10, D=5e12, kind="prediction")
    assert list(pred.columns) == ["pred", "lo", "hi"]
    assert pred.loc[0, "lo"] <= conf.loc[0, "lo"] <= conf.loc[0, "hi"] <= pred.loc[0, "hi"]
    assert pred.loc[0, "hi"] - pred.loc[0, "lo"] > conf.loc[0, "hi"] - conf.loc[0, "lo"]


def test_two_step_results_are_one_result_family() -> None:
    from scaletrack.analysis import BootstrapFit, fit_floored_sigmoid
    from scaletrack.analysis.two_step_fit import AccuracyFit, TaskLossFit, TwoStepFit

    fit = fit_two_step(_ladder(), task="t", final_window=1, n_bootstrap=12)
    x = np.geomspace(1e18, 1e21, 6)
    sig = fit_floored_sigmoid(x, 0.25 + 0.7 / (1 + (x / 1e20) ** -1.5), floor=0.25,
                              n_bootstrap=12)
    for result in (fit, fit.step1, fit.step2, sig):
        assert isinstance(result, BootstrapFit)
        assert result.boot_params.shape == (12, len(result.params))
        assert set(result.ci) == set(result.params)
        back = type(result).from_json(result.to_json())
        assert back == result
        assert np.array_equal(back.boot_params, result.boot_params)
    assert fit.param_names == tuple(f"s1_{k}" for k in fit.step1.params) + tuple(
        f"s2_{k}" for k in fit.step2.params)
    # the chain's draws pair step 1's i-th refit with step 2's i-th
    conf = fit.predict_interval(N=[1e9, 1e10], D=[2e10, 2e11], kind="confidence")
    chained = np.array([
        AccuracyFit(params=dict(zip(fit.step2.params, row[5:], strict=True))).predict(
            TaskLossFit(form=fit.step1.form,
                        params=dict(zip(fit.step1.params, row[:5], strict=True))
                        ).predict(N=[1e9, 1e10], D=[2e10, 2e11]))
        for row in fit.boot_params])
    assert np.allclose(conf["lo"], np.percentile(chained, 2.5, axis=0))
    assert isinstance(TwoStepFit.from_dict(fit.to_dict()).step2, AccuracyFit)
    band = sig.predict_interval(x, kind="confidence")
    assert list(band.columns) == ["pred", "lo", "hi"] and band["lo"].le(band["hi"]).all()
