"""`scaletrack show` of a run tracked with init/log shows the tokens each row was logged with
(not only the built-in trainer's "tokens" metric), and "-" for a run without a seed."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

import scaletrack
from scaletrack.analysis.curves import loss_curves
from scaletrack.cli.main import app
from scaletrack.number_format import fmt_number

runner = CliRunner()


def test_show_prints_tokens_of_a_tracked_run(store_url: str) -> None:
    with scaletrack.init(config={"x": 1}, params=1000, store=store_url) as run:
        for step in range(1, 4):
            run.log({"train/loss": 4.0 - step}, step=step, tokens=step * 4096)
        run.log({"val/loss": 1.5}, step=3, tokens=3 * 4096)
    res = runner.invoke(app, ["show", run.run_key, "--store", store_url],
                        env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    rows = [line.split() for line in res.output.splitlines()]
    table = {r[0]: r[1:] for r in rows if len(r) == 4 and r[0].isdigit()}
    assert table == {"1": [fmt_number(4096), "3", "-"], "2": [fmt_number(8192), "2", "-"],
                     "3": [fmt_number(12288), "1", "1.5"]}, res.output
    header = next(line for line in res.output.splitlines() if line.startswith("N "))
    assert "seed -" in header and "None" not in header


def test_curves_take_the_rows_tokens_then_a_tokens_metric() -> None:
    long = pd.DataFrame({
        "run_key": "r",
        "name": ["train/loss", "train/loss", "val/loss", "tokens", "train/loss"],
        "step": [1, 2, 2, 2, 3],
        "value": [3.0, 2.5, 2.6, 200.0, 2.0],
        "tokens": pd.array([100, None, None, None, None], dtype="Int64"),
        "wall_time": 0.0,
    })
    curves = loss_curves(long)
    assert curves["step"].tolist() == [1, 2, 3]
    assert curves["tokens"].tolist()[:2] == [100, 200] and pd.isna(curves["tokens"].iloc[2])
    assert curves["train/loss"].tolist() == [3.0, 2.5, 2.0]
