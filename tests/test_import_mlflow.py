"""`scaletrack import mlflow` against real MLflow stores written by mlflow itself: a file
store (long tags, a run imported while RUNNING then refreshed, damaged files, mistyped URIs)
and a real local tracking server (`mlflow server`, when its web dependencies are installed);
an unreachable server fails within 10 s."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.store import Store

mlflow = pytest.importorskip("mlflow")
runner = CliRunner()


def _snapshot(url: str) -> tuple:
    with Store.open(url) as st:
        return (st.runs().drop(columns=["created_at", "updated_at"]).to_json(date_format="iso"),
                st.metrics().to_json(), sorted(st.sweeps()["name"]))


@pytest.fixture
def file_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    root = tmp_path / "mlruns"
    client = mlflow.tracking.MlflowClient(tracking_uri=root.as_uri())
    exp = client.create_experiment("ladder")
    return root, client, exp


def _import(uri: str, url: str, *extra: str):
    return runner.invoke(app, ["import", "mlflow", "--tracking-uri", uri, *extra,
                               "--store", url])


def test_long_tag_running_run_and_refresh(file_store, tmp_path: Path) -> None:
    root, client, exp = file_store
    run = client.create_run(exp, run_name="gpt-a", tags={"note": "x" * 250, "team": "s"})
    run_id = run.info.run_id
    client.log_param(run_id, "params", "1000")
    client.log_param(run_id, "tokens", "20000")
    for step in range(50):
        client.log_metric(run_id, "train/loss", 4 - step / 100, step=step)
    client.log_metric(run_id, "grad_norm", float("nan"), step=3)
    url = f"sqlite:///{tmp_path / 's.db'}"
    res = _import(str(root), url)  # a plain path works as well as file://
    assert res.exit_code == 0, res.output
    assert "1 tags over 200 characters kept only in the run's config" in res.output
    assert "still running: gpt-a" in res.output
    assert "skipped 1 NaN or infinite values (first: gpt-a 'grad_norm@3')" in res.output
    with Store.open(url) as st:
        stored = st.runs().iloc[0]
        assert stored["status"] == "running" and stored["final_loss"] == 4 - 49 / 100
        assert list(stored["tags"]) == ["team=s"] and stored["config"]["tags"]["note"] == \
            "x" * 250
        assert st.count_metrics() == 50
    for step in range(50, 60):
        client.log_metric(run_id, "train/loss", 4 - step / 100, step=step)
    client.set_terminated(run_id, "FINISHED")
    again = _import(root.as_uri(), url)
    assert again.exit_code == 0, again.output
    assert "(0 new, 1 updated)" in again.output and "60 metric values (10 new)" in again.output
    with Store.open(url) as st:
        stored = st.runs().iloc[0]
        assert stored["status"] == "finished" and stored["final_loss"] == 4 - 59 / 100
        metrics = st.metrics()
        assert len(metrics) == 60 and not metrics.duplicated(["run_key", "name", "step"]).any()


def test_bad_locations_and_damaged_files_are_one_line(file_store, tmp_path: Path) -> None:
    root, client, exp = file_store
    run = client.create_run(exp, run_name="gpt-a")
    client.log_metric(run.info.run_id, "loss", 3.0, step=1)
    client.set_terminated(run.info.run_id)
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert _import(root.as_uri(), url).exit_code == 0
    snapshot = _snapshot(url)
    typo = tmp_path / "mlrun"
    empty = tmp_path / "empty"
    empty.mkdir()
    for uri, message in ((typo.as_uri(), "it does not exist (nothing was created)"),
                         (str(empty), "no experiments"),
                         ("ftp://host/x", "unknown scheme 'ftp'")):
        res = _import(uri, url)
        assert res.exit_code == 1 and message in res.output, res.output
        assert res.output.count("\n") == 1
    assert not typo.exists() and list(empty.iterdir()) == []
    metric = root / exp / run.info.run_id / "metrics" / "loss"
    metric.write_text(metric.read_text() + "garbage line here\n")
    res = _import(root.as_uri(), url)
    assert res.exit_code == 1 and res.output.count("\n") == 1, res.output
    assert f"file {metric}: ValueError" in res.output
    metric.write_text("1 3.0 1\n")
    meta = root / exp / "meta.yaml"
    meta.write_text("{{{ not: yaml")
    res = _import(root.as_uri(), url)
    assert res.exit_code == 1 and res.output.count("\n") == 1, res.output
    assert "Traceback" not in res.output
    assert _snapshot(url) == snapshot


def test_unreachable_server_fails_fast(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    res = _import(f"http://user:secret@127.0.0.1:{port}", f"sqlite:///{tmp_path / 's.db'}")
    assert time.monotonic() - started < 10
    assert res.exit_code == 1 and "cannot reach the MLflow server" in res.output
    assert "secret" not in res.output


@pytest.mark.slow
def test_real_tracking_server(tmp_path: Path) -> None:
    """A real `mlflow server` (mlflow-skinny plus flask and flask-cors, the dev extra)."""
    pytest.importorskip("flask_cors")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{tmp_path / 'ml.db'}", "--default-artifact-root", str(tmp_path / "art"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "no server"
                time.sleep(0.5)
        client = mlflow.tracking.MlflowClient(tracking_uri=uri)
        for _ in range(60):  # the port opens before the app answers
            try:
                exp = client.create_experiment("ladder")
                break
            except Exception:
                time.sleep(1)
        run = client.create_run(exp, run_name="gpt-a")
        client.log_param(run.info.run_id, "params", "1000")
        for step in range(5):
            client.log_metric(run.info.run_id, "loss", 3 - step / 10, step=step)
        client.set_terminated(run.info.run_id)
        url = f"sqlite:///{tmp_path / 's.db'}"
        res = _import(uri, url, "--experiment", "ladder")
        assert res.exit_code == 0, res.output
        with Store.open(url) as st:
            stored = st.runs().iloc[0]
            assert (stored["name"], stored["N"], stored["status"]) == ("gpt-a", 1000,
                                                                       "finished")
            assert st.metrics()["value"].tolist() == [3 - s / 10 for s in range(5)]
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
