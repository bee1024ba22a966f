"""past / near / far classification: synthetic cases and the published emergence tables."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaletrack.analysis.classify import (
    TREND_POINTS,
    classify_groups,
    classify_task,
    classify_tasks,
    trend_label,
)
from scaletrack.analysis.emergence import sigmoid_value
from scaletrack.errors import DataError


def _task(hi: float, *, mid: float = 21.0, k: float = 2.0, seed: int = 0, n: int = 12):
    rng = np.random.default_rng(seed)
    x = np.logspace(18.0, hi, n)
    y = sigmoid_value(x, 0.25, 0.9, k, mid) + rng.normal(0, 0.01, size=n)
    return x, y


def test_far_from_the_transition_is_far() -> None:
    x, y = _task(19.0)  # two decades below the midpoint: still at chance
    r = classify_task(x, y, chance=0.25, threshold=0.6, n_bootstrap=50)
    assert r.label == "far"
    assert r.crossing > 10 * r.x_max or math.isnan(r.crossing)


def test_near_the_transition_is_near() -> None:
    x, y = _task(20.6, seed=2)  # rise under way, threshold crossed ~3x beyond
    r = classify_task(x, y, chance=0.25, threshold=0.6, n_bootstrap=100)
    true_crossing = 10 ** (21.0 + math.log((0.6 - 0.25) / (0.9 - 0.6)) / 2.0)
    assert r.label == "near", r.reason
    assert r.x_max < r.crossing <= 10 * r.x_max
    lo, hi = r.crossing_ci95
    assert lo <= true_crossing <= hi


def test_saturated_task_is_past() -> None:
    x, y = _task(23.5)
    r = classify_task(x, y, chance=0.25, n_bootstrap=50)
    assert r.label == "past"
    assert r.x_max > r.fit.upper_knee
    r2 = classify_task(x, y, chance=0.25, threshold=0.8, n_bootstrap=0)
    assert r2.label == "past" and "threshold" in r2.reason


def test_sudden_vs_smooth_synthetic() -> None:
    x = np.logspace(18, 24, 13)
    sudden = sigmoid_value(x, 0.0, 0.95, 4.0, 22.0)
    smooth = sigmoid_value(x, 0.0, 0.95, 0.6, 21.0)
    a = classify_task(x, sudden, chance=0.0, n_bootstrap=0)
    b = classify_task(x, smooth, chance=0.0, n_bootstrap=0)
    assert a.emergent and not b.emergent
    assert a.suddenness > 3 * b.suddenness


def test_classify_tasks_long_frame_and_errors() -> None:
    rows = []
    for name, hi in (("far_task", 19.0), ("past_task", 23.5)):
        x, y = _task(hi)
        rows += [
            {"task": name, "metric": "acc", "C": a, "value": b}
            for a, b in zip(x, y, strict=True)
        ]
    df = pd.DataFrame(rows)
    out = classify_tasks(df, chance=0.25, n_bootstrap=20)
    assert list(out["task"]) == ["far_task", "past_task"]
    assert list(out["label"]) == ["far", "past"]
    for col in ("crossing", "crossing_lo", "crossing_hi", "suddenness", "emergent"):
        assert col in out.columns
    with pytest.raises(DataError, match="'flops'"):
        classify_tasks(df, x_col="flops")


def test_loss_metric_is_lower_is_better() -> None:
    x = np.logspace(19, 23, 12)
    y = sigmoid_value(x, 3.0, 1.0, 1.2, 21.0)
    df = pd.DataFrame({"task": "t", "metric": "bpb", "C": x, "value": y})
    with pytest.raises(DataError, match="looks like a loss"):
        classify_tasks(df, threshold=1.5, n_bootstrap=0)
    out = classify_tasks(df, threshold=1.5, n_bootstrap=0, lower_is_better={"bpb": True})
    assert out.loc[0, "label"] == "past"  # bpb 1.5 already beaten at the largest scale
    out = classify_tasks(df[df.C < 3e20], threshold=1.2, n_bootstrap=0,
                         lower_is_better={"bpb": True})
    assert out.loc[0, "label"] in ("near", "far")


def test_val_loss_is_not_a_capability() -> None:
    df = pd.DataFrame({"task": "lm", "metric": "val_loss", "C": np.logspace(18, 21, 6),
                       "value": np.linspace(3.0, 2.0, 6)})
    with pytest.raises(DataError, match="val_loss"):
        classify_tasks(df, n_bootstrap=0)


def test_threshold_reached_beats_no_rise() -> None:
    # eight points, best 0.6, bar 0.5: already past, whatever the rise off the floor says
    x = np.logspace(18, 22, 8)
    y = np.array([0.55, 0.56, 0.55, 0.57, 0.58, 0.57, 0.59, 0.60])
    res = classify_task(x, y, chance=0.5, threshold=0.58, n_bootstrap=0)
    assert res.label == "past"
    res = classify_task(x, np.full(8, 0.6) + 0.001 * np.arange(8), threshold=0.5,
                        n_bootstrap=0)
    assert res.label == "past"


def test_flat_at_chance_is_never_past() -> None:
    rng = np.random.default_rng(3)
    x = np.logspace(18, 23, 10)
    y = 0.25 + rng.normal(0, 0.003, size=10)
    res = classify_task(x, y, chance=0.25, n_bootstrap=0)
    assert res.label == "far"


def test_bad_chance_and_threshold_are_one_line_errors() -> None:
    x, y = np.logspace(18, 21, 5), np.linspace(0.25, 0.5, 5)
    with pytest.raises(DataError, match="chance must be a finite number"):
        classify_task(x, y, chance=float("nan"), n_bootstrap=0)
    with pytest.raises(DataError, match="below the ceiling"):
        classify_task(x, y, chance=1.5, n_bootstrap=0)
    with pytest.raises(DataError, match="not beyond chance"):
        classify_task(x, y, chance=0.25, threshold=0.2, n_bootstrap=0)


def test_rising_trend_near_chance_is_near() -> None:
    # 1%, 3%, 9% accuracy over one decade, bar 25%: the logit trend crosses within 10x
    x = np.array([1e20, 3e20, 1e21])
    y = np.array([0.01, 0.03, 0.09])
    res = classify_task(x, y, chance=0.0, threshold=0.25, n_bootstrap=0)
    assert res.label == "near"
    assert x.max() < res.crossing < 10 * x.max()
    flat = classify_task(x, np.array([0.01, 0.009, 0.01]), chance=0.0, threshold=0.25,
                         n_bootstrap=0)
    assert flat.label == "far"



def test_trend_reads_the_last_trend_points_points() -> None:
    # a long flat stretch, then a steady rise over the last TREND_POINTS points
    flat = 3
    x = np.logspace(19, 22, flat + TREND_POINTS)
    y = np.concatenate([np.full(flat, 0.25), 0.25 + np.geomspace(0.005, 0.1, TREND_POINTS)])
    label, _, cross = trend_label(x, y, threshold=0.4375, chance=0.25)
    assert label == "near" and x.max() < cross < 10 * x.max()
    # all points: the flat start drags the slope down and the crossing out past 10x
    label_all, _, cross_all = trend_label(x, y, threshold=0.4375, chance=0.25,
                                          trend_points=x.size)
    assert label_all == "far" and cross_all > cross
    res = classify_task(x, y, chance=0.25, threshold=0.4375, n_bootstrap=0)
    assert (res.label, res.crossing) == (label, cross)


def test_progress_floor_sets_where_the_logit_is_clipped() -> None:
    # progress 0, 0.2 %, 2 %: a 1 % floor flattens the first step, a 0.1 % floor keeps it
    x = np.array([1e20, 1e21, 1e22])
    y = np.array([0.0, 0.002, 0.02])
    _, _, coarse = trend_label(x, y, threshold=0.25, chance=0.0, progress_floor=0.01)
    _, _, fine = trend_label(x, y, threshold=0.25, chance=0.0, progress_floor=0.001)
    assert math.isfinite(coarse) and math.isfinite(fine) and coarse != fine


def test_classify_groups_lists_the_loss_like_groups_it_left_out() -> None:
    x = np.logspace(19, 22, 6)
    df = pd.concat([
        pd.DataFrame({"task": "arith", "metric": "acc", "C": x,
                      "value": np.linspace(0.0, 0.6, 6)}),
        pd.DataFrame({"task": "arith", "metric": "bpb", "C": x,
                      "value": np.linspace(2.0, 1.0, 6)}),
        pd.DataFrame({"task": "lm", "metric": "val_loss", "C": x,
                      "value": np.linspace(3.0, 2.0, 6)}),
    ])
    res = classify_groups(df, threshold=0.5, n_bootstrap=0)
    assert list(res) == [("arith", "acc")]
    assert res.left_out == [("arith", "bpb"), ("lm", "val_loss")]
    kept = classify_groups(df, threshold=0.5, n_bootstrap=0, lower_is_better={"bpb": True})
    assert set(kept) == {("arith", "acc"), ("arith", "bpb")}
    assert kept.left_out == [("lm", "val_loss")]


# --- published data ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def obsscaling(shared_data: Path) -> pd.DataFrame:
    df = pd.read_csv(shared_data / "obsscaling_emergent_tasks.csv")
    out = classify_tasks(df.dropna(subset=["train_flops"]), task_col="source_column",
                         metric_col=None, x_col="train_flops", chance_col="chance", n_bootstrap=40)
    return out.set_index("task")


@pytest.fixture(scope="module")
def obs_standard(shared_data: Path) -> pd.DataFrame:
    df = pd.read_csv(shared_data / "obsscaling_standard_benchmarks.csv")
    out = classify_tasks(df.dropna(subset=["train_flops"]), task_col="benchmark",
                         metric_col=None, x_col="train_flops", chance_col="chance", n_bootstrap=40)
    return out.set_index("task")


PYTHIA_CHANCE = {"piqa": 0.5, "winogrande": 0.5, "wsc": 0.5, "arc_easy": 0.25,
                 "arc_challenge": 0.25, "sciq": 0.25, "logiqa": 0.25, "lambada_openai": 0.0}


@pytest.fixture(scope="module")
def pythia(shared_data: Path) -> pd.DataFrame:
    df = pd.read_csv(shared_data / "pythia_v1_zero_shot.csv")
    df = df[(df["step"] == 143000) & (df["deduped"] == 0) & (df["metric"] == "acc")]
    df = df.assign(C=6.0 * df["model_size_params"].astype(float) * df["tokens_seen"].astype(float))
    return classify_tasks(df, x_col="C", chance=PYTHIA_CHANCE, n_bootstrap=40).set_index("task")


def test_obsscaling_emergent_tasks_are_emergent(obsscaling: pd.DataFrame) -> None:
    for task in ("arithmetic_3da_2_acc", "arithmetic_3ds_2_acc", "arithmetic_2da_2_acc",
                 "word_unscrambling_2_exact_match", "parsinlu_qa_2_acc",
                 "ipa_transliterate_2_exact_match"):
        row = obsscaling.loc[task]
        assert bool(row["emergent"]), task
        assert row["decades_at_chance"] >= 1.0, task
        assert row["label"] == "past", task  # today's largest models are past all of them


def test_three_digit_arithmetic_emerges_where_wei_says(
    obsscaling: pd.DataFrame, shared_data: Path
) -> None:
    wei = pd.read_csv(shared_data / "wei2022_table1_emergence_scales.csv")
    ref = float(wei.loc[wei["ability"].str.startswith("Addition/subtraction (3"),
                        "emergent_train_flops"].iloc[0])
    for task in ("arithmetic_3da_2_acc", "arithmetic_3ds_2_acc"):
        c = obsscaling.loc[task, "crossing"]
        assert abs(math.log10(c) - math.log10(ref)) < 1.0, (task, c, ref)


def test_smooth_benchmarks_are_not_emergent(obs_standard: pd.DataFrame,
                                            pythia: pd.DataFrame) -> None:
    assert not bool(obs_standard.loc["HellaSwag", "emergent"])
    assert obs_standard.loc["HellaSwag", "decades_at_chance"] == 0.0
    for task in ("lambada_openai", "piqa", "sciq", "arc_easy"):
        assert not bool(pythia.loc[task, "emergent"]), task
    # the emergent arithmetic curves are steeper per decade than the smooth ones
    assert obs_standard.loc["HellaSwag", "suddenness"] < 1.5
    assert pythia.loc["logiqa", "label"] == "far"  # Pythia never leaves chance on LogiQA
    assert pythia.loc["logiqa", "reason"] == "no rise off the floor yet"


def test_known_emergent_benchmarks_flagged(obs_standard: pd.DataFrame) -> None:
    # Wei et al. 2022 Table 1 lists MMLU as emergent; GSM8K stays at zero before rising
    assert bool(obs_standard.loc["MMLU", "emergent"])
    assert bool(obs_standard.loc["GSM8K", "emergent"])


def test_rise_is_read_from_raw_points_not_bin_medians() -> None:
    # three models in the last half-decade bin, only the largest off the floor: its bin's
    # median is at the floor, but the task has risen (exact match 0.44 is not "no rise")
    x = np.array([1e8, 1e9, 1e10, 1.5e10, 2e10, 2.5e10])
    y = np.array([0.0, 0.005, 0.0, 0.01, 0.0, 0.44])
    res = classify_task(x, y, chance=0.0, n_bootstrap=0)
    assert res.profile.rise == pytest.approx(y.max())
    assert res.reason != "no rise off the floor yet"
    assert max(m for _, m in res.profile.bins) < 0.05  # the medians alone would say flat


def test_trend_space_raw_extrapolates_the_metric_itself() -> None:
    # progress rises by the same step each decade: straight in raw progress, not in logit
    x = np.logspace(20, 23, 4)
    step = 0.05
    y = 0.25 + step * np.arange(4)
    bar = 0.4375
    _, _, cross = trend_label(x, y, threshold=bar, chance=0.25, trend_space="raw")
    assert math.log10(cross) == pytest.approx(20 + (bar - 0.25) / step)
    _, _, cross_logit = trend_label(x, y, threshold=bar, chance=0.25)
    assert cross_logit != pytest.approx(cross)
    with pytest.raises(ValueError, match="trend space"):
        trend_label(x, y, threshold=bar, chance=0.25, trend_space="linear")


def test_a_trend_crossing_comes_with_the_trend_s_own_interval() -> None:
    from scipy.special import expit

    x = np.logspace(20, 22.5, 6)
    straight = 0.25 + 0.75 * expit(-3.0 + 0.6 * (np.log10(x) - 20))  # a line in logit progress
    exact = classify_task(x, straight, chance=0.25, threshold=0.4375, n_bootstrap=100)
    assert "rising trend crosses" in exact.reason
    assert exact.crossing_ci95 == pytest.approx((exact.crossing, exact.crossing), rel=1e-6)
    noisy_y = straight + np.random.default_rng(1).normal(0, 0.01, x.size)
    noisy = classify_task(x, noisy_y, chance=0.25, threshold=0.4375, n_bootstrap=200)
    lo, hi = noisy.crossing_ci95
    assert lo <= noisy.crossing <= hi and hi > 1.5 * lo


def test_decision_ratio_widens_the_reach_of_near_and_keeps_the_crossing() -> None:
    # a straight line in raw progress: +0.05 a decade from 0.25, bar 0.4375 -> crossing at
    # 10^(20 + 3.75) = 10^23.75, 0.75 decade (5.6x) past the largest scale 10^23
    x = np.logspace(20, 23, 4)
    y = 0.25 + 0.05 * np.arange(4)
    kw = {"threshold": 0.4375, "chance": 0.25, "trend_space": "raw"}
    label, reason, cross = trend_label(x, y, near_factor=3.0, **kw)
    assert (label, reason.endswith("beyond 3x")) == ("far", True)
    label2, reason2, cross2 = trend_label(x, y, near_factor=3.0, decision_ratio=2.0, **kw)
    assert (label2, reason2.endswith("within 6x")) == ("near", True)
    assert cross2 == cross and math.log10(cross) == pytest.approx(23.75)
