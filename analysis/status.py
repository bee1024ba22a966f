"""Is a fitted law identified? `assess_fit` marks a `FitResult` "degenerate" with a reason.

A fit is degenerate when
- the design cannot identify the form: too few distinct N or D values (Chinchilla needs at
  least 3 of each to separate A, alpha from B, beta and E) or too few distinct x values for a
  3-parameter power law (at least 4);
- a parameter sits at a bound: E collapsed to ~0 (below 1e-4 of the smallest loss), an
  exponent at or below 0 or above 5, or a non-finite value;
- a 95% interval spans more than a factor of 1e6 (positive scale parameters), or an exponent's
  interval is wider than 6 (a factor 1e6 per decade of x), or more than a tenth of the
  bootstrap refits failed.

`degenerate_message` turns a degenerate fit into the one line the CLI and the demo print:
the reason and a remedy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

from scaletrack.analysis.result import FitResult

MAX_INTERVAL_FACTOR = 1e6
MAX_EXPONENT_WIDTH = 6.0
MAX_EXPONENT = 5.0
E_FLOOR_FRACTION = 1e-4
MAX_FAILED_REFITS = 0.1
EXPONENTS = ("alpha", "beta", "a", "b")
SCALES = ("A", "B", "a", "k_N", "k_D")

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
        irreducible = fit.extra.get("irreducible", True)
        if irreducible and min_loss and p.get("E", 1.0) < E_FLOOR_FRACTION * min_loss:
            return f"E = {p['E']:.3g} sits at its bound 0 (no irreducible loss identified)"
        for k in ("alpha", "beta"):
            if k in p and not 0.0 < p[k] <= MAX_EXPONENT:
                return f"exponent {k} = {p[k]:.3g} sits outside (0, {MAX_EXPONENT:g}]"
    return None


def _interval_reason(fit: FitResult) -> str | None:
    samples = fit.bootstrap_samples()
    if samples:
        n = len(next(iter(samples.values())))
        failed = np.zeros(n, dtype=bool)
        for v in samples.values():
            failed |= ~np.isfinite(v)
        if n and failed.mean() > MAX_FAILED_REFITS:
            return f"{failed.mean():.0%} of the bootstrap refits failed"
    exponents = EXPONENTS if fit.form in ("isoflop", "envelope") else ("alpha", "beta")
    scales = ("k_N", "k_D") if fit.form in ("isoflop", "envelope") else ("E", "A", "B", "a")
    for k, (lo, hi) in fit.ci95.items():
        if not (math.isfinite(lo) and math.isfinite(hi)):
            continue
        if k in exponents and hi - lo > MAX_EXPONENT_WIDTH:
            return (f"the 95% interval of {k} [{lo:.3g}, {hi:.3g}] is wider than "
                    f"{MAX_EXPONENT_WIDTH:g}")
        if k in scales and k != "E" and (lo <= 0 or hi / lo > MAX_INTERVAL_FACTOR):
            return (f"the 95% interval of {k} [{lo:.3g}, {hi:.3g}] spans more than a factor "
                    f"of {MAX_INTERVAL_FACTOR:.0e}")
    return None


def assess_fit(
    fit: FitResult, *, design: Mapping[str, int] | None = None, min_loss: float | None = None
) -> FitResult:
    """Return `fit` with `status`/`status_reason` set from its design, bounds and intervals.

    design: counts such as n_distinct_N, n_distinct_D (Chinchilla) or n_distinct_x and
    n_params (power laws). min_loss: the smallest observed loss (nats), for the E bound.
    """
    reason = (_design_reason(fit.form, design or {}) or _bound_reason(fit, min_loss)
              or _interval_reason(fit))
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
