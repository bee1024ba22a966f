"""Cached analysis results are keyed on the analysis code, not only on the version string."""

from __future__ import annotations

import pandas as pd
import pytest

from scaletrack import scaling_fits
from scaletrack.analysis import code_version


def test_code_version_is_stable_and_hex() -> None:
    first = code_version.analysis_code_version()
    assert first == code_version.analysis_code_version()
    assert len(first) == 32 and int(first, 16) >= 0


def test_scaling_cache_key_changes_with_the_analysis_code(monkeypatch: pytest.MonkeyPatch) -> None:
    points = pd.DataFrame({"C": [1e15, 1e16, 1e17], "loss": [3.0, 2.7, 2.5]})
    before = scaling_fits._key("compute", points, {"n_boot": 200})
    assert before == scaling_fits._key("compute", points, {"n_boot": 200})
    monkeypatch.setattr(code_version, "analysis_code_version", lambda: "other code")
    assert scaling_fits._key("compute", points, {"n_boot": 200}) != before

