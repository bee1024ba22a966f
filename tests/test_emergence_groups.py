"""Emergence at the size of a real import: the batched sigmoid solver against scipy, curves
grouped by (task, metric, shot) everywhere, progress and cancelling, a passed bar's crossing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scaletrack.analysis.classify import (
    Cancelled,
    classify_groups,
    classify_task,
    eval_points,
)
from scaletrack.analysis.emergence import fit_floored_sigmoid, sigmoid_value
from scaletrack.cli.main import app
from scaletrack.store import CheckpointRecord, Store

runner = CliRunner()


def _noisy(seed: int, n: int = 40, noise: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.logspace(17, 22, n)
    mid = rng.uniform(18, 23)
    y = sigmoid_value(x, 0.25, 0.85, rng.uniform(0.5, 4), mid) + rng.normal(0, noise, n)
    return x, y


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("floor", [None, 0.25])
def test_batched_solver_fits_as_well_as_scipy(seed: int, floor: float | None) -> None:
    x, y = _noisy(seed)
    batch = fit_floored_sigmoid(x, y, floor=floor, n_bootstrap=0)
    ref = fit_floored_sigmoid(x, y, floor=floor, n_bootstrap=0, solver="scipy")
    assert batch.rmse <= ref.rmse * 1.001 + 1e-12


def test_batched_bootstrap_matches_scipy_intervals() -> None:
    x, y = _noisy(3, noise=0.02)
    batch = fit_floored_sigmoid(x, y, floor=0.25, n_bootstrap=60)
    ref = fit_floored_sigmoid(x, y, floor=0.25, n_bootstrap=60, solver="scipy")
    for name in ("k", "log10_mid", "ceil"):
        lo_b, hi_b = batch.ci95[name]
        lo_r, hi_r = ref.ci95[name]
        width = hi_r - lo_r
        assert abs(lo_b - lo_r) <= 0.05 * width + 1e-6 and abs(hi_b - hi_r) <= 0.05 * width + 1e-6


def test_unknown_solver_is_refused() -> None:
    x, y = _noisy(0)
    with pytest.raises(ValueError, match="solver"):
        fit_floored_sigmoid(x, y, solver="magic")


def _evals(shots: tuple[int, ...] = (0, 5)) -> pd.DataFrame:
    rows = []
    for i, c in enumerate(np.logspace(18, 22, 9)):
        for shot in shots:
            acc = float(sigmoid_value(c, 0.25, 0.9, 2.0, 20.0 + 0.5 * shot / 5))
            rows.append({"task": "arc", "metric": "acc", "n_shot": shot, "C": c, "value": acc})
            rows.append({"task": "arc", "metric": "acc_norm", "n_shot": shot, "C": c,
                         "value": acc * 0.9})
        rows.append({"task": "lambada", "metric": "ppl", "n_shot": 0, "C": c,
                     "value": 1e8 / (i + 1)})
    return pd.DataFrame(rows)


def test_groups_are_task_metric_shot_with_progress() -> None:
    seen: list[tuple[int, int]] = []
    res = classify_groups(_evals(), shot_col="n_shot", n_bootstrap=10,
                          progress=lambda d, t: seen.append((d, t)))
    assert sorted(res) == [("arc", "acc", 0), ("arc", "acc", 5), ("arc", "acc_norm", 0),
                           ("arc", "acc_norm", 5)]
    assert res.left_out == [("lambada", "ppl", 0)]
    assert res[("arc", "acc", 5)].shot == 5 and res[("arc", "acc", 5)].title == "arc · acc · 5-shot"
    assert seen[0] == (0, 5) and seen[-1] == (5, 5) and len(seen) == 6
    # the two shot counts are separate curves with separate crossings
    assert res[("arc", "acc", 0)].crossing < res[("arc", "acc", 5)].crossing


def test_progress_can_cancel() -> None:
    def stop(done: int, total: int) -> None:
        if done >= 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        classify_groups(_evals(), shot_col="n_shot", n_bootstrap=5, progress=stop)


def test_a_passed_bar_is_never_crossed_later() -> None:
    # the fitted sigmoid crosses 0.5 late, but a noisy early point already cleared it
    x = np.logspace(18, 22, 9)
    y = sigmoid_value(x, 0.25, 0.9, 2.0, 21.5)
    y[3] = 0.55
    res = classify_task(x, y, threshold=0.5, chance=0.25, n_bootstrap=20)
    assert res.label == "past"
    assert res.crossing <= x[3]
    assert res.crossing_ci95[1] <= x[3]


def _store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'st.db'}"
    frame = _evals()
    with Store.open(url) as st:
        # as lm-eval imports them: one checkpoint (results file) per model x shot count
        for i, ((c, shot), part) in enumerate(frame.groupby(["C", "n_shot"])):
            n = (c / 120) ** 0.5
            cid = st.add_checkpoint(CheckpointRecord(
                id=None, run_key=None, kind="external", N=int(n), tokens=int(20 * n),
                flops=float(c), step=None, path=str(tmp_path / f"ck{i}"), sha256=None,
                loader=None))
            for r in part.itertuples():
                st.add_eval(cid, r.task, r.metric, float(r.value), n_shot=int(shot))
    return url


def test_eval_points_and_cli_split_shots_and_metrics(tmp_path: Path) -> None:
    url = _store(tmp_path)
    with Store.open(url) as st:
        pts = eval_points(st.evals())
    assert set(pts.columns) >= {"task", "metric", "n_shot", "C", "value"}
    res = runner.invoke(app, ["emergence", "--store", url, "--bootstrap", "5", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert sorted((r["task"], r["metric"], r["shot"]) for r in rows) == [
        ("arc", "acc", 0), ("arc", "acc", 5), ("arc", "acc_norm", 0), ("arc", "acc_norm", 5)]
    out = tmp_path / "panels.png"
    res = runner.invoke(app, ["emergence", "--store", url, "--bootstrap", "5", "--task", "arc",
                              "--plot", str(out)])
    assert res.exit_code == 0, res.output
    assert out.is_file() and "5-shot" in out.with_suffix(".svg").read_text()
    assert "classifying: 4/4 curves" in res.output  # progress (on stderr), --task arc
