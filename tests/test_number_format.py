"""One number rule for the CLI, the figures and the dashboard (scaletrack.number_format)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from scaletrack.number_format import fmt_number

matplotlib.use("Agg")

APP_JS = Path(__file__).resolve().parent.parent / "scaletrack" / "ui" / "static" / "common.js"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(533_000_000, "5.33e8"), (5.76e23, "5.76e23"), (12_768, "1.28e4"), (999_999, "1e6"),
     (999_999_999, "1e9"), (2500, "2500"), (9999, "9999"), (9999.5, "1e4"), (2.21134, "2.211"),
     (0.051239, "0.05124"), (0.0004, "4e-4"), (0.00099999, "1e-3"), (0.001, "0.001"),
     (-12_768, "-1.28e4"), (0, "0"), (None, "-"), (math.nan, "-"), (math.inf, "inf"),
     (-math.inf, "-inf"), (np.int64(7 * 10**7), "7e7"), (np.float32(2.5), "2.5")],
)
def test_counts_in_e_notation_losses_in_four_digits(value: object, shown: str) -> None:
    assert fmt_number(value) == shown


def test_exact_halves_round_away_from_zero() -> None:
    # 12,250 is exactly halfway between 1.22e4 and 1.23e4 (Python's own "{:.2e}" rounds it
    # to even, JavaScript's toExponential away from zero): both sides must agree.
    assert f"{12_250:.2e}" == "1.22e+04"
    assert fmt_number(12_250) == "1.23e4" and fmt_number(-12_250) == "-1.23e4"
    assert fmt_number(1.0625) == "1.063"


def test_what_is_printed_reads_back_close_to_the_value() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([10 ** rng.uniform(-6, 26, 2000), -(10 ** rng.uniform(-6, 26, 50))])
    for value in values:
        shown = fmt_number(value)
        assert re.fullmatch(r"-?\d+(\.\d+)?(e-?\d+)?", shown), shown
        assert "e+" not in shown and "e0" not in shown and "e-0" not in shown
        digits = 3 if "e" in shown else 4
        assert math.isclose(float(shown), value, rel_tol=0.5 * 10 ** (1 - digits)), (value, shown)


def test_colour_bars_and_log_axes_use_the_rule_for_every_label() -> None:
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    from scaletrack.analysis.number_ticks import label_log_axis

    for lo, hi in ((1e4, 5e4), (3e6, 2e9)):  # minor ticks labelled, then decades only
        fig, ax = plt.subplots()
        points = ax.scatter([1, 2], [1, 2], c=[lo, hi], norm=LogNorm(lo, hi))
        bar = fig.colorbar(points, ax=ax)
        label_log_axis(bar.ax.yaxis)
        fig.canvas.draw()
        labels = [t.get_text() for t in (*bar.ax.yaxis.get_majorticklabels(),
                                         *bar.ax.yaxis.get_minorticklabels()) if t.get_text()]
        plt.close(fig)
        assert labels
        assert all(label == fmt_number(float(label)) for label in labels), labels


def _app_js_fmt() -> str:
    source = APP_JS.read_text()
    match = re.search(r"^export (function fmt\(v\) \{.*?^\})$", source, re.M | re.S)
    assert match, "common.js has no fmt function"
    return match.group(1)


@pytest.mark.browser
@pytest.mark.slow
def test_the_dashboard_writes_numbers_by_the_same_rule(chromium) -> None:
    rng = np.random.default_rng(5)
    values = [533_000_000, 5.76e23, 12_250, -12_250, 1.0625, 9999.5, 0.00099999, 2500, 0.0004,
              2.21134, 0, 7e7, 1e9, *(10 ** rng.uniform(-6, 26, 400)).tolist(),
              *np.round(10 ** rng.uniform(0, 9, 200)).tolist()]
    page = chromium.new_page()
    try:
        shown = page.evaluate(f"(values) => {{ {_app_js_fmt()} return values.map(fmt); }}", values)
    finally:
        page.close()
    assert shown == [fmt_number(v) for v in values]
