"""The scaling view's adaptive decisions, an evaluation-only store's scaling and run views,
and the runs table's width, in a real headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_ui_browser import Watched
from ui_fixtures import running_ui
from ui_view_stores import adaptive_store, evaluation_only_store

from scaletrack.adaptive import decisions
from scaletrack.number_format import fmt_number
from scaletrack.store import open_read_only

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_scaling_view_draws_the_adaptive_decisions(chromium, tmp_path: Path) -> None:  # noqa: ANN001
    url, sweep = adaptive_store(tmp_path)
    with open_read_only(url) as store:
        recorded = decisions(store, sweep)
    with running_ui(url) as (base, _):
        w = Watched(chromium, base)
        w.open(f"#/scaling?sweep={sweep}")
        w.page.wait_for_selector("#adaptive-table")
        rows = w.page.eval_on_selector_all(
            "#adaptive-table tr[data-step]",
            "rs => rs.map(r => [r.dataset.step, r.dataset.action])")
        assert rows == [[str(r["step"]), r["action"]] for r in recorded]
        drawn = w.plot("chart-adaptive")
        measured = [r for r in recorded if r["width"] is not None and r["spent_flops"] > 0]
        assert drawn["data"][0]["x"] == pytest.approx([r["spent_flops"] for r in measured])
        assert drawn["data"][0]["y"] == pytest.approx([100 * r["width"] for r in measured])
        text = w.page.text_content("#adaptive")
        assert recorded[-1]["reason"] in text and "Never run" in text
        # the runs table scrolls in its own box: the page is no wider than the window
        w.open("#/runs")
        w.page.wait_for_selector("#runs tr[data-key]")
        page_width, window = w.page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]")
        assert page_width <= window
        assert not w.errors, w.errors
        w.close()


def test_evaluation_only_store_views(chromium, tmp_path: Path, shared_data: Path) -> None:  # noqa: ANN001
    url = evaluation_only_store(tmp_path, shared_data)
    with open_read_only(url) as store:
        run = store.runs().iloc[0]
    with running_ui(url) as (base, _):
        w = Watched(chromium, base)
        w.open("#/scaling")
        note = w.page.text_content("#chart-scaling")
        assert "no finished runs with a final loss" in note and "evaluation-only" in note
        assert w.page.locator("#chart-scaling svg").count() == 0  # no empty axis
        assert not w.page.locator("#chart-optimal").is_visible()

        w.open(f"#/run/{run.run_key}")
        assert w.page.text_content("#run-name") == run["name"]
        assert w.page.text_content("#run-key") == run.run_key
        assert "role cell" in w.page.text_content("#run-role")
        assert w.page.locator("#metric").count() == 0  # no empty metric select
        assert "No metrics logged" in w.page.text_content("#view")
        drawn = w.page.evaluate(
            "(() => { const d = document.getElementById('chart-evals');"
            " return {x: d.data[0].x, y: d.data[0].y, hover: d.data[0].customdata}; })()")
        assert drawn["x"] == sorted(drawn["x"])
        # hover text by the one number rule
        assert drawn["hover"][-1] == [fmt_number(drawn["x"][-1]), fmt_number(drawn["y"][-1])]
        assert not w.errors, w.errors
        w.close()
