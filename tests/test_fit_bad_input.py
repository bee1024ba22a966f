"""Bad input to the fits raises DataError naming the column and row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scaletrack.analysis import backtest, fit_chinchilla, fit_compute_law, fit_isoflop, read_fit_csv
from scaletrack.errors import DataError


def good() -> pd.DataFrame:
    n = np.geomspace(1e7, 1e9, 8)
    d = np.geomspace(1e9, 1e11, 8)[::-1]
    return pd.DataFrame({"N": n, "D": d, "loss": 2 + 100 * n**-0.3 + 300 * d**-0.3})


@pytest.mark.parametrize("fit", [fit_chinchilla, fit_compute_law, fit_isoflop])
def test_missing_column(fit):
    with pytest.raises(DataError, match="missing column.*'loss'"):
        fit(good().drop(columns="loss"), n_bootstrap=0)


def test_non_numeric_value_names_column_and_row():
    df = good().astype({"N": object})
    df.loc[3, "N"] = "big"
    with pytest.raises(DataError, match=r"'N' is not numeric: row 3 has 'big'"):
        fit_chinchilla(df, n_bootstrap=0)


def test_non_positive_size_names_row():
    df = good()
    df.loc[5, "N"] = 0.0
    with pytest.raises(DataError, match=r"'N' must be > 0; row 5"):
        fit_chinchilla(df, n_bootstrap=0)
    df = good()
    df.loc[2, "D"] = -1.0
    with pytest.raises(DataError, match=r"'D' must be > 0; row 2"):
        fit_chinchilla(df, n_bootstrap=0)


def test_nan_loss_names_row():
    df = good()
    df.loc[4, "loss"] = np.nan
    for fit in (fit_chinchilla, fit_compute_law):
        with pytest.raises(DataError, match=r"'loss' has a missing or non-finite value at row 4"):
            fit(df, n_bootstrap=0)


def test_too_few_rows():
    with pytest.raises(DataError, match="needs at least 7 points"):
        fit_chinchilla(good().head(3), n_bootstrap=0)


def test_not_a_frame():
    with pytest.raises(DataError, match="DataFrame"):
        fit_chinchilla([[1, 2, 3]], n_bootstrap=0)  # type: ignore[arg-type]


def test_csv_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_fit_csv(tmp_path / "missing.csv")
    path = tmp_path / "runs.csv"
    good().rename(columns={"N": "params"}).to_csv(path, index=False)
    with pytest.raises(DataError, match="no column 'size'"):
        read_fit_csv(path, columns={"N": "size"})
    df = read_fit_csv(path, columns={"N": "params"})
    assert {"N", "D", "C", "loss"} <= set(df.columns)


def test_backtest_without_heldout_runs():
    with pytest.raises(DataError, match="no runs at or above"):
        backtest(good(), "chinchilla", threshold_C=1e40)
    with pytest.raises(DataError, match="form must be one of"):
        backtest(good(), "isoflop", threshold_C=1e18)
