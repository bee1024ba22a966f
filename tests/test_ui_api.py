"""The dashboard's JSON API over a read-only store: answers match the store, bad queries are
one-line 400s, nothing but GET is served, and the store refuses writes (SQLite and
PostgreSQL)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient
from ui_fixtures import EPOCH, SCRIPT, SWEEP, shared_ui_store

from scaletrack.store import RunRecord, Store, StoreError, open_read_only
from scaletrack.ui import create_app
from scaletrack.ui.downsample import downsample_indices

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> str:
    return shared_ui_store(tmp_path_factory, shared_data)


@pytest.fixture(scope="module")
def client(ui_url: str):
    store = open_read_only(ui_url)
    with TestClient(create_app(store), base_url="http://localhost") as c:
        yield c
    store.close()


def digest(url: str) -> tuple[str, float]:
    path = Path(url.removeprefix("sqlite:///"))
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime


def test_runs_page_filters_sorts_groups_and_pages(client: TestClient, ui_url: str) -> None:
    with Store.open(ui_url) as store:
        runs = store.runs()
    page = client.get("/api/runs", params={"limit": 10}).json()
    assert page["total"] == len(runs) and len(page["rows"]) == 10
    assert [r["run_key"] for r in page["rows"]] == list(runs["run_key"][:10])
    second = client.get("/api/runs", params={"limit": 10, "offset": 10}).json()
    assert [r["run_key"] for r in second["rows"]] == list(runs["run_key"][10:20])

    best = client.get("/api/runs", params={"sort": "final_loss", "limit": 3}).json()["rows"]
    assert [r["final_loss"] for r in best] == sorted(runs["final_loss"].dropna())[:3]

    sweep = runs[runs["sweep"] == SWEEP]
    grouped = client.get("/api/runs", params={"sweep": SWEEP, "group": "N"}).json()
    assert [g["value"] for g in grouped["groups"]] == sorted(sweep["N"].unique())
    for g in grouped["groups"]:
        part = sweep[sweep["N"] == g["value"]]
        assert g["count"] == len(part)
        assert math.isclose(g["best_final_loss"], part["final_loss"].min())

    by_config = client.get("/api/runs", params={"where": "model.n_layer=2"}).json()
    layers = [c["model"]["n_layer"] if "model" in c else None for c in runs["config"]]
    assert by_config["total"] == layers.count(2) > 0
    by_lr = client.get("/api/runs", params=[("where", "lr=0.003"), ("sweep", SWEEP)]).json()
    assert by_lr["total"] == len(sweep)
    by_layers = client.get("/api/runs", params={"group": "config.model.n_layer"}).json()
    counts = {g["value"]: g["count"] for g in by_layers["groups"]}
    assert counts.get(2) == layers.count(2) and sum(counts.values()) == len(runs)
    tagged = client.get("/api/runs", params={"tag": "baseline"}).json()
    assert [r["sweep"] for r in tagged["rows"]] == [SCRIPT]
    assert SCRIPT in tagged["rows"][0]["tags"]
    assert client.get("/api/runs", params={"status": "failed"}).json()["total"] == 0


def test_bad_queries_are_one_line_errors(client: TestClient) -> None:
    for params, fragment in (
        ({"sort": "nope"}, "cannot sort runs by 'nope'"),
        ({"group": "x"}, "cannot group runs by 'x'"),
        ({"group": "config."}, "config"),
        ({"limit": "abc"}, "limit='abc' is not an integer"),
        ({"where": "no-equals"}, "not of the form field=value"),
        ({"limit": "0"}, "limit between 1"),
    ):
        answer = client.get("/api/runs", params=params)
        assert answer.status_code == 400 and fragment in answer.json()["error"]
    missing = client.get("/api/runs/doesnotexist")
    assert missing.status_code == 404 and "no run with key" in missing.json()["error"]
    assert client.get("/api/metrics").status_code == 400


def test_metrics_match_store_and_downsample(client: TestClient, ui_url: str) -> None:
    with Store.open(ui_url) as store:
        run = store.runs(sweep=SWEEP).iloc[-1]
        rows = store.metrics(run_keys=[run.run_key], names=["train/loss"])
    answer = client.get("/api/metrics", params={"run": run.run_key, "name": "train/loss"}).json()
    series = answer["series"][0]
    assert series["n_raw"] == len(rows) == series["n_shown"]
    assert series["x"]["step"] == rows["step"].tolist()
    assert np.allclose(series["y"], rows["value"])
    assert np.allclose(series["x"]["tokens"], rows["tokens"].astype(float))
    assert np.allclose(series["x"]["flops"], rows["tokens"].astype(float) * run.C / run.D)
    few = client.get("/api/metrics", params={"run": run.run_key, "name": "train/loss",
                                              "points": 5}).json()["series"][0]
    assert few["n_shown"] <= 5 + len(few["spikes"]["y"]) and few["n_raw"] == len(rows)


def test_downsampling_keeps_extremes() -> None:
    x = np.arange(100_000, dtype=float)
    y = np.sin(x / 5000) + np.random.default_rng(0).normal(0, 0.01, x.size)
    y[31_337] = 25.0  # a one-step loss spike
    idx = downsample_indices(x, y, 500)
    assert len(idx) <= 500 and 31_337 in idx and np.all(np.diff(idx) > 0)
    assert np.array_equal(downsample_indices(x[:100], y[:100], 500), np.arange(100))


def test_scaling_matches_store_and_reproduces_epoch_fit(client: TestClient, ui_url: str) -> None:
    answer = client.get("/api/scaling", params={"sweep": EPOCH}).json()
    with Store.open(ui_url) as store:
        runs = store.runs(sweep=EPOCH, status="finished")
    assert answer["n"] == len(runs) == 240
    assert sorted(answer["points"]["C"]) == pytest.approx(sorted(runs["C"]))
    assert sorted(answer["points"]["loss"]) == pytest.approx(sorted(runs["final_loss"]))
    # the Chinchilla fit on Epoch's 240 points reproduces their published E = 1.817
    opt = client.get("/api/optimal", params={"sweep": EPOCH}).json()
    assert opt["status"] == "ok"
    assert opt["params"]["E"] == pytest.approx(1.817, abs=0.01)
    fit = answer["fits"]["C"]
    assert fit["status"] == "ok"
    curve = fit["curve"]
    lo, hi, plo, phi = (np.array(curve[k], dtype=float) for k in
                        ("conf_lo", "conf_hi", "pred_lo", "pred_hi"))
    assert np.all(plo <= lo + 1e-12) and np.all(hi <= phi + 1e-12)  # prediction is wider
    # L(C) is fitted on the compute frontier, as `scaletrack fit --form compute` does
    assert "compute frontier" in fit["points"]
    assert fit["n_points"] == len(answer["frontier"]["C"]) < len(runs)
    # the prediction band holds about 95 % of the points it was fitted on
    c = np.array(answer["frontier"]["C"])
    loss = np.array(answer["frontier"]["loss"])
    grid = np.array(curve["x"])
    inside = (loss >= np.interp(c, grid, plo)) & (loss <= np.interp(c, grid, phi))
    assert inside.mean() > 0.85
    assert answer["backtest"]["status"] == "ok" and answer["isoflop"]["profiles"]
    assert answer["frontier"]["C"] == sorted(answer["frontier"]["C"])


def test_emergence_ideas_and_fits(client: TestClient) -> None:
    tasks = client.get("/api/emergence").json()["tasks"]
    assert [(t["task"], t["metric"]) for t in tasks] == [("val_loss", "loss")]
    assert tasks[0]["label"] in ("past", "near", "far", "-") and len(tasks[0]["C"]) == 6
    ideas = client.get("/api/ideas").json()["ideas"]
    assert [i["title"] for i in ideas][1] == SCRIPT
    assert all(len(i["attempts_list"]) == 6 for i in ideas)
    assert client.get("/api/fits").json() == {"fits": []}


def test_only_get_is_served_and_store_bytes_unchanged(client: TestClient, ui_url: str) -> None:
    before = digest(ui_url)
    for path in ("/", "/api/runs", "/api/ideas", "/api/scaling", "/api/runs/x", "/api/fits"):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            assert client.request(method, path).status_code == 405, (method, path)
    assert client.get("/static/../../etc/passwd").status_code == 404
    for path in ("/", "/api/runs", "/api/sweeps", "/api/ideas", "/api/emergence"):
        response = client.get(path)
        assert response.status_code == 200
        assert "default-src 'self'" in response.headers["content-security-policy"]
    assert digest(ui_url) == before


def test_read_only_store_refuses_writes(ui_url: str, tmp_path: Path) -> None:
    before = digest(ui_url)
    with open_read_only(ui_url) as store:
        assert len(store.runs()) > 0
        with pytest.raises(Exception, match="readonly|read-only|read only"):
            store.upsert_sweep("new", {})
        with pytest.raises(Exception, match="readonly|read-only|read only"):
            store.ensure_run(RunRecord("k", None, "gpt", {}, 1, 1, 1, 1.0))
    assert digest(ui_url) == before
    with pytest.raises(StoreError, match="does not exist"):
        open_read_only(f"sqlite:///{tmp_path / 'absent.db'}")
    assert not (tmp_path / "absent.db").exists()


@pytest.mark.postgres
def test_read_only_postgres(postgres_db_url: str) -> None:
    with Store.open(postgres_db_url) as store:
        store.upsert_sweep("s", {"a": 1})
    with open_read_only(postgres_db_url) as store:
        assert list(store.sweeps()["name"]) == ["s"]
        with pytest.raises(Exception, match="read-only transaction"):
            store.upsert_sweep("t", {})
        with TestClient(create_app(store), base_url="http://localhost") as c:
            assert c.get("/api/sweeps").json()["sweeps"][0]["name"] == "s"


def test_cli_errors_are_one_line(ui_url: str, tmp_path: Path) -> None:
    import socket

    from typer.testing import CliRunner

    from scaletrack.cli.main import app

    runner = CliRunner()
    missing = runner.invoke(app, ["ui", "--store", f"sqlite:///{tmp_path / 'none.db'}"])
    assert missing.exit_code == 1 and "no scaletrack store at" in missing.output
    assert not (tmp_path / "none.db").exists()
    secret = runner.invoke(app, ["ui", "--store", "postgresql://u:hunter2@127.0.0.1:1/db"])
    assert secret.exit_code == 1 and "hunter2" not in secret.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        busy = runner.invoke(app, ["ui", "--store", ui_url, "--port", port])
    assert busy.exit_code == 1 and f"cannot serve on 127.0.0.1:{port}" in busy.output
    nope = runner.invoke(app, ["report", "-o", str(tmp_path / "r.html"), "--sweep", "nope",
                               "--store", ui_url])
    assert nope.exit_code == 1 and "no runs in sweep 'nope'" in nope.output
    assert not (tmp_path / "r.html").exists()
    assert all("Traceback" not in r.output for r in (missing, secret, busy, nope))


def spiky_store(path: Path) -> tuple[str, str]:
    """A diverged run: 400 steps of train/loss, a spike at step 123, NaN from step 350."""
    import pandas as pd

    url = f"sqlite:///{path}"
    with Store.open(url) as store:
        run = store.ensure_run(RunRecord("spiky", "s", "gpt", {"lr": 1.0}, 100, 120, 4000, 2.4e6))
        step = np.arange(400)
        loss = 5.0 - step / 200
        loss[123] = 9.0
        loss[350:] = np.nan
        frame = pd.DataFrame({"run_key": run.run_key, "name": "train/loss", "step": step,
                              "value": loss, "tokens": step * 10, "wall_time": step * 0.1})
        spike = pd.DataFrame({"run_key": run.run_key, "name": "spike", "step": [123],
                              "value": [1.0]})
        store.write_metrics(pd.concat([frame, spike], ignore_index=True))
        store.finish_run(run.run_key, "diverged", error="training loss not finite")
    return url, run.run_key


def test_spikes_and_divergence_survive_downsampling(tmp_path: Path) -> None:
    url, key = spiky_store(tmp_path / "spiky.db")
    with open_read_only(url) as store, \
            TestClient(create_app(store), base_url="http://localhost") as c:
        series = c.get("/api/metrics", params={"run": key, "name": "train/loss",
                                                "points": 20}).json()["series"][0]
        assert series["n_raw"] == 400 and series["n_shown"] <= 21
        assert 123 in series["x"]["step"] and series["spikes"]["x"]["step"] == [123]
        assert series["spikes"]["y"] == [9.0]
        assert series["nonfinite_steps"] == list(range(350, 400))
        assert max(series["x"]["step"]) == 349 and None not in series["y"]
        assert np.allclose(series["x"]["flops"], np.array(series["x"]["tokens"]) * 2.4e6 / 4000)
        detail = c.get(f"/api/runs/{key}").json()
        assert detail["diverged"] and detail["error"] == "training loss not finite"
        assert [m["name"] for m in detail["metrics"]] == ["spike", "train/loss"]


def test_scaling_fits_use_the_cli_point_selection(tmp_path: Path) -> None:
    """Two learning rates per (N, D): the dashboard's fits use the best one, as `fit` does,
    and say so; the scatter still shows every run."""
    from scaletrack.ui.data import scaling

    url = f"sqlite:///{tmp_path / 'lrs.db'}"
    with Store.open(url) as store:
        for n in (1e6, 4e6, 1.6e7):
            for d in (2e7, 8e7, 3.2e8):
                good = 1.8 + 400 / n ** 0.34 + 2000 / d ** 0.37
                for lr, loss in ((1e-3, good), (1e-1, good + 0.5)):
                    key = f"n{n:g}-d{d:g}-lr{lr:g}"
                    store.ensure_run(RunRecord(run_key=key, sweep="lrs", family="gpt",
                                               config={}, N=int(n), N_total=int(n), D=int(d),
                                               C=6 * n * d,
                                               seed=0, lr=lr))
                    store.finish_run(key, "finished", final_loss=loss)
        answer = scaling(store, "lrs")
    assert answer["n"] == 18 and len(answer["points"]["loss"]) == 18
    for axis in ("N", "D", "C"):
        assert "best of 2 learning rates" in answer["fits"][axis]["points"]
    assert answer["isoflop"]["points"].startswith("18 runs")
    assert "-> 9 points" in answer["isoflop"]["points"]


def test_host_header_must_name_this_server(ui_url: str) -> None:
    with open_read_only(ui_url) as store:
        app = create_app(store, host="10.1.2.3")
        for base, status in (("http://localhost:8765", 200), ("http://127.0.0.1", 200),
                             ("http://[::1]:8765", 200), ("http://10.1.2.3:9", 200),
                             ("http://attacker.example", 403),
                             ("http://localhost.attacker.example", 403)):
            with TestClient(app, base_url=base) as c:
                answer = c.get("/api/sweeps")
                assert answer.status_code == status, base
                if status == 403:
                    assert "sweeps" not in answer.text and "rebinding" in answer.json()["error"]
                    assert c.get("/").status_code == 403


def test_scaling_bands_are_predict_interval(client: TestClient, ui_url: str) -> None:
    """The dashboard's L(C) bands are the library's calibrated `predict_interval` on the
    same points, not a band of its own."""
    from scaletrack.analysis import fit_power_law
    from scaletrack.analysis.selection import select_points
    from scaletrack.scaling_fits import SCALING_BOOTSTRAP
    from scaletrack.ui.data import scaling_points

    answer = client.get("/api/scaling", params={"sweep": EPOCH}).json()
    curve = answer["fits"]["C"]["curve"]
    with open_read_only(ui_url) as store:
        df = scaling_points(store, EPOCH)
    points, _ = select_points(df[["N", "D", "C", "loss", "lr", "seed"]], "compute")
    fit = fit_power_law(points, "C", n_bootstrap=SCALING_BOOTSTRAP)
    grid = np.array(curve["x"])
    conf = fit.predict_interval(grid, kind="confidence")
    pred = fit.predict_interval(grid, kind="prediction")
    assert np.allclose(curve["conf_lo"], conf["lo"]) and np.allclose(curve["conf_hi"], conf["hi"])
    assert np.allclose(curve["pred_lo"], pred["lo"]) and np.allclose(curve["pred_hi"], pred["hi"])
    assert curve["extrapolate_from"] == pytest.approx(points["C"].max())
    at = float(points["C"].max() * 100)
    box = client.get("/api/predict", params={"sweep": EPOCH, "x": "C", "at": at}).json()
    one = fit.predict_interval(np.array([at]), kind="prediction")
    assert box["pred"] == pytest.approx([one["lo"][0], one["hi"][0]])
    assert box["decades_beyond"] == pytest.approx(2.0)
    bad = client.get("/api/predict", params={"sweep": EPOCH, "at": "big"})
    assert bad.status_code == 400 and "positive number" in bad.json()["error"]
    assert "'big'" in bad.json()["error"] and "nan" not in bad.json()["error"]  # what was typed


def test_emergence_is_paged_by_task_metric_shot(client: TestClient) -> None:
    first = client.get("/api/emergence", params={"limit": 1}).json()
    assert first["total"] == len(first["groups"]) >= 1 and len(first["tasks"]) == 1
    g = first["groups"][0]
    assert set(g) == {"task", "metric", "shot", "points"}
    assert client.get("/api/emergence", params={"q": "no-such-task"}).json()["total"] == 0
    assert client.get("/api/emergence", params={"limit": 0}).status_code == 400


def test_ui_stops_on_sigterm_with_an_answer_in_flight(ui_url: str) -> None:
    """SIGTERM stops `scaletrack ui` even while an answer is being computed, quietly (the
    2 s target is measured by bench/bench_ui.py, not asserted here)."""
    import contextlib
    import signal
    import socket
    import subprocess
    import sys
    import threading
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = Path(sys.executable).with_name("scaletrack")
    proc = subprocess.Popen([str(exe), "ui", "--store", ui_url, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "serving" in proc.stdout.readline()

        def ask() -> None:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/optimal?sweep={EPOCH}",
                                       timeout=60).read()

        threading.Thread(target=ask, daemon=True).start()
        import time

        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert "Traceback" not in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def grid_store(path: Path, sizes: int, budgets: int, sweep: str = "grid") -> str:
    """A sweep of sizes x budgets finished runs with Chinchilla-like losses (1 % noise)."""
    rng = np.random.default_rng(3)
    url = f"sqlite:///{path}"
    with Store.open(url) as store:
        for n in np.geomspace(1e5, 1e8, sizes):
            for d in np.geomspace(1e8, 1e11, budgets):
                loss = (1.8 + 400 / n ** 0.34 + 2000 / d ** 0.37) * np.exp(rng.normal(0, 0.01))
                key = f"n{n:.4g}-d{d:.4g}"
                store.ensure_run(RunRecord(run_key=key, sweep=sweep, family="gpt", config={},
                                           N=int(n), N_total=int(n), D=int(d), C=6 * n * d,
                                           seed=0, lr=1e-3))
                store.finish_run(key, "finished", final_loss=float(loss))
    return url


def test_compute_optimal_needs_what_the_library_needs(tmp_path: Path) -> None:
    """Too few runs for a Chinchilla fit or IsoFLOP profiles: the views give the library's own
    rules and words (free parameters + 2 points; runs per budget), not counts of their own."""
    from scaletrack.analysis import fit_isoflop
    from scaletrack.analysis.chinchilla import check_degrees_of_freedom
    from scaletrack.errors import DataError
    from scaletrack.ui.data import optimal, scaling, scaling_points

    url = grid_store(tmp_path / "six.db", 3, 2)
    with open_read_only(url) as store:
        answer = optimal(store, "grid")
        iso = scaling(store, "grid")["isoflop"]
        points = scaling_points(store, "grid")
    with pytest.raises(DataError) as library:
        check_degrees_of_freedom("chinchilla", 6, 5)
    assert answer["status"] == "none" and answer["reason"] == str(library.value)
    with pytest.raises(DataError) as library:  # two budgets of three sizes: no IsoFLOP profile
        fit_isoflop(points[["N", "D", "C", "loss"]], n_bootstrap=0)
    assert iso["profiles"] == [] and iso["reason"] == str(library.value)


def test_scaling_view_answers_from_the_fit_cache(tmp_path: Path) -> None:
    """The fits `cache_scaling_fits` saves (as when a sweep finishes) are the ones the
    read-only view answers from, key for key, and its answer equals fitting afresh; a changed
    run changes the key, so the view fits again."""
    from scaletrack.scaling_fits import (
        backtest_threshold,
        cache_scaling_fits,
        compute_backtest,
        power_law,
        scaling_points,
        selected_points,
    )
    from scaletrack.ui import data

    url = grid_store(tmp_path / "grid.db", 6, 6)
    with open_read_only(url) as store:
        fresh = data.scaling(store, "grid")
    assert fresh["fits"]["C"]["status"] == "ok" and fresh["backtest"]["status"] == "ok"
    with Store.open(url) as store:
        assert cache_scaling_fits(store, "grid") == 4  # L(N), L(D), L(C) and the back-test
        assert cache_scaling_fits(store, "grid") == 0  # already there
        assert set(store.fits(cached=True)["sweep"]) == {"grid"}
        assert store.fits().empty  # cache entries are not listed as saved fits
    with data._cache_lock:
        data._fit_cache.clear()  # a fresh server process: nothing computed in memory
    before = digest(url)
    with open_read_only(url) as store:
        df = scaling_points(store, "grid")
        for x, form in (("N", "power_N"), ("D", "power_D"), ("C", "compute")):
            assert power_law(store, selected_points(df, form)[0], x)[2], x  # a cache hit
        points = selected_points(df, "compute")[0]
        assert compute_backtest(store, points, backtest_threshold(points))[2]
        cached = data.scaling(store, "grid")
    assert digest(url) == before  # the view only read
    assert cached == fresh
    with Store.open(url) as store:  # a fitted run's size is corrected: its fit is keyed anew
        fitted = selected_points(df, "power_N")[0].iloc[0]
        row = df[(df["N"] == fitted["N"]) & (df["D"] == fitted["D"])].iloc[0]
        store.update_run(str(row["run_key"]), N=int(row["N"] * 1.01))
        df2 = scaling_points(store, "grid")
        assert not power_law(store, selected_points(df2, "power_N")[0], "N")[2]


def test_report_is_written_atomically(tmp_path: Path) -> None:
    from scaletrack.errors import DataError
    from scaletrack.ui.report import write_report

    url = grid_store(tmp_path / "small.db", 3, 3)
    out = tmp_path / "out"
    out.mkdir()
    with open_read_only(url) as store:
        with pytest.raises(DataError, match="it is a folder"):
            write_report(store, out, points=50)
        assert list(out.iterdir()) == [] and not (tmp_path / "out.tmp").exists()
        path = write_report(store, out / "report.html", points=50)
        path = write_report(store, out / "report.html", points=50)  # over an existing file
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]
    html = path.read_text()
    assert "<script type=\"module\"" not in html and "\nimport {" not in html
    assert "\nexport function" not in html and "function viewScaling(" in html


def test_dashboard_modules_are_served_as_javascript(client: TestClient) -> None:
    """app.js is an ES module; every module it (and they) import is served as JavaScript,
    and each is under 600 lines."""
    import re

    page = client.get("/").text
    assert '<script type="module" src="/static/app.js"></script>' in page
    todo, seen = ["app.js"], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        answer = client.get(f"/static/{name}")
        assert answer.status_code == 200, name
        assert answer.headers["content-type"].startswith("text/javascript"), name
        assert len(answer.text.splitlines()) < 600, name
        todo += re.findall(r'^import \{[^}]*\} from "\./([a-z]+\.js)";$', answer.text, re.M)
    assert {"app.js", "common.js", "api.js", "scaling.js"} <= seen
    assert client.get("/static/nope.js").status_code == 404
