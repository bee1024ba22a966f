"""`scaletrack fit --sweep` leaves the dashboard's scaling-view fits in the store's fit cache,
as the end of a sweep does: afterwards every scaling-view fit (L(N), L(D), L(C) and the L(C)
back-test) is answered from the store, and each cached answer equals a fresh fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from scaletrack.analysis.backtesting import backtest
from scaletrack.analysis.powerlaw import fit_power_law
from scaletrack.cli.main import app
from scaletrack.scaling_fits import (
    POWER_FORMS,
    SCALING_BOOTSTRAP,
    backtest_threshold,
    compute_backtest,
    power_law,
    scaling_points,
    selected_points,
)
from scaletrack.store import RunRecord, Store


def _runs() -> list[RunRecord]:
    rng = np.random.default_rng(3)
    out = []
    for i, n in enumerate(np.geomspace(1e6, 1e8, 6)):
        for j, d in enumerate(np.geomspace(1e8, 1e10, 5)):
            loss = 1.7 + 400 / n**0.34 + 1800 / d**0.28
            out.append(RunRecord(
                run_key=f"r{i}{j}", sweep="grid", family="gpt", config={"i": i, "j": j},
                N=int(n), N_total=int(n), D=int(d), C=6.0 * n * d, seed=0, lr=3e-4,
                status="finished", final_loss=float(loss * np.exp(rng.normal(0, 0.01)))))
    return out


def _same(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _lookups(store: Store) -> tuple[dict, dict]:
    """(x -> (fit, hit)) of the scaling view's power laws, and the back-test's."""
    df = scaling_points(store, "grid")
    fits = {}
    for x, form in POWER_FORMS.items():
        points, _ = selected_points(df, form)
        fit, _, hit = power_law(store, points, x)
        fits[x] = (points, fit, hit)
    points, _ = selected_points(df, "compute")
    threshold = backtest_threshold(points)
    result, _, hit = compute_backtest(store, points, threshold)
    return fits, {"points": points, "threshold": threshold, "result": result, "hit": hit}


@pytest.mark.slow
def test_cli_fit_caches_the_scaling_view(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with Store.open(url) as store:
        store.ensure_runs(_runs())
        before, bt_before = _lookups(store)
    assert not any(hit for _, _, hit in before.values()) and not bt_before["hit"]

    res = CliRunner().invoke(app, ["fit", "--form", "compute", "--sweep", "grid", "--store",
                                   url, "--bootstrap", "20", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["form"] == "compute"  # stdout stays one JSON object

    with Store.open(url) as store:  # as a restarted dashboard would
        after, bt_after = _lookups(store)
    for x, (points, fit, hit) in after.items():
        assert hit, x
        fresh = fit_power_law(points, x, n_bootstrap=SCALING_BOOTSTRAP)
        assert _same(fit.to_dict(), fresh.to_dict()), x
    assert bt_after["hit"]
    fresh_bt = backtest(bt_after["points"][["N", "D", "C", "loss"]], "compute",
                        bt_after["threshold"], n_bootstrap=SCALING_BOOTSTRAP)
    cached_bt = bt_after["result"]
    assert _same(cached_bt.fit.to_dict(), fresh_bt.fit.to_dict())
    for key in ("mape", "coverage_prediction", "coverage_confidence", "n_train", "n_test"):
        assert cached_bt.summary[key] == pytest.approx(fresh_bt.summary[key]), key
    assert np.allclose(cached_bt.frame["predicted"], fresh_bt.frame["predicted"])


def test_cli_fit_on_a_csv_writes_no_cache(tmp_path) -> None:
    runs = _runs()
    csv = tmp_path / "runs.csv"
    csv.write_text("N,D,loss\n" + "".join(f"{r.N},{r.D},{r.final_loss}\n" for r in runs))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    res = CliRunner().invoke(app, ["fit", "--form", "compute", "--csv", str(csv), "--store",
                                   url, "--bootstrap", "10", "--json"])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "store.db").exists()
