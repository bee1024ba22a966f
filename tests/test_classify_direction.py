"""Which way a metric improves, as the emergence classifier reads it from the metric."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaletrack.analysis.classify import classify_groups
from scaletrack.analysis.emergence import sigmoid_value
from scaletrack.analysis.metric_direction import metric_direction
from scaletrack.errors import DataError


def _bias_curve(metric: str) -> pd.DataFrame:
    """A bias score falling from ~6 towards ~3 nats over the scales tried (as crows_pairs
    likelihood_difference does along Pythia's training)."""
    x = np.logspace(18, 22.3, 14)
    y = sigmoid_value(x, 6.2, 3.0, 1.5, 20.5)  # falls from 6.2 towards 3.0
    return pd.DataFrame({"task": "crows_pairs_english", "metric": metric, "C": x, "value": y})


def test_names_give_the_direction_and_an_override_wins() -> None:
    assert metric_direction("likelihood_difference").kind == "lower"
    assert metric_direction("likelihood_difference,none").ideal == 0.0
    assert metric_direction("pct_stereotype").kind == "two_sided"
    assert metric_direction("val_loss").kind == "loss"
    assert metric_direction("acc_norm").kind == "higher"
    forced = metric_direction("likelihood_difference", {"likelihood_difference": False})
    assert forced.kind == "higher" and forced.overridden


def test_a_falling_bias_score_is_classified_inverted() -> None:
    res = classify_groups(_bias_curve("likelihood_difference"), n_bootstrap=20)
    (r,) = res.values()
    assert r.lower_is_better
    assert r.reason != "no rise off the floor yet"
    assert r.label in ("past", "near")  # it has fallen most of the way already
    assert res.inverted == ["likelihood_difference"]
    assert "lower-is-better: likelihood_difference" in res.direction_note()
    as_higher = classify_groups(_bias_curve("likelihood_difference"), n_bootstrap=0,
                                lower_is_better={"likelihood_difference": False})
    (h,) = as_higher.values()
    assert not h.lower_is_better and h.label == "far"  # read upwards it never rose
    assert math.isnan(h.crossing)  # no crossing claimed for a curve that never rose
    assert as_higher.inverted == []


def test_a_two_sided_score_is_left_out_with_its_reason() -> None:
    df = pd.concat([_bias_curve("likelihood_difference"), _bias_curve("pct_stereotype")
                    .assign(value=lambda d: 0.5 + d["value"] / 40)])
    res = classify_groups(df, n_bootstrap=0)
    assert list(res) == [("crows_pairs_english", "likelihood_difference")]
    assert res.left_out == [("crows_pairs_english", "pct_stereotype")]
    assert "two-sided" in res.direction_note()
    with pytest.raises(DataError, match="two-sided"):
        classify_groups(df[df.metric == "pct_stereotype"], n_bootstrap=0)


def test_pythia_crows_pairs_bias_scores_read_as_falling(shared_data: Path) -> None:
    """Pythia-12b's crows_pairs files (lm-evaluation-harness output): likelihood_difference
    falls along training and is classified inverted, never 'no rise off the floor'."""
    from scaletrack.store.importers.lm_eval import find_result_files, parse_file, read_sizes

    sizes = read_sizes(Path(__file__).resolve().parents[1] / "examples" / "lm_eval"
                       / "pythia_sizes.csv")
    rows = []
    for path in find_result_files([shared_data / "lm_eval_pythia"]):
        if "pythia-12b" not in str(path):
            continue
        ev = parse_file(path)
        size = sizes[ev.model]
        if not ev.step or size.tokens_per_step is None:
            continue
        rows += [(task, metric, shot, 6.0 * size.params * ev.step * size.tokens_per_step, v)
                 for task, metric, v, _err, shot in ev.rows
                 if task in ("crows_pairs_english", "crows_pairs_english_age")]
    df = pd.DataFrame(rows, columns=["task", "metric", "n_shot", "C", "value"])
    assert len(df) > 20
    res = classify_groups(df, shot_col="n_shot", n_bootstrap=20)
    assert res.inverted == ["likelihood_difference"]
    assert {k[1] for k in res.left_out} == {"pct_stereotype"}
    for r in res.values():
        assert r.lower_is_better and r.reason != "no rise off the floor yet"
        assert r.best_value < df[df.task == r.task]["value"].max()  # best is the lowest
