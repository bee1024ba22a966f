"""MLflow import through a real MLflow store, long history tables, import-csv run names, and
exports (CSV, parquet, JSON lines) read back with pandas."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.store import Store

runner = CliRunner()


def _mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict]:
    """A real local MLflow file store written by mlflow itself: two runs with histories."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3 wants an opt-in
    uri = (tmp_path / "mlruns").as_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("ladder")
    rng = np.random.default_rng(0)
    logged: dict = {}
    for name, n in (("gpt-small", 1_000_000), ("gpt-large", 4_000_000)):
        with mlflow.start_run(run_name=name) as run:
            mlflow.log_params({"params": n, "tokens": 20 * n, "lr": 3e-4})
            mlflow.set_tag("team", "scaling")
            mlflow.set_tag("mlflow.note.content", f"{name} baseline")
            values = 4.0 - np.cumsum(rng.uniform(0, 0.1, size=30))
            for step, value in enumerate(values):
                mlflow.log_metric("train/loss", float(value), step=step * 10)
            mlflow.log_metric("val/loss", float(values[-1]) + 0.05, step=290)
            logged[name] = (run.info.run_id, values)
    mlflow.set_tracking_uri("")
    return uri, logged


def test_mlflow_import_then_parquet_export_equal(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    uri, logged = _mlflow_store(tmp_path, monkeypatch)
    url = f"sqlite:///{tmp_path / 's.db'}"
    res = runner.invoke(app, ["import", "mlflow", "--tracking-uri", uri, "--experiment",
                              "ladder", "--store", url])
    assert res.exit_code == 0, res.output
    assert ("imported 2 MLflow runs (2 new, 0 updated) from 1 experiment(s): 62 metric values "
            "(62 new)") in res.output
    out = tmp_path / "metrics.parquet"
    res = runner.invoke(app, ["export", "metrics", "--format", "parquet", "-o", str(out),
                              "--sweep", "ladder", "--store", url])
    assert res.exit_code == 0, res.output
    metrics = pd.read_parquet(out)
    runs = pd.read_parquet(_export(tmp_path, url, "runs", "parquet"))
    by_name = runs.set_index("name")
    for name, (run_id, values) in logged.items():
        key = by_name.loc[name, "run_key"]
        curve = metrics[(metrics["run_key"] == key) & (metrics["name"] == "train/loss")]
        assert curve["step"].tolist() == [10 * i for i in range(30)]
        np.testing.assert_array_equal(curve["value"].to_numpy(), values)  # bit for bit
        assert (curve["wall_time"] >= 0).all()
        n = 1_000_000 if name == "gpt-small" else 4_000_000
        assert by_name.loc[name, "N"] == n and by_name.loc[name, "D"] == 20 * n
        assert by_name.loc[name, "C"] == 6.0 * n * 20 * n
        assert by_name.loc[name, "status"] == "finished"
        assert by_name.loc[name, "final_loss"] == float(values[-1]) + 0.05
        assert list(by_name.loc[name, "tags"]) == ["team=scaling"]
        assert by_name.loc[name, "note"] == f"{name} baseline"
        assert json.loads(by_name.loc[name, "config"])["run_id"] == run_id

    again = runner.invoke(app, ["import", "mlflow", "--tracking-uri", uri, "--store", url])
    assert "(0 new)" in again.output
    missing = runner.invoke(app, ["import", "mlflow", "--tracking-uri", uri, "--experiment",
                                  "nope", "--store", url])
    assert missing.exit_code == 1 and "no MLflow experiment named 'nope'" in missing.output


def _export(tmp_path: Path, url: str, table: str, fmt: str, *extra: str) -> Path:
    out = tmp_path / f"{table}.{fmt}"
    res = runner.invoke(app, ["export", table, "--format", fmt, "-o", str(out), "--store", url,
                              *extra])
    assert res.exit_code == 0, res.output
    return out


def test_history_import_and_every_export_format(tmp_path: Path) -> None:
    rows = []
    for run, scale in (("small", 1.0), ("big", 0.8)):
        for step in range(0, 50, 5):
            rows.append({"run": run, "_step": step, "_runtime": step * 0.1,
                         "train/loss": scale * (3 - step / 100), "tokens": step * 4096,
                         "val/loss": scale * 3.1 - step / 90 if step % 10 == 0 else np.nan})
    history = tmp_path / "history.csv"
    pd.DataFrame(rows).to_csv(history, index=False)
    sizes = tmp_path / "sizes.csv"
    pd.DataFrame({"run": ["small", "big"], "params": [1000, 8000],
                  "tokens": [200_000, 200_000]}).to_csv(sizes, index=False)
    url = f"sqlite:///{tmp_path / 's.db'}"
    res = runner.invoke(app, ["import", "history", str(history), "--tokens-col", "tokens",
                              "--sizes", str(sizes), "--sweep", "wandb", "--store", url])
    assert res.exit_code == 0, res.output
    assert ("imported 20 rows from history.csv: 2 runs (2 new, 0 updated), 30 metric values "
            "(30 new) of train/loss, val/loss") in res.output
    with Store.open(url) as store:
        runs = store.runs(sweep="wandb").set_index("name")
        key = runs.loc["big", "run_key"]
        store.tag(run_key=key, add=["keep"])
    assert runs.loc["big", "N"] == 8000 and runs.loc["big", "C"] == 6.0 * 8000 * 200_000
    assert runs.loc["big", "final_loss"] == pytest.approx(0.8 * 3.1 - 40 / 90)

    frames = {fmt: _export(tmp_path, url, "metrics", fmt, "--tag", "keep")
              for fmt in ("csv", "parquet", "jsonl")}
    read = {"csv": pd.read_csv(frames["csv"]), "parquet": pd.read_parquet(frames["parquet"]),
            "jsonl": pd.read_json(frames["jsonl"], lines=True)}
    for fmt, df in read.items():
        assert set(df["run_key"]) == {key}, fmt
        val = df[df["name"] == "val/loss"].sort_values("step")
        assert val["step"].tolist() == [0, 10, 20, 30, 40]
        np.testing.assert_allclose(val["value"], [0.8 * 3.1 - s / 90 for s in range(0, 50, 10)],
                                   rtol=0, atol=1e-15)
        assert val["tokens"].tolist() == [s * 4096 for s in range(0, 50, 10)]
    runs_csv = pd.read_csv(_export(tmp_path, url, "runs", "csv"))
    assert sorted(runs_csv["name"]) == ["big", "small"]
    assert json.loads(runs_csv["config"].iloc[0])["source"] == "history.csv"
    bad = runner.invoke(app, ["import", "history", str(history), "--run-col", "model",
                              "--store", url])
    assert bad.exit_code == 1 and "no column 'model' (--run-col)" in bad.output


def test_import_csv_keeps_the_model_column_as_the_run_name(tmp_path: Path) -> None:
    csv = tmp_path / "published.csv"
    pd.DataFrame({"model": ["pythia-70m", "pythia-160m"], "N": [18_915_328, 85_056_000],
                  "D": [3e11, 3e11], "loss": [3.2, 2.9], "arc": [0.21, 0.23]}).to_csv(
        csv, index=False)
    url = f"sqlite:///{tmp_path / 's.db'}"
    res = runner.invoke(app, ["import-csv", str(csv), "--store", url])
    assert res.exit_code == 0, res.output
    with Store.open(url) as store:
        runs = store.runs()
        evals = store.evals()
    assert sorted(runs["name"]) == ["pythia-160m", "pythia-70m"]
    assert set(evals["task"]) == {"arc"}


def test_export_errors_are_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    res = runner.invoke(app, ["export", "runs", "-o", str(tmp_path / "no" / "x.csv"),
                              "--store", url])
    assert res.exit_code == 1 and "does not exist" in res.output
    res = runner.invoke(app, ["export", "fits", "--format", "xlsx", "-o", "x", "--store", url])
    assert res.exit_code != 0 and "Traceback" not in res.output
