"""The dashboard's answers behind the scaling and run views: an adaptive sweep's recorded
decisions (/api/adaptive), a run's checkpoint evaluations (/api/runs/KEY/evals), checkpoints
in step order, an evaluation-only store's reasons instead of empty fits, and the law drawn
out to a predicted point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient
from ui_view_stores import adaptive_store, evaluation_only_store

from scaletrack.adaptive import decisions
from scaletrack.store import open_read_only
from scaletrack.ui import create_app
from scaletrack.ui.report import report_data

pytestmark = pytest.mark.slow  # the stores take seconds to build (adaptive refits, imports)


@pytest.fixture(scope="module")
def adaptive(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return adaptive_store(tmp_path_factory.mktemp("adaptive"))


@pytest.fixture(scope="module")
def eval_only(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> str:
    return evaluation_only_store(tmp_path_factory.mktemp("evals"), shared_data)


def client_for(url: str) -> TestClient:
    return TestClient(create_app(open_read_only(url)), base_url="http://localhost")


def test_adaptive_decisions_are_served_as_recorded(adaptive: tuple[str, str]) -> None:
    url, sweep = adaptive
    with open_read_only(url) as store:
        recorded = decisions(store, sweep)
    assert [r["action"] for r in recorded] == ["run", "stop"]  # the fixture's budget: one cell
    with client_for(url) as client:
        answer = client.get("/api/adaptive", params={"sweep": sweep}).json()
        assert client.get("/api/adaptive").json()["steps"] == []  # all sweeps: none of its own
        assert client.get("/api/adaptive", params={"sweep": "no-such"}).json()["steps"] == []
        scaling = client.get("/api/scaling", params={"sweep": sweep}).json()
    steps = answer["steps"]
    assert [s["step"] for s in steps] == [r["step"] for r in recorded]
    for got, want in zip(steps, recorded, strict=True):
        for k in ("action", "reason", "run_key", "size", "n_points", "skipped"):
            assert got[k] == want[k], k
        for k in ("width", "spent_flops", "cell_flops", "prediction", "N", "D"):
            assert got[k] == pytest.approx(want[k]) if want[k] is not None else got[k] is None
    ran = steps[0]
    assert ran["width"] > 0 and ran["n_points"] == scaling["n"]  # every finished cell fitted
    assert answer["stopped"] == recorded[-1]["reason"] and answer["stopped"].startswith("budget")
    assert answer["target_compute"] == pytest.approx(1e14)
    assert answer["saved_flops"] == pytest.approx(
        recorded[-1]["full_grid_flops"] - recorded[-1]["spent_flops"])
    with open_read_only(url) as store:  # the offline report embeds the same answer
        assert report_data(store, sweep)["adaptive"][sweep]["steps"] == steps


def test_evaluation_only_store_says_why_nothing_is_fitted(eval_only: str) -> None:
    with client_for(eval_only) as client:
        scaling = client.get("/api/scaling").json()
        optimal = client.get("/api/optimal").json()
        predict = client.get("/api/predict", params={"x": "C", "at": "1e22"})
    assert scaling["n"] == 0 and scaling["fits"] == {}
    assert scaling["note"].startswith("no finished runs with a final loss")
    assert "evaluation-only" in scaling["note"]
    assert optimal["status"] == "none" and optimal["reason"] == scaling["note"]
    assert predict.status_code == 400 and predict.json()["error"] == scaling["note"]
    with open_read_only(eval_only) as store:  # a report with no sweep: one answer for all runs
        snapshot = report_data(store)
    assert snapshot["default_sweep"] == "" and snapshot["scaling"][""]["note"] == scaling["note"]
    assert snapshot["adaptive"][""]["steps"] == []


def test_checkpoints_by_step_and_evaluations_by_series(eval_only: str) -> None:
    with open_read_only(eval_only) as store:
        key = store.runs()["run_key"].iloc[0]
        evals = store.evals()
        ckpts = store.checkpoints(key)
    with client_for(eval_only) as client:
        detail = client.get(f"/api/runs/{key}").json()
        series = client.get(f"/api/runs/{key}/evals").json()["series"]
        missing = client.get("/api/runs/nope/evals")
    assert detail["run"]["name"] == "pythia-v1.1-160m" and detail["metrics"] == []
    order = [(c["step"], c["path"]) for c in detail["checkpoints"]]
    assert order == sorted(order) and len(order) == len(ckpts)
    assert sorted(c["id"] for c in detail["checkpoints"]) == sorted(ckpts["id"])
    by_shot = [(c["step"], int(c["path"].split("/")[-1].split("-shot")[0]))
               for c in detail["checkpoints"]]
    assert by_shot == sorted(by_shot) and {s for _, s in by_shot} == {0, 5}  # steps, then shots
    # one series per (task, metric, shot), every eval row once, each by step
    mine = evals[evals["run_key"] == key]
    groups = mine.groupby(["task", "metric", "n_shot"]).size()
    assert len(series) == len(groups)
    assert sum(len(s["value"]) for s in series) == len(mine)
    assert [(s["task"], s["metric"], s["shot"]) for s in series] == sorted(
        (s["task"], s["metric"], s["shot"]) for s in series)
    step_of = dict(zip(ckpts["id"], ckpts["step"], strict=True))
    for s in series[:20]:
        assert s["step"] == sorted(s["step"])
        part = mine[(mine["task"] == s["task"]) & (mine["metric"] == s["metric"])
                    & (mine["n_shot"] == s["shot"])]
        want = sorted(zip(part["checkpoint_id"].map(step_of), part["value"], strict=True))
        assert [v for _, v in want] == pytest.approx(s["value"])
    assert missing.status_code == 404


def test_predicted_point_lies_on_the_drawn_law(tmp_path: Path) -> None:
    from test_ui_api import grid_store

    url = grid_store(tmp_path / "grid.db", 4, 4)
    with client_for(url) as client:
        fit = client.get("/api/scaling", params={"sweep": "grid"}).json()["fits"]["C"]
        got = client.get("/api/predict", params={"sweep": "grid", "x": "C", "at": "1e30"}).json()
    assert fit["curve"]["x"][-1] < 1e30  # the view's own curve stops at 10x the largest run
    curve = got["curve"]
    assert curve["x"][-1] >= 1e30 and curve["x"][0] == pytest.approx(fit["curve"]["x"][0])
    at = np.interp(np.log(1e30), np.log(curve["x"]), curve["y"])
    assert at == pytest.approx(got["loss"], rel=1e-3)
    hi = np.interp(np.log(1e30), np.log(curve["x"]), curve["pred_hi"])
    assert hi == pytest.approx(got["pred"][1], rel=1e-2)
