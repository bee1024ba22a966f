"""Single-variable power laws: L(x) = E + a·x^(-alpha) for x in N (params), D (tokens) or
C (FLOPs), with or without the irreducible loss E (Kaplan et al. 2020 drop it).

Fitted by least squares on log L (residual log L_hat - log L) from a small grid of starts;
intervals are bootstrap percentiles (each resample warm-started from the full-data optimum).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from scaletrack.analysis.bootstrap import percentile_interval
from scaletrack.analysis.calibration import calibrate_scatter, seed_scatter
from scaletrack.analysis.chinchilla import check_degrees_of_freedom
from scaletrack.analysis.io import validate_frame
from scaletrack.analysis.result import FitResult
from scaletrack.analysis.status import assess_fit
from scaletrack.errors import DataError

_ALPHA_STARTS = (0.05, 0.15, 0.3, 0.6, 1.0)
_E_FRACTIONS = (0.2, 0.6, 0.9)  # of the smallest observed loss


def _fit_log_ls(
    xc: np.ndarray, y: np.ndarray, irreducible: bool, starts: list[np.ndarray],
    free: np.ndarray | None = None,
) -> np.ndarray | None:
    """Best theta = (log a_c, alpha[, log E]) for log L = log(E + exp(log a_c - alpha·xc));
    coordinates where `free` is False stay at their starting values."""
    k = 3 if irreducible else 2
    free = np.ones(k, dtype=bool) if free is None else free[:k]

    def full(t: np.ndarray, t0: np.ndarray) -> np.ndarray:
        out = t0.copy()
        out[free] = t
        return out

    def resid_full(t: np.ndarray) -> np.ndarray:
        core = t[0] - t[1] * xc
        return np.logaddexp(core, t[2]) - y if irreducible else core - y

    def jac_full(t: np.ndarray) -> np.ndarray:
        core = t[0] - t[1] * xc
        if not irreducible:
            return np.stack([np.ones_like(xc), -xc], axis=1)
        w = np.exp(core - np.logaddexp(core, t[2]))
        return np.stack([w, -w * xc, 1.0 - w], axis=1)

    best, best_cost = None, np.inf
    for t0 in starts:
        t0 = np.asarray(t0, dtype=float)[:k]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = least_squares(lambda t, t0=t0: resid_full(full(t, t0)), t0[free],
                                jac=lambda t, t0=t0: jac_full(full(t, t0))[:, free],
                                method="lm" if free.sum() <= y.size else "trf",
                                xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=2000)
        x = full(res.x, t0)
        if np.all(np.isfinite(x)) and res.cost < best_cost:
            best, best_cost = x, res.cost
    return best


def _starts(xc: np.ndarray, y: np.ndarray, irreducible: bool) -> list[np.ndarray]:
    loss = np.exp(y)
    out = []
    if not irreducible:
        slope, intercept = np.polyfit(xc, y, 1)
        return [np.array([intercept, -slope])]
    for alpha, frac in itertools.product(_ALPHA_STARTS, _E_FRACTIONS):
        e = frac * loss.min()
        la = float(np.mean(np.log(np.maximum(loss - e, 1e-12)) + alpha * xc))
        out.append(np.array([la, alpha, np.log(e)]))
    return out


def fit_power_law(
    df: pd.DataFrame,
    x: str = "N",
    *,
    irreducible: bool = True,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    fix: Mapping[str, float] | None = None,
    target: float | None = None,
    calibrate: bool | None = None,
) -> FitResult:
    """Fit L(x) = E + a·x^(-alpha) (loss in nats) with x = "N", "D" or "C".

    `irreducible=False` (or `fix={"E": 0}`) fixes E = 0 (Kaplan's L = (x_c/x)^alpha,
    a = x_c^alpha); then the fit is ordinary least squares in log-log space. `fix` holds any
    of E, a, alpha at a value. Needs at least (free parameters + 2) points. `target` (units
    of x; default 10x the largest x) is where the identification check judges the band.
    Form: "power_N", "power_D" or "compute". `calibrate` (default: whenever there are
    bootstrap refits) sets the prediction band's scatter from inner hold-outs of the points.
    """
    if x not in ("N", "D", "C"):
        raise ValueError(f"x must be 'N', 'D' or 'C', got {x!r}")
    fixed = _parse_fixed(fix)
    if fixed.get("E") == 0.0:
        irreducible = False
    names = ("E", "a", "alpha") if irreducible else ("a", "alpha")
    data = validate_frame(df, (x, "loss"))
    check_degrees_of_freedom(
        {"N": "power_N", "D": "power_D", "C": "compute"}[x], len(data),
        len([k for k in names if k not in fixed]))
    lx = np.log(data[x].to_numpy(float))
    y = np.log(data["loss"].to_numpy(float))
    x_mean = 0.0 if "a" in fixed else float(lx.mean())  # a fixed: do not centre log x
    xc = lx - x_mean
    free = np.array([k not in fixed for k in ("a", "alpha", "E")])
    starts = _starts(xc, y, irreducible)
    for st in starts:
        if "a" in fixed:
            st[0] = np.log(fixed["a"])
        if "alpha" in fixed:
            st[1] = fixed["alpha"]
        if irreducible and "E" in fixed:
            st[2] = np.log(fixed["E"])
    theta = _fit_log_ls(xc, y, irreducible, starts, free)
    if theta is None:
        raise DataError(f"power-law fit in {x} did not converge from any start")

    def to_params(t: np.ndarray) -> dict[str, float]:
        with np.errstate(all="ignore"):  # a wild bootstrap resample may give a = inf
            return {
                "E": float(np.exp(t[2])) if irreducible else 0.0,
                "a": float(np.exp(t[0] + t[1] * x_mean)),
                "alpha": float(t[1]),
            }

    params = to_params(theta)
    ci = {k: (float("nan"), float("nan")) for k in names}
    samples_out: list[list[float]] = []
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        n = len(y)
        rows = []
        for _ in range(n_bootstrap):
            idx = rng.integers(0, n, size=n)
            t = _fit_log_ls(xc[idx], y[idx], irreducible, [theta], free)
            rows.append(to_params(t) if t is not None else dict.fromkeys(params, np.nan))
        samples = pd.DataFrame(rows)
        ci = {k: percentile_interval(samples[k].to_numpy()) for k in names}
        samples_out = samples[list(params)].to_numpy().tolist()
    if not irreducible:
        ci["E"] = (0.0, 0.0)
    for k, v in fixed.items():
        ci[k] = (v, v)
    form = {"N": "power_N", "D": "power_D", "C": "compute"}[x]
    with np.errstate(all="ignore"):
        pred = params["E"] + params["a"] * np.exp(lx) ** (-params["alpha"])
    extra: dict = {"irreducible": irreducible, "n_bootstrap": n_bootstrap, "seed": seed,
                   "x_range": [float(lx.min()), float(lx.max())],
                   "fixed": dict(fixed), "seed_scatter": seed_scatter(data)}
    if not irreducible and params["alpha"] != 0:
        extra["x_c"] = float(params["a"] ** (1.0 / params["alpha"]))
    fit = FitResult(
        form=form,
        params=params,
        ci=ci,
        residuals=tuple(_safe_log(pred) - y),
        selection={"index": [_label(i) for i in data.index], "x": x, "columns": [x, "loss"]},
        n_points=len(y),
        extra=extra,
        boot_params=np.array(samples_out, dtype=float).reshape(len(samples_out), len(params)),
    )
    if calibrate if calibrate is not None else n_bootstrap > 0:
        fit = calibrate_scatter(fit, data, lambda sub: fit_power_law(
            sub, x, irreducible=irreducible, n_bootstrap=0, fix=fixed, calibrate=False))
    design = {"n_distinct_x": int(np.unique(lx).size), "n_params": len(names)}
    return assess_fit(fit, design=design, min_loss=float(np.exp(y.min())), target_C=target)


def fit_compute_law(
    df: pd.DataFrame, *, irreducible: bool = True, n_bootstrap: int = 1000,
    seed: int | None = 0, fix: Mapping[str, float] | None = None,
    target_C: float | None = None, calibrate: bool | None = None,
) -> FitResult:
    """Fit L(C) = E + a·C^(-alpha) with C in FLOPs (default 6·N·D when the frame has no C)."""
    return fit_power_law(df, "C", irreducible=irreducible, n_bootstrap=n_bootstrap, seed=seed,
                         fix=fix, target=target_C, calibrate=calibrate)


def _parse_fixed(fix: Mapping[str, float] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in (fix or {}).items():
        if name not in ("E", "a", "alpha"):
            raise DataError(f"cannot fix {name!r}: the power-law parameters are E, a, alpha")
        v = float(value)
        if not np.isfinite(v) or v < 0 or (v == 0 and name == "a"):
            raise DataError(f"fixed {name} must be finite and >= 0 (> 0 for a); got {value}")
        out[name] = v
    return out


def _safe_log(values: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.log(values)


def _label(value: object) -> object:
    return value.item() if hasattr(value, "item") else value
