"""Single-run prediction bands when the fit used seed means: the per-run scatter that seed
averaging hides is put back (seeds kept for the noise model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from test_fit_chinchilla import TRUE

from scaletrack.analysis import fit_chinchilla
from scaletrack.analysis.calibration import seed_scatter
from scaletrack.analysis.selection import select_points

NOISE = 0.02  # per-run scatter in log loss


def law(n: np.ndarray, d: np.ndarray) -> np.ndarray:
    return TRUE["E"] + TRUE["A"] * n ** -TRUE["alpha"] + TRUE["B"] * d ** -TRUE["beta"]


def seeded_grid(rng: np.random.Generator, seeds: int = 4) -> pd.DataFrame:
    n = np.repeat(np.geomspace(5e7, 2e9, 6), 6)
    d = np.tile(np.geomspace(1e9, 5e10, 6), 6)
    rows = [pd.DataFrame({"N": n, "D": d, "seed": s,
                          "loss": law(n, d) * np.exp(rng.normal(0, NOISE, n.size))})
            for s in range(seeds)]
    df = pd.concat(rows, ignore_index=True)
    return df.assign(C=6 * df["N"] * df["D"])


def test_seed_scatter_is_learnt_from_the_seeds():
    points, how = select_points(seeded_grid(np.random.default_rng(0)), "chinchilla")
    assert len(points) == 36 and "per-run scatter" in how
    s = seed_scatter(points)
    assert abs(s["sd"] - NOISE) < 0.003 and s["inv_seeds"] == 0.25


def test_single_new_runs_land_in_the_band_at_the_stated_rate():
    rng = np.random.default_rng(1)
    inside, narrow = [], []
    for _ in range(3):
        points, _ = select_points(seeded_grid(rng), "chinchilla")
        fit = fit_chinchilla(points, n_bootstrap=100, calibrate=False)
        n = points["N"].to_numpy()
        d = points["D"].to_numpy()
        band = fit.predict_interval(N=n, D=d)
        new = law(n, d) * np.exp(rng.normal(0, NOISE, n.size))
        inside.append((band["lo"] <= new) & (new <= band["hi"]))
        plain = fit_chinchilla(points.drop(columns=["seed_log_var"]), n_bootstrap=100,
                               calibrate=False).predict_interval(N=n, D=d)
        narrow.append((plain["lo"] <= new) & (new <= plain["hi"]))
    cover, cover_means_only = np.mean(np.concatenate(inside)), np.mean(np.concatenate(narrow))
    assert 0.9 <= cover <= 0.995, cover
    assert cover_means_only < cover
