"""Emergence figures and the `scaletrack emergence` command (CSV and store inputs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scaletrack.analysis.classify import classify_task
from scaletrack.analysis.emergence import sigmoid_value
from scaletrack.analysis.emergence_plots import plot_idea_timeline, plot_task_emergence
from scaletrack.analysis.figures import save_figure
from scaletrack.cli.main import app
from scaletrack.store import CheckpointRecord, Store

runner = CliRunner()


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for task, hi, mid in (("far_task", 19.0, 22.0), ("past_task", 23.5, 20.0),
                          ("near_task", 20.6, 21.0)):
        x = np.logspace(18, hi, 12)
        y = sigmoid_value(x, 0.25, 0.9, 2.0, mid) + rng.normal(0, 0.01, size=x.size)
        rows += [{"task": task, "flops": a, "acc": b} for a, b in zip(x, y, strict=True)]
    return pd.DataFrame(rows)


def _png_ok(path: Path) -> bool:
    head = path.read_bytes()[:8] if path.is_file() else b""
    return head == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_task_plot_writes_png_and_svg(tmp_path: Path) -> None:
    df = _frame()
    g = df[df.task == "near_task"]
    r = classify_task(g.flops, g.acc, task="near_task", chance=0.25, threshold=0.6, n_bootstrap=30)
    written = save_figure(plot_task_emergence(g.flops, g.acc, r), tmp_path / "near")
    assert [p.suffix for p in written] == [".png", ".svg"]
    assert _png_ok(written[0])
    assert "<svg" in written[1].read_text()[:500]


def test_idea_timeline_plot(tmp_path: Path) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ideas = pd.DataFrame({"id": [1, 2], "title": ["longer context", "no attempts"],
                          "threshold": [0.6, 0.3], "direction": ["above", "below"],
                          "status": ["works", "not-yet"]})
    attempts = pd.DataFrame({"idea_id": [1, 1, 1], "flops": [1e18, 1e19, 1e20],
                             "value": [0.3, 0.5, 0.7], "passed": [False, False, True],
                             "created_at": [t0 + timedelta(days=i) for i in range(3)]})
    written = save_figure(plot_idea_timeline(attempts, ideas), tmp_path / "timeline.png")
    assert _png_ok(written[0]) and written[1].suffix == ".svg"
    fig, axes = plt.subplots(1, 2)
    try:
        assert plot_idea_timeline(attempts, ideas, ax=axes) is fig
        assert axes[0].get_title().startswith("#1 longer context")
    finally:
        plt.close(fig)


def test_task_plot_draws_on_the_callers_axes(tmp_path: Path) -> None:
    df = _frame()
    g = df[df.task == "near_task"]
    r = classify_task(g.flops, g.acc, task="near_task", chance=0.25, threshold=0.6, n_bootstrap=30)
    fig, ax = plt.subplots()
    try:
        assert plot_task_emergence(g.flops, g.acc, r, ax=ax) is fig
        assert ax.get_xscale() == "log" and len(ax.collections) >= 2  # points and band
    finally:
        plt.close(fig)


def test_cli_csv_table_json_and_plot(tmp_path: Path) -> None:
    csv = tmp_path / "evals.csv"
    _frame().to_csv(csv, index=False)
    res = runner.invoke(app, ["emergence", "--csv", str(csv), "--x-col", "flops",
                              "--value-col", "acc", "--chance", "0.25", "--threshold", "0.6",
                              "--bootstrap", "30", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["task"]: r for r in json.loads(res.stdout)}
    assert rows["far_task"]["label"] == "far"
    assert rows["past_task"]["label"] == "past"
    assert rows["near_task"]["label"] == "near"
    assert rows["near_task"]["crossing_lo"] <= rows["near_task"]["crossing"]
    res = runner.invoke(app, ["emergence", "--csv", str(csv), "--x-col", "flops",
                              "--value-col", "acc", "--chance", "0.25", "--bootstrap", "0",
                              "--plot", str(tmp_path / "grid")])
    assert res.exit_code == 0, res.output
    assert "past_task" in res.output
    assert _png_ok(tmp_path / "grid.png")


def test_cli_notes_the_loss_like_metrics_it_left_out(tmp_path: Path) -> None:
    df = _frame().rename(columns={"acc": "value"}).assign(metric="acc")
    bpb = df[df.task == "near_task"].assign(metric="bpb", value=lambda d: 2.0 - d["value"])
    csv = tmp_path / "evals.csv"
    pd.concat([df, bpb]).to_csv(csv, index=False)
    args = ["emergence", "--csv", str(csv), "--metric-col", "metric", "--chance", "0.25",
            "--threshold", "0.6", "--bootstrap", "0"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "left out (looks like a loss): bpb" in res.output
    assert "--lower-is-better" in res.output
    assert "far_task" in res.output and "bpb" not in res.stdout
    forced = runner.invoke(app, ["emergence", "--csv", str(csv), "--metric-col", "metric",
                                 "--bootstrap", "0", "--lower-is-better", "bpb"])
    assert forced.exit_code == 0, forced.output
    assert "classified as lower-is-better: bpb" in forced.output
    both = runner.invoke(app, [*args, "--lower-is-better", "bpb", "--higher-is-better", "bpb"])
    assert both.exit_code != 0 and "both --lower-is-better and" in both.output
    assert "Traceback" not in both.output


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    csv = tmp_path / "evals.csv"
    _frame().to_csv(csv, index=False)
    res = runner.invoke(app, ["emergence", "--csv", str(csv), "--x-col", "compute"])
    assert res.exit_code == 1
    assert "'compute'" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["emergence", "--csv", str(tmp_path / "missing.csv")])
    assert res.exit_code == 1 and "does not exist" in res.output


def test_cli_reads_store_evals(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'st.db'}"
    with Store.open(url) as st:
        for i, n in enumerate(np.logspace(7, 10, 8)):
            tokens = int(20 * n)
            cid = st.add_checkpoint(CheckpointRecord(
                id=None, run_key=None, kind="external", N=int(n), tokens=tokens,
                flops=None if i % 2 else 6.0 * n * tokens, step=None,
                path=str(tmp_path / f"ck{i}.safetensors"), sha256=None, loader=None))
            c = 6.0 * n * tokens
            st.add_eval(cid, "addition", "acc", float(sigmoid_value(c, 0.0, 1.0, 3.0, 19.0)))
            st.add_eval(cid, "flat", "acc", 0.01)
    res = runner.invoke(app, ["emergence", "--store", url, "--chance", "0", "--bootstrap", "20",
                              "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["task"]: r for r in json.loads(res.stdout)}
    assert rows["addition"]["label"] == "past"
    assert abs(np.log10(rows["addition"]["crossing"]) - 19.0) < 0.1
    assert rows["flat"]["label"] == "far"
    res = runner.invoke(app, ["emergence", "--store", url, "--task", "addition", "--json",
                              "--bootstrap", "0"])
    assert [r["task"] for r in json.loads(res.stdout)] == ["addition"]
    res = runner.invoke(app, ["emergence", "--store", url, "--task", "nope"])
    assert res.exit_code == 1 and "no evaluation rows" in res.output


@pytest.mark.parametrize("bad", ["nan", "", "inf", "abc"])
def test_a_bad_value_in_an_emergence_csv_is_one_line(tmp_path: Path, bad: str) -> None:
    csv = tmp_path / "evals.csv"
    csv.write_text("task,flops,acc\nt,1e18,0.1\nt,1e19,0.2\nt,1e20," + bad + "\nt,1e21,0.9\n")
    res = runner.invoke(app, ["emergence", "--csv", str(csv), "--x-col", "flops",
                              "--value-col", "acc", "--bootstrap", "0"])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert ("column 'acc' is not numeric: line 4" if bad == "abc" else
            "column 'acc' has a missing or non-finite value at line 4") in res.output
    scale = tmp_path / "scale.csv"
    scale.write_text("task,flops,acc\nt,1e18,0.1\nt,-1,0.2\nt,1e20,0.5\nt,1e21,0.9\n")
    res = runner.invoke(app, ["emergence", "--csv", str(scale), "--x-col", "flops",
                              "--value-col", "acc", "--bootstrap", "0"])
    assert res.exit_code != 0 and "column 'flops' must be > 0; line 3" in res.output
