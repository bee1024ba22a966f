"""Is a fitted law identified? `assess_fit` marks a `FitResult` "degenerate" with a reason.

A fit is degenerate when
- the design cannot identify the form: too few distinct N or D values (Chinchilla needs at
  least 3 of each to separate A, alpha from B, beta and E) or too few distinct x values for a
  3-parameter power law (at least 4);
- a parameter sits at a bound: E collapsed to ~0 (below 1e-4 of the smallest loss), an
  exponent at or below 0 or above 5, or a non-finite value;
- more than a tenth of the bootstrap refits failed;
- the 95% prediction band at the target (by default 10x the largest training compute, at
  the fit's compute-optimal N and D; 10x the largest x for one-variable laws) spans more
  than a factor MAX_BAND_RATIO in loss: the fit cannot predict there. Wide parameter
  intervals alone are not a reason: A and alpha trade off along a valley that predicts
  the same losses. Too few points (fewer than free parameters + 2) are refused before
  fitting (`chinchilla.check_degrees_of_freedom`).

`degenerate_message` turns a degenerate fit into the one line the CLI and the demo print:
the reason and a remedy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from scaletrack.analysis.result import FitResult
from scaletrack.number_format import fmt_number

# declared before any outcome was looked at: a loss prediction whose 95% band spans more
# than a factor 1.5 at 10x the largest training scale says nothing a guess would not
MAX_BAND_RATIO = 1.5
TARGET_FACTOR = 10.0
MAX_EXPONENT = 5.0
E_FLOOR_FRACTION = 1e-4
MAX_FAILED_REFITS = 0.1

REMEDIES = {
    "chinchilla": "fit fewer free parameters (fix E, or use --form compute on the "
                  "compute frontier) or add runs at more model sizes and token budgets",
    "compute": "fit on the compute frontier with more distinct budgets, or fix E = 0 "
               "(a pure power law)",
    "power_N": "add runs at more sizes, or fix E = 0 (a pure power law)",
    "power_D": "add runs at more token budgets, or fix E = 0 (a pure power law)",
    "isoflop": "sample each budget's model sizes around its minimum, or use more budgets",
    "envelope": "add runs over a wider compute range",
}


def _design_reason(form: str, design: Mapping[str, int]) -> str | None:
    if form == "chinchilla":
        for key, name in (("n_distinct_N", "N"), ("n_distinct_D", "D")):
            k = design.get(key)
            if k is not None and k < 3:
                return (f"too few distinct {name} values ({k}; need >= 3) to identify "
                        "L = E + A/N^alpha + B/D^beta")
    elif form in ("compute", "power_N", "power_D"):
        k = design.get("n_distinct_x")
        need = design.get("n_params", 3) + 1
        if k is not None and k < need:
            return f"too few distinct x values ({k}; need >= {need}) for a {form} law"
    return None


def _bound_reason(fit: FitResult, min_loss: float | None) -> str | None:
    p = fit.params
    for k, v in p.items():
        if not math.isfinite(v):
            return f"parameter {k} is not finite ({v})"
    if fit.form in ("chinchilla", "compute", "power_N", "power_D"):
        irreducible = fit.extra.get("irreducible", True) and "E" not in (
            fit.extra.get("fixed") or {})
        if irreducible and min_loss and p.get("E", 1.0) < E_FLOOR_FRACTION * min_loss:
            return f"E = {fmt_number(p['E'])} sits at its bound 0 (no irreducible loss identified)"
        for k in ("alpha", "beta"):
            if k in p and not 0.0 < p[k] <= MAX_EXPONENT:
                return f"exponent {k} = {fmt_number(p[k])} sits outside (0, {MAX_EXPONENT:g}]"
    return None


def _refit_reason(fit: FitResult) -> str | None:
    samples = fit.bootstrap_samples()
    if samples:
        n = len(next(iter(samples.values())))
        failed = np.zeros(n, dtype=bool)
        for v in samples.values():
            failed |= ~np.isfinite(v)
        if n and failed.mean() > MAX_FAILED_REFITS:
            return f"{failed.mean():.0%} of the bootstrap refits failed"
    return None


def target_point(fit: FitResult, target_C: float | None = None) -> dict[str, float] | None:
    """The point the identification check predicts: for "chinchilla" the fit's own
    compute-optimal (N, D) at target_C (FLOPs, default 10x the largest training compute),
    for the one-variable laws x = target (default 10x the largest training x). None when the
    training reach was not recorded or the allocation is not finite."""
    if fit.form == "chinchilla":
        from scaletrack.analysis.optimal import chinchilla_allocation

        c_max: Any = fit.extra.get("log10_C_max")
        if c_max is None and target_C is None:
            return None
        c = float(target_C) if target_C is not None else TARGET_FACTOR * 10.0 ** float(c_max)
        with np.errstate(all="ignore"):
            n_opt, d_opt = chinchilla_allocation(dict(fit.params), np.array([c]))
        if not (np.all(np.isfinite(n_opt)) and np.all(np.isfinite(d_opt))
                and n_opt[0] > 0 and d_opt[0] > 0):
            return None
        return {"C": c, "N": float(n_opt[0]), "D": float(d_opt[0])}
    if fit.form in ("compute", "power_N", "power_D"):
        rng: Any = fit.extra.get("x_range")
        if rng is None and target_C is None:
            return None
        x = (float(target_C) if target_C is not None and fit.form == "compute"
             else TARGET_FACTOR * float(np.exp(rng[1])))
        return {fit.extra.get("x", {"compute": "C", "power_N": "N", "power_D": "D"}[fit.form]):
                x}
    return None


def _band_reason(fit: FitResult, target: Mapping[str, float] | None
                 ) -> tuple[str | None, dict | None]:
    """The 95% prediction band at the target: too wide (hi/lo > MAX_BAND_RATIO) is a reason."""
    if target is None or not fit.bootstrap_samples():
        return None, None
    if fit.form == "chinchilla":
        band = fit.predict_interval(N=[target["N"]], D=[target["D"]])
    else:
        band = fit.predict_interval(np.array([next(iter(target.values()))]))
    pred, lo, hi = (float(band[k].iloc[0]) for k in ("pred", "lo", "hi"))
    info = {**target, "pred": pred, "lo": lo, "hi": hi}
    where = ", ".join(f"{k} = {fmt_number(v)}" for k, v in target.items())
    if not (np.isfinite(lo) and np.isfinite(hi) and lo > 0):
        return f"no finite 95% prediction band at the target ({where})", info
    if hi / lo > MAX_BAND_RATIO:
        return (f"at the target ({where}) the 95% prediction band is "
                f"[{fmt_number(lo)}, {fmt_number(hi)}] "
                f"nats, wider than a factor {MAX_BAND_RATIO:g}: the runs cannot pin the law "
                "there"), info
    return None, info


def assess_fit(
    fit: FitResult, *, design: Mapping[str, int] | None = None, min_loss: float | None = None,
    target_C: float | None = None,
) -> FitResult:
    """Return `fit` with `status`/`status_reason` set from its design, bounds, refits and the
    prediction band at its target, and `extra["target"]` (the target point and its band).

    design: counts such as n_distinct_N, n_distinct_D (Chinchilla) or n_distinct_x and
    n_params (power laws). min_loss: the smallest observed loss (nats), for the E bound.
    target_C: where to judge the band (FLOPs; see `target_point`).
    """
    reason = (_design_reason(fit.form, design or {}) or _bound_reason(fit, min_loss)
              or _refit_reason(fit))
    band_reason, info = (None, None)
    if reason is None:
        band_reason, info = _band_reason(fit, target_point(fit, target_C))
    if info is not None:
        fit = dataclasses.replace(fit, extra={**fit.extra, "target": info})
    reason = reason or band_reason
    if reason is None:
        return fit
    return dataclasses.replace(fit, status="degenerate", status_reason=reason)


def degenerate_message(fit: FitResult) -> str | None:
    """One line for a degenerate fit (reason and remedy); None when the fit is ok."""
    if fit.status != "degenerate":
        return None
    remedy = REMEDIES.get(fit.form, "fit fewer free parameters or add runs")
    return (f"{fit.form} fit is degenerate: {fit.status_reason}; do not extrapolate it. "
            f"Remedy: {remedy}.")
