"""An adaptive sweep's band at the target is shown as what it is: a width in %, "none yet"
before a fit has its runs, "unbounded" when a degenerate refit's band is infinite or many times
the predicted loss wide (never a number like 7.41e12 %). Decisions recorded with such a width
read back the same way in `decisions`, `sweep status` and the dashboard's /api/adaptive."""

from __future__ import annotations

import math

from typer.testing import CliRunner

from scaletrack.adaptive import (
    DECISION_FORM,
    MAX_BAND_WIDTH,
    MIN_FIT_POINTS,
    AdaptiveSettings,
    AdaptiveStep,
    _Band,
    band_text,
    decisions,
)
from scaletrack.cli.main import app
from scaletrack.store import Store
from scaletrack.ui.sweep_data import adaptive_steps

HUGE = 7.414753288394731e10  # relative width a degenerate refit gave (7.41e12 %)


def test_band_text_says_what_a_band_is() -> None:
    assert band_text(0.1965, 9) == "19.65 %"
    assert band_text(None, MIN_FIT_POINTS - 1) == "none yet"
    assert band_text(None, 12) == "none (no usable fit)"
    for width in (HUGE, math.inf, MAX_BAND_WIDTH * 1.01):
        assert band_text(width, 12).startswith("unbounded")
        assert "%" not in band_text(width, 12)
    reason = "beta at a bound"
    assert band_text(math.inf, 12, reason) == f"unbounded (fit degenerate: {reason})"


def test_an_unbounded_refit_is_recorded_as_unbounded_not_a_width() -> None:
    band = _Band(fit=None, width=None, prediction=1.2, c_star=1e14, untrusted="E at a bound",
                 unbounded=True)
    step = AdaptiveStep(step=8, action="run", reason="first of 5 planned", size="L2",
                        D=409_600.0, n_points=8, width=band.width, band=band.text(8))
    payload = step.to_payload(AdaptiveSettings(until_width=0.02, target_compute=1e14), 1e12)
    assert payload["width"] is None
    assert payload["band"] == "unbounded (fit degenerate: E at a bound)"


def record_old_style(url: str, sweep: str) -> None:
    """Decisions as a store holds them from before the band text: a number for the width."""
    common = {"until_width": 0.02, "target_compute": 1e14, "budget": 1e12,
              "full_grid_flops": 1e12, "skipped": [], "prediction": 1.0, "N": 2.55e4,
              "cell_flops": 1e10, "run_key": None}
    rows = [
        {"step": 1, "action": "run", "reason": "prior's order", "size": "L1", "D": 102_400.0,
         "spent_flops": 4.9e9, "n_points": 1, "width": None},
        {"step": 2, "action": "run", "reason": "first of 5 planned", "size": "L2",
         "D": 409_600.0, "spent_flops": 2.4e11, "n_points": 8, "width": HUGE},
        {"step": 3, "action": "stop", "reason": "every cell is trained", "size": None,
         "D": None, "spent_flops": 9.3e11, "n_points": 9, "width": 0.7941},
    ]
    with Store.open(url) as store:
        store.upsert_sweep(sweep, {"name": sweep})
        for row in rows:
            store.save_fit(DECISION_FORM, {**common, **row}, sweep=sweep, label=str(row["step"]))


def test_recorded_unbounded_widths_read_as_unbounded_everywhere(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'st.db'}"
    record_old_style(url, "next")
    with Store.open(url) as store:
        rows = decisions(store, "next")
        api = adaptive_steps(store, "next")
    assert [r["band"] for r in rows] == ["none yet", "unbounded (fit degenerate)", "79.41 %"]
    assert [r["width"] for r in rows] == [None, None, 0.7941]
    assert [s["band"] for s in api["steps"]] == [r["band"] for r in rows]
    assert api["steps"][1]["width"] is None

    res = CliRunner().invoke(app, ["sweep", "status", "next", "--store", url],
                             terminal_width=240)
    assert res.exit_code == 0, res.output
    assert "unbounded" in res.output and "79.41 %" in res.output
    assert "e+10" not in res.output and "7.41e" not in res.output
