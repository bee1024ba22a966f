"""The form's extrapolation error as a prediction band: drift and spread learnt by reach.

A law fitted on small runs errs more, and often in one direction, the further a prediction
reaches beyond them. The calibration's grow-the-frontier back-tests (fit on the runs below a
quantile of the training set's compute or model size, predict the runs beyond; see
`calibration.inner_reach_pairs`) give, per held-out run, the signed log error
r = log(predicted) - log(observed) (loss nats) and its reach: d_C decades of the law's scale
variable (6·N·D FLOPs for Chinchilla) and d_N decades of N beyond the inner training runs.

The "frontier" model fits, by Gaussian maximum likelihood,

    r = b_C·d_C + b_N·d_N + sigma·z,   sigma^2 = s0^2 + (k_C·d_C)^2 + (k_N·d_N)^2,

(b in log loss per decade: the drift; k the growth of the spread per decade). A direction's
drift b is kept only where that direction's inner splits (at least two) all agree on the sign
of their mean error beyond their training runs; otherwise b = 0 and the drift is absorbed by
k, so it shows as width. With a drift the band is asymmetric: b < 0 means the law
under-predicts far out, and the band reaches higher. "frontier_hedged" (the default residual
model, chosen by the selection `scaletrack.analysis.calibration` describes) draws the drift as
u·(b_C·d_C + b_N·d_N) with u uniform on [0, 2]: a drift of uncertain size, centred on the
fitted one, that widens the band on its side as well as shifting it. z are the symmetrised
standardised inner residuals.

The "split_drift" models treat each inner split's drift as one draw of how the form errs when
it reaches beyond its training runs: residuals of one split share that split's drift, so they
are not independent evidence on it (pooling them, as "reach" does, sees the drift as scatter
shrunk by the split's size). Per split j, the drift per decade b_j = sum(r·x) / sum(x^2) over
its held-out runs, x its own direction's reach (d_C for compute splits, d_N for model-size
splits). A new run at reach (d_C, d_N) deviates by

    r = b_C·d_C + b_N·d_N + s0·z,

b_C drawn from the compute splits' b_j and b_N from the model-size splits' b_j: as they are
where that direction's splits (at least two) agree on the sign (an asymmetric band), else
symmetrised (each b_j and -b_j); "split_drift_symmetric" always symmetrises. s0·z: the
residuals less their own split's drift, symmetrised. `FitResult.predict_interval` draws the
deviation of a new run from the model at the point's own reach (`frontier_draws`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize

SPLIT_DRIFT_MODELS = ("split_drift", "split_drift_symmetric")
FRONTIER_MODELS = ("frontier", "frontier_hedged", *SPLIT_DRIFT_MODELS)
_HEDGE_MAX = 2.0  # u ~ uniform(0, _HEDGE_MAX): mean 1, the fitted drift


def drift_agreed(r: np.ndarray, beyond: np.ndarray, split: np.ndarray, prefix: str) -> bool:
    """True when the inner splits whose name starts with `prefix` ("C" or "N"; at least two
    with runs beyond their training set) all agree on the sign of their mean error r there."""
    signs = []
    for name in dict.fromkeys(split.tolist()):
        sel = (split == name) & beyond
        if name.startswith(prefix) and sel.any():
            signs.append(np.sign(r[sel].mean()))
    return len(signs) >= 2 and (all(s > 0 for s in signs) or all(s < 0 for s in signs))


def fit_frontier_model(pairs: dict[str, list], *, hedged: bool = False) -> dict[str, Any]:
    """Fit the frontier model to `calibration.inner_reach_pairs` output (lists r, d, d_n,
    split). Returns {"name", "s0", "k_C", "k_N", "b_C", "b_N", "drift_C", "drift_N", "z"}:
    drift_X says whether direction X's splits agreed on the sign (else b_X = 0)."""
    r = np.asarray(pairs["r"], dtype=float)
    d_c = np.asarray(pairs["d"], dtype=float)
    d_n = np.asarray(pairs["d_n"], dtype=float)
    split = np.asarray(pairs["split"])
    beyond = (d_c > 0) | (d_n > 0)
    free_c = drift_agreed(r, beyond, split, "C")
    free_n = drift_agreed(r, beyond, split, "N")

    def unpack(theta: np.ndarray) -> tuple[float, float, float, float, float]:
        s0, k_c, k_n = float(np.exp(theta[0])), float(abs(theta[1])), float(abs(theta[2]))
        return s0, k_c, k_n, float(theta[3]) if free_c else 0.0, float(theta[4]) if free_n \
            else 0.0

    def nll(theta: np.ndarray) -> float:
        s0, k_c, k_n, b_c, b_n = unpack(theta)
        var = s0 * s0 + (k_c * d_c) ** 2 + (k_n * d_n) ** 2
        return float(np.sum(np.log(var) + (r - b_c * d_c - b_n * d_n) ** 2 / var))

    s_all = float(np.sqrt(np.mean(r * r))) or 1e-12
    starts = [np.array([np.log(s_all), k0, k0, 0.0, 0.0]) for k0 in (0.0, s_all, 5 * s_all)]
    best = min((minimize(nll, x0, method="Nelder-Mead",
                         options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 6000})
                for x0 in starts), key=lambda o: o.fun)
    s0, k_c, k_n, b_c, b_n = unpack(best.x)
    sigma = np.sqrt(s0 * s0 + (k_c * d_c) ** 2 + (k_n * d_n) ** 2)
    z = (r - b_c * d_c - b_n * d_n) / sigma
    return {"name": "frontier_hedged" if hedged else "frontier", "s0": s0, "k_C": k_c,
            "k_N": k_n, "b_C": b_c, "b_N": b_n, "drift_C": free_c, "drift_N": free_n,
            "z": np.concatenate([z, -z]).tolist()}


def fit_split_drift_model(pairs: dict[str, list], *, symmetric: bool = False
                          ) -> dict[str, Any]:
    """The "split_drift" model from `calibration.inner_reach_pairs` output (lists r, d, d_n,
    split). Returns {"name", "s0", "drifts_C", "drifts_N", "drift_C", "drift_N", "z"}:
    drifts_X the drift per decade to draw from for direction X (empty: none), drift_X whether
    its splits agreed on the sign (kept as is) or not (symmetrised)."""
    r = np.asarray(pairs["r"], dtype=float)
    reach = {"C": np.asarray(pairs["d"], dtype=float), "N": np.asarray(pairs["d_n"], dtype=float)}
    split = np.asarray(pairs["split"])
    resid = r.copy()
    slopes: dict[str, list[float]] = {"C": [], "N": []}
    for name in dict.fromkeys(split.tolist()):
        direction = "N" if name.startswith("N") else "C"
        sel = split == name
        x = reach[direction][sel]
        xx = float(np.sum(x * x))
        if xx <= 0.0:
            continue
        b = float(np.sum(r[sel] * x) / xx)
        slopes[direction].append(b)
        resid[sel] = r[sel] - b * x
    out: dict[str, Any] = {"name": "split_drift_symmetric" if symmetric else "split_drift"}
    for direction, b_all in slopes.items():
        b_arr = np.asarray(b_all, dtype=float)
        agreed = (not symmetric and b_arr.size >= 2
                  and (bool(np.all(b_arr > 0)) or bool(np.all(b_arr < 0))))
        out[f"drift_{direction}"] = agreed
        out[f"drifts_{direction}"] = (b_arr if agreed else np.concatenate([b_arr, -b_arr])
                                      ).tolist()
    s0 = float(np.sqrt(np.mean(resid * resid))) or 1e-12
    z = resid / s0
    return {**out, "s0": s0, "z": np.concatenate([z, -z]).tolist()}


def _drawn_drift(model: dict[str, Any], direction: str, rows: int,
                 rng: np.random.Generator) -> np.ndarray:
    """A split drift per row (log loss per decade) for `direction`: shape (rows, 1)."""
    b = np.asarray(model.get(f"drifts_{direction}") or [0.0], dtype=float)
    return b[rng.integers(0, b.size, size=(rows, 1))]


def frontier_draws(model: dict[str, Any], rows: int, d_c: np.ndarray, d_n: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """Deviations r = log(predicted) - log(observed) of new runs at reach d_C, d_N
    (decades, one per point): shape (rows, points)."""
    z = np.asarray(model["z"], dtype=float)
    z = z[rng.integers(0, z.size, size=(rows, 1))]
    d_c = np.asarray(d_c, dtype=float)[None, :]
    d_n = np.asarray(d_n, dtype=float)[None, :]
    if model["name"] in SPLIT_DRIFT_MODELS:
        return (_drawn_drift(model, "C", rows, rng) * d_c
                + _drawn_drift(model, "N", rows, rng) * d_n + float(model["s0"]) * z)
    s0, k_c, k_n = (float(model[k]) for k in ("s0", "k_C", "k_N"))
    drift = float(model["b_C"]) * d_c + float(model["b_N"]) * d_n
    if model["name"] == "frontier_hedged":
        drift = drift * rng.uniform(0.0, _HEDGE_MAX, size=(rows, 1))
    return drift + np.sqrt(s0 * s0 + (k_c * d_c) ** 2 + (k_n * d_n) ** 2) * z
