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
        FitResult(form="cubic", params={}, ci={}, residuals=(), selection={}, n_points=0)


def test_stored_fit_round_trips_through_the_store(tmp_path, fits):
    import scaletrack.store as store_mod
    with store_mod.Store.open(f"sqlite:///{tmp_path / 'fits.db'}") as st:
        fit_id = st.save_fit(fits[0].form, fits[0].to_dict(), sweep=None, label="test")
        row = st.fits(form="chinchilla").set_index("id").loc[fit_id]
    assert FitResult.from_dict(row["payload"]) == fits[0]


def _schema_1_payload(fit: FitResult) -> dict:
    """The payload an earlier version stored: draws in extra["bootstrap_params"], schema 1."""
    data = fit.to_dict()
    data["schema"] = 1
    data["extra"]["bootstrap_params"] = data.pop("boot_params")
    return data


def test_bootstrap_draws_are_a_typed_array(fits):
    for fit in fits:
        assert isinstance(fit.boot_params, np.ndarray)
        assert fit.boot_params.shape == (20, len(fit.params))
        assert fit.param_names == tuple(fit.params)
        assert "bootstrap_params" not in fit.extra
        with pytest.raises(ValueError):
            fit.boot_params[0, 0] = 1.0  # read-only
        samples = fit.bootstrap_samples()
        assert np.array_equal(samples[fit.param_names[-1]], fit.boot_params[:, -1],
                              equal_nan=True)


def test_payload_stored_by_an_earlier_version_loads(tmp_path, fits):
    import scaletrack.store as store_mod
    chin, comp = fits[0], fits[1]
    with store_mod.Store.open(f"sqlite:///{tmp_path / 'old.db'}") as st:
        for fit in (chin, comp):
            st.save_fit(fit.form, _schema_1_payload(fit), sweep=None, label="old")
        stored = st.fits().sort_values("id")["payload"].tolist()
    for fit, payload in zip((chin, comp), stored, strict=True):
        assert "boot_params" not in payload and payload["schema"] == 1
        back = FitResult.from_dict(payload)
        assert back == fit
        assert np.array_equal(back.boot_params, fit.boot_params, equal_nan=True)
        assert "bootstrap_params" not in back.extra
    band_old = FitResult.from_dict(stored[1]).predict_interval([1e22, 1e23], kind="confidence")
    band_now = comp.predict_interval([1e22, 1e23], kind="confidence")
    assert band_old.equals(band_now) and band_old["lo"].notna().all()


def test_draws_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match="boot_params"):
        FitResult(form="compute", params={"E": 1.0, "a": 2.0, "alpha": 0.1},
                  boot_params=np.ones((4, 2)))
