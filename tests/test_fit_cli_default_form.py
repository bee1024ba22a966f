"""`scaletrack fit --sweep NAME` as the docs write it (no --form) fits the Chinchilla law."""

from __future__ import annotations

import json

from test_fit_chinchilla import synthetic_runs
from typer.testing import CliRunner

import scaletrack.store as store_mod
from scaletrack.cli.main import app

runner = CliRunner()


def test_fit_without_form_fits_chinchilla_and_saves_it(tmp_path) -> None:
    csv = tmp_path / "runs.csv"
    synthetic_runs(n=40).to_csv(csv, index=False)
    url = f"sqlite:///{tmp_path / 'st.db'}"
    res = runner.invoke(app, ["import-csv", str(csv), "--sweep", "pub", "--store", url])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["fit", "--sweep", "pub", "--bootstrap", "10", "--json",
                              "--store", url])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["form"] == "chinchilla" and out["n_points"] == 40
    with store_mod.Store.open(url) as st:
        fits = st.fits(form="chinchilla")
    assert list(fits["sweep"]) == ["pub"]

