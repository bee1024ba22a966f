"""Floored sigmoid fits of a task metric against scale (compute in FLOPs, or parameters N).

    value(x) = floor + (ceil - floor) * sigmoid(k * (log10 x - log10_mid))

`floor` is the value at small scale (chance for accuracy-like metrics; given or fitted),
`ceil` the large-scale asymptote (bounded by `ceil_limit`, e.g. 1 for accuracy), `k` the
steepness per decade of x and `log10_mid` the midpoint. Metrics that fall with scale
(per-token log-likelihood loss in nats, bits-per-byte) are fitted with `increasing=False`:
then `ceil < floor` and `ceil_limit` is a lower bound (default 0).

Fits are bounded least squares from several starts; intervals come from a residual
bootstrap (refit on fitted values plus resampled residuals).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares
from scipy.special import expit, logit

from scaletrack.analysis.result import BootstrapFit
from scaletrack.errors import DataError

FORM = "floored_sigmoid_log10"
# sigmoid knees: the third derivative of the logistic vanishes at +-ln(2 + sqrt 3) ~ 1.317,
# where the value is ~21% / ~79% of the way from floor to ceiling.
KNEE = math.log(2.0 + math.sqrt(3.0))
K_BOUNDS = (0.05, 30.0)  # steepness per decade
# Bootstrap refits behind every emergence interval (crossing scale, sigmoid band): the default
# of the library's fits, of `scaletrack emergence` and of the dashboard's emergence view, so
# they all print the same interval for the same curve.
N_BOOTSTRAP = 200


def sigmoid_value(
    x: np.ndarray | float, floor: float, ceil: float, k: float, log10_mid: float
) -> np.ndarray:
    """The floored sigmoid at scale `x` (x > 0; FLOPs or parameters)."""
    lx = np.log10(np.asarray(x, dtype=float))
    return floor + (ceil - floor) * expit(k * (lx - log10_mid))


def _quantile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval that tolerates +-inf (order statistics, no interpolation)."""
    v = np.sort(np.asarray(values, dtype=float)[~np.isnan(values)])
    if v.size == 0:
        return (math.nan, math.nan)
    alpha = (1.0 - level) / 2.0
    lo = v[int(math.floor(alpha * (v.size - 1)))]
    hi = v[int(math.ceil((1.0 - alpha) * (v.size - 1)))]
    return (float(lo), float(hi))


@dataclass(frozen=True, kw_only=True, eq=False)
class SigmoidFit(BootstrapFit):
    """A fitted floored sigmoid in log10 of scale (a `BootstrapFit`).

    params: floor, ceil, k (per decade), log10_mid. x is in the units of `selection["x"]`
    (FLOPs for "C", parameters for "N"); values in the metric's units. `boot_params` holds
    the bootstrap refits (floor, ceil, k, log10_mid) used for the bands and for intervals on
    derived quantities; `rmse` is the root mean square residual (metric units).
    """

    form: str = FORM
    rmse: float = math.nan

    # prediction -------------------------------------------------------------------------
    def predict(self, x: np.ndarray | float) -> np.ndarray:
        """Metric value at scale `x`."""
        p = self.params
        return sigmoid_value(x, p["floor"], p["ceil"], p["k"], p["log10_mid"])

    def _curves(self, rows: np.ndarray, args: tuple, kwargs: dict) -> np.ndarray:
        x = kwargs["x"] if "x" in kwargs else args[0]
        lx = np.log10(np.atleast_1d(np.asarray(x, dtype=float)).ravel())
        p = np.asarray(rows, dtype=float).reshape(-1, 4)  # floor, ceil, k, log10_mid per row
        floor, ceil, k, mid = (p[:, i:i + 1] for i in range(4))
        return floor + (ceil - floor) * expit(k * (lx[None, :] - mid))  # every row at once

    @property
    def increasing(self) -> bool:
        return bool(self.selection.get("increasing", True))

    @property
    def midpoint(self) -> float:
        """Scale of the sigmoid midpoint (same units as x)."""
        return float(10.0 ** self.params["log10_mid"])

    @property
    def midpoint_value(self) -> float:
        return 0.5 * (self.params["floor"] + self.params["ceil"])

    @property
    def upper_knee(self) -> float:
        """Scale past which gains are incremental (~79% of the rise done)."""
        return float(10.0 ** (self.params["log10_mid"] + KNEE / self.params["k"]))

    @property
    def lower_knee(self) -> float:
        """Scale where the rise starts (~21% of the rise done)."""
        return float(10.0 ** (self.params["log10_mid"] - KNEE / self.params["k"]))

    @property
    def max_slope_per_decade(self) -> float:
        """Largest change of the metric per decade of scale, |ceil - floor| * k / 4."""
        return abs(self.params["ceil"] - self.params["floor"]) * self.params["k"] / 4.0

    def crossing(self, threshold: float) -> float:
        """Scale at which the curve reaches `threshold`; 0.0 if always past, inf if never."""
        return _crossing(self.params["floor"], self.params["ceil"], self.params["k"],
                         self.params["log10_mid"], threshold)

    def crossing_samples(self, threshold: float) -> np.ndarray:
        """Crossing scale for every bootstrap refit (inf where a refit never reaches it)."""
        return np.array([_crossing(f, c, k, m, threshold) for f, c, k, m in self.boot_params])

    def crossing_ci95(self, threshold: float) -> tuple[float, float]:
        """95% bootstrap interval of the crossing scale (bounds may be inf)."""
        if not self.n_boot:
            return (math.nan, math.nan)
        return _quantile_interval(self.crossing_samples(threshold))

    # serialisation ----------------------------------------------------------------------
    def _payload(self) -> dict[str, Any]:
        return {"rmse": self.rmse}

    @classmethod
    def _fields(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        return {**super()._fields({"form": FORM, **data}), "rmse": float(data["rmse"])}


def _crossing(floor: float, ceil: float, k: float, log10_mid: float, threshold: float) -> float:
    span = ceil - floor
    if span == 0.0:
        return math.inf
    p = (threshold - floor) / span
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return math.inf
    return float(10.0 ** (log10_mid + float(logit(p)) / k))


@dataclass(frozen=True)
class _Problem:
    """Internal, sign-normalised problem: the curve rises from floor towards ceil_limit."""

    lx: np.ndarray
    y: np.ndarray  # already multiplied by sign
    sign: float
    floor: float | None  # fixed floor in signed units, or None when fitted
    ceil_limit: float  # signed
    mid_bounds: tuple[float, float]
    floor_bounds: tuple[float, float]

    def unpack(self, theta: np.ndarray) -> tuple[float, float, float, float]:
        """theta -> (floor, ceil, k, mid) in signed units; ceil = floor + frac*(limit-floor)."""
        if self.floor is None:
            floor, frac, k, mid = theta
        else:
            floor = self.floor
            frac, k, mid = theta
        ceil = floor + frac * (self.ceil_limit - floor)
        return float(floor), float(ceil), float(k), float(mid)

    def residuals(self, theta: np.ndarray, y: np.ndarray) -> np.ndarray:
        floor, ceil, k, mid = self.unpack(theta)
        return floor + (ceil - floor) * expit(k * (self.lx - mid)) - y

    def bounds(self) -> tuple[list[float], list[float]]:
        lo = [0.0, K_BOUNDS[0], self.mid_bounds[0]]
        hi = [1.0, K_BOUNDS[1], self.mid_bounds[1]]
        if self.floor is None:
            lo = [self.floor_bounds[0], *lo]
            hi = [self.floor_bounds[1], *hi]
        return lo, hi

    def starts(self, y: np.ndarray) -> list[np.ndarray]:
        lo_x, hi_x = float(self.lx.min()), float(self.lx.max())
        ymin, ymax = float(np.min(y)), float(np.max(y))
        floor0 = self.floor if self.floor is not None else min(ymin, self.floor_bounds[1])
        floor0 = float(np.clip(floor0, *self.floor_bounds)) if self.floor is None else floor0
        denom = self.ceil_limit - floor0
        fracs = [0.95]
        if denom > 0:
            fracs.append(float(np.clip((ymax - floor0) / denom, 0.02, 0.98)))
        out = []
        for mid in np.linspace(lo_x, hi_x + 1.0, 5):
            for k in (0.7, 3.0):
                for frac in fracs:
                    core = [frac, k, float(np.clip(mid, *self.mid_bounds))]
                    out.append(np.array(core if self.floor is not None else [floor0, *core]))
        return out


def _solve_batch(problem: _Problem, y: np.ndarray, starts: Sequence[np.ndarray]) -> np.ndarray:
    """Solutions (B, p) of B problems in one batch (analysis.sigmoid_batch): one start per
    row of `y` (B, n), or every start on one shared `y` (n,)."""
    from scaletrack.analysis.sigmoid_batch import solve_batch

    lo, hi = problem.bounds()
    lo_a, hi_a = np.array(lo) + 1e-9, np.array(hi) - 1e-9
    theta0 = np.clip(np.array(starts, dtype=float), lo_a, hi_a)
    theta, _ = solve_batch(problem.lx, y, theta0, np.array(lo), np.array(hi),
                           fixed_floor=problem.floor, limit=problem.ceil_limit)
    return theta


def _solve(problem: _Problem, y: np.ndarray, starts: Sequence[np.ndarray]) -> np.ndarray:
    """The best of `starts` by scipy's trust-region least squares (one call per start): the
    reference the batched solver is tested against."""
    lo, hi = problem.bounds()
    best, best_cost = None, math.inf
    for s in starts:
        s = np.clip(s, np.array(lo) + 1e-9, np.array(hi) - 1e-9)
        res = least_squares(problem.residuals, s, bounds=(lo, hi), args=(y,), method="trf")
        if res.cost < best_cost:
            best, best_cost = res.x, res.cost
    assert best is not None
    return best


@np.errstate(over="ignore", invalid="ignore")  # a far start's cost overflows: not chosen
def fit_floored_sigmoid(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    floor: float | None = None,
    ceil_limit: float | None = None,
    increasing: bool = True,
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
    x_name: str = "C",
    mid_margin_decades: float = 4.0,
    solver: str = "batch",
) -> SigmoidFit:
    """Fit the floored sigmoid of `y` against log10 `x` (x > 0: FLOPs or parameters).

    floor: the small-scale value (chance) if known; fitted otherwise. ceil_limit: the bound
    the large-scale asymptote cannot pass (default 1.0 when increasing, 0.0 when not).
    The midpoint is bounded to [min log10 x - mid_margin, max log10 x + mid_margin] decades.
    n_bootstrap residual-bootstrap refits give `ci` and `boot_params` (0 disables them).
    solver "batch" (default) solves every start and every refit together
    (analysis.sigmoid_batch); "scipy" calls scipy's least_squares once per start and refit.
    """
    if solver not in ("batch", "scipy"):
        raise ValueError(f"solver must be 'batch' or 'scipy', got {solver!r}")
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise DataError("x and y must be 1-D arrays of the same length")
    keep = np.isfinite(xa) & np.isfinite(ya) & (xa > 0)
    xa, ya = xa[keep], ya[keep]
    n_params = 3 if floor is not None else 4
    if xa.size < n_params:
        raise DataError(
            f"need at least {n_params} points with finite value and positive {x_name} "
            f"to fit a floored sigmoid, got {xa.size}"
        )
    if np.unique(xa).size < 2:
        raise DataError(f"all points share one {x_name}; a sigmoid in scale needs two or more")
    if ceil_limit is None:
        ceil_limit = 1.0 if increasing else 0.0
    sign = 1.0 if increasing else -1.0
    ys = sign * ya
    limit_s = sign * ceil_limit
    if floor is not None and sign * floor > limit_s:
        raise DataError(f"floor {floor} lies beyond the ceiling limit {ceil_limit}")
    lx = np.log10(xa)
    span = max(float(ys.max() - ys.min()), 1e-12)
    floor_bounds = (float(ys.min()) - span, min(limit_s, float(ys.max())))
    if floor_bounds[0] >= floor_bounds[1]:
        floor_bounds = (floor_bounds[1] - 1e-6, floor_bounds[1])
    problem = _Problem(
        lx=lx,
        y=ys,
        sign=sign,
        floor=None if floor is None else sign * floor,
        ceil_limit=limit_s,
        mid_bounds=(float(lx.min()) - mid_margin_decades, float(lx.max()) + mid_margin_decades),
        floor_bounds=floor_bounds,
    )
    if solver == "scipy":
        theta = _solve(problem, ys, problem.starts(ys))
    else:
        found = _solve_batch(problem, ys, problem.starts(ys))
        costs = [float(np.sum(problem.residuals(t, ys) ** 2)) for t in found]
        theta = found[int(np.nanargmin(costs))]
    fitted = ys + problem.residuals(theta, ys)
    resid = ys - fitted

    def to_params(th: np.ndarray) -> tuple[float, float, float, float]:
        f, c, k, m = problem.unpack(th)
        return (sign * f, sign * c, k, m)

    f, c, k, m = to_params(theta)
    boot: list[tuple[float, float, float, float]] = []
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        centred = resid - resid.mean()
        draws = [fitted + rng.choice(centred, size=centred.size, replace=True)
                 for _ in range(n_bootstrap)]  # the same random stream as one at a time
        if solver == "scipy":
            boot = [to_params(_solve(problem, yb, [theta])) for yb in draws]
        else:
            solved = _solve_batch(problem, np.array(draws), [theta] * n_bootstrap)
            boot = [to_params(th) for th in solved]
    names = ("floor", "ceil", "k", "log10_mid")
    params = dict(zip(names, (f, c, k, m), strict=True))
    if boot:
        arr = np.array(boot)
        ci = {n: _quantile_interval(arr[:, i]) for i, n in enumerate(names)}
    else:
        ci = {n: (math.nan, math.nan) for n in names}
    if floor is not None:
        ci["floor"] = (float(floor), float(floor))
    return SigmoidFit(
        params=params,
        ci=ci,
        residuals=tuple(float(r) for r in sign * resid),
        selection={
            "x": x_name,
            "increasing": increasing,
            "floor_fixed": floor is not None,
            "ceil_limit": float(ceil_limit),
            "x_min": float(xa.min()),
            "x_max": float(xa.max()),
            "n_bootstrap": int(n_bootstrap),
            "seed": int(seed),
        },
        n_points=int(xa.size),
        rmse=float(np.sqrt(np.mean(resid**2))),
        boot_params=np.array(boot, dtype=float).reshape(len(boot), len(names)),
    )


@dataclass(frozen=True)
class EmergenceProfile:
    """Model-free description of how a metric leaves its floor as scale grows (Wei et al. 2022).

    at_chance_until: largest scale (FLOPs or N) up to which the binned median stays within
    `margin` of the floor (None if even the smallest scale is above it). decades_at_chance:
    decades of scale spent there. rise: the best single point minus the floor (sign-corrected;
    raw points, so one large model is not hidden by the median of its bin).
    emergent: near the floor for at least `min_decades` then a rise of at least `min_rise`.
    """

    floor: float
    margin: float
    rise: float
    at_chance_until: float | None
    decades_at_chance: float
    emergent: bool
    bins: tuple[tuple[float, float], ...] = field(default=())  # (log10 x centre, median)


def emergence_profile(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    floor: float,
    increasing: bool = True,
    margin: float | None = None,
    min_rise: float = 0.05,
    min_decades: float = 1.0,
    bin_decades: float = 0.5,
    scale_range: float = 1.0,
) -> EmergenceProfile:
    """Bin points by `bin_decades` of log10 x, take medians, and measure the flat start.

    margin defaults to max(0.02, 0.05 * scale_range) in metric units (scale_range: the
    metric's usable range, 1 - chance for accuracy). A rise counts once a point is
    `min_rise` (same units, times scale_range) past the floor; the flat start is read from
    the bin medians.
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    keep = np.isfinite(xa) & np.isfinite(ya) & (xa > 0)
    xa, ya = xa[keep], ya[keep]
    if xa.size == 0:
        raise DataError("no points with finite value and positive scale")
    if margin is None:
        margin = max(0.02, 0.05 * scale_range)
    sign = 1.0 if increasing else -1.0
    gain = sign * (ya - floor)
    lx = np.log10(xa)
    edges = np.arange(lx.min(), lx.max() + bin_decades, bin_decades)
    idx = np.clip(np.searchsorted(edges, lx, side="right") - 1, 0, max(len(edges) - 1, 0))
    bins: list[tuple[float, float, float]] = []  # (centre, median gain, max lx in bin)
    for b in np.unique(idx):
        sel = idx == b
        bins.append((float(lx[sel].mean()), float(np.median(gain[sel])), float(lx[sel].max())))
    rise = float(gain.max())  # raw points: a bin's median would hide its largest model
    until: float | None = None
    for _, g, top in bins:
        if g <= margin:
            until = top
        else:
            break
    decades = 0.0 if until is None else until - float(lx.min())
    emergent = (
        until is not None
        and decades >= min_decades
        and rise >= min_rise * scale_range
        and until < float(lx.max())
    )
    return EmergenceProfile(
        floor=float(floor),
        margin=float(margin),
        rise=float(rise),
        at_chance_until=None if until is None else float(10.0**until),
        decades_at_chance=float(decades),
        emergent=bool(emergent),
        bins=tuple((c, floor + sign * g) for c, g, _ in bins),
    )
