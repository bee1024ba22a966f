"""FitResult: immutable, predicts, JSON round-trip, storable."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from test_fit_chinchilla import synthetic_runs
from test_fit_isoflop import isoflop_runs

from scaletrack.analysis import (
    FitResult,
    fit_chinchilla,
    fit_compute_law,
    fit_isoflop,
    fit_power_law,
)


@pytest.fixture(scope="module")
def fits() -> list[FitResult]:
    runs = synthetic_runs(n=60)
    return [
        fit_chinchilla(runs, n_bootstrap=20),
        fit_compute_law(runs, n_bootstrap=20),
        fit_power_law(runs, x="N", irreducible=False, n_bootstrap=20),
        fit_isoflop(isoflop_runs(), n_bootstrap=20),
    ]


def test_json_round_trip_preserves_everything(fits):
    for fit in fits:
        text = fit.to_json()
        json.loads(text)  # strict JSON
        back = FitResult.from_json(text)
        assert back == fit
        assert back.params == fit.params
        assert back.ci95 == fit.ci95
        assert back.residuals == fit.residuals
        assert dict(back.selection) == dict(fit.selection)
        assert FitResult.from_dict(fit.to_dict()) == fit
        x = pd.DataFrame({"N": [1e8, 1e9], "D": [1e10, 2e10], "C": [6e18, 1.2e20]})
        assert np.allclose(back.predict(x), fit.predict(x))


def test_nan_intervals_become_null_and_back():
    fit = fit_compute_law(synthetic_runs(n=30), n_bootstrap=0)
    data = fit.to_dict()
    assert data["ci95"]["E"] == [None, None]
    assert "NaN" not in fit.to_json()
    back = FitResult.from_json(fit.to_json())
    assert math.isnan(back.ci95["E"][0])


def test_result_is_immutable(fits):
    fit = fits[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.form = "compute"  # type: ignore[misc]
    with pytest.raises(TypeError):
        fit.params["E"] = 0.0  # type: ignore[index]


def test_predict_shapes(fits):
    chin, comp, kaplan, iso = fits
    assert chin.predict(np.ones(5) * 1e9, np.ones(5) * 1e11).shape == (5,)
    assert chin.predict(1e9, np.array([1e10, 1e11, 1e12])).shape == (3,)
    assert comp.predict(np.array([[1e20, 1e21]])).shape == (1, 2)
    assert kaplan.predict(N=np.array([1e8, 1e9])).shape == (2,)
    assert iso.predict(np.array([1e21, 1e22])).shape == (2,)
    with pytest.raises(TypeError):
        chin.predict(1e9)


def test_summary_lists_parameters(fits):
    table = fits[0].summary()
    assert list(table["param"]) == ["E", "A", "B", "alpha", "beta"]
    assert (table["ci_low"] <= table["ci_high"]).all()


def test_unknown_form_rejected():
    with pytest.raises(ValueError, match="unknown fit form"):
        FitResult(form="cubic", params={}, ci95={}, residuals=(), selection={}, n_points=0)


def test_stored_fit_round_trips_through_the_store(tmp_path, fits):
    import scaletrack.store as store_mod
    with store_mod.Store.open(f"sqlite:///{tmp_path / 'fits.db'}") as st:
        fit_id = st.save_fit(fits[0].form, fits[0].to_dict(), sweep=None, label="test")
        row = st.fits(form="chinchilla").set_index("id").loc[fit_id]
    assert FitResult.from_dict(row["payload"]) == fits[0]
