"""The two fits of two-step task prediction and their chain (Bhagia et al. 2024; the ladder
method that fits them lives in `analysis.two_step`).

Step 1, scale -> task loss (bits-per-byte of the correct answer, or nats), `fit_task_loss`:
    L(N, D) = E + A / N**alpha + B / D**beta      (N parameters, D tokens), or
    L(C)    = E + A / C**alpha                     (C FLOPs),
Huber regression on log loss, residual bootstrap in log space.
Step 2, task loss -> accuracy, `fit_loss_to_accuracy`:
    acc(L) = b + a / (1 + exp(k (L - L0)))         (k > 0: accuracy falls as loss rises),
bounded (weighted) least squares, residual bootstrap.
`TwoStepFit` chains them: accuracy from (N, D) or C alone, with bands from the paired
bootstrap refits of both steps. All three are `BootstrapFit` results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares
from scipy.special import expit

from scaletrack.analysis.bootstrap import percentile_interval
from scaletrack.analysis.result import SCHEMA_VERSION, BootstrapFit
from scaletrack.errors import DataError

Scale = float | Sequence[float] | np.ndarray | None  # N params, D tokens or C FLOPs

# ---------------------------------------------------------------------------------------
# step 1: scale -> task loss


def _scale_args(args: tuple, kwargs: dict) -> tuple[Any, Any, Any]:
    """(N, D, C) from `predict`-style arguments: positional in that order, or by name."""
    named = dict(zip(("N", "D", "C"), args, strict=False))
    named.update(kwargs)
    return named.get("N"), named.get("D"), named.get("C")


@dataclass(frozen=True, kw_only=True, eq=False)
class TaskLossFit(BootstrapFit):
    """Step 1. form "nd" (params E, A, alpha, B, beta; N params, D tokens) or "c"
    (params E, A, alpha; C FLOPs). Loss in the units it was fitted on (bpb or nats)."""

    def predict(self, N: Scale = None, D: Scale = None, C: Scale = None) -> np.ndarray:
        """Task loss at (N, D) for form "nd", or at C for form "c"."""
        return _step1_value(self.form, tuple(self.params.values()), N, D, C)

    def _curves(self, rows: np.ndarray, args: tuple, kwargs: dict) -> np.ndarray:
        n, d, c = _scale_args(args, kwargs)
        return np.array([np.atleast_1d(_step1_value(self.form, row, n, d, c)).ravel()
                         for row in rows]).reshape(len(rows), -1)

def _step1_value(form: str, p: Sequence[float], N: Scale, D: Scale, C: Scale) -> np.ndarray:
    if form == "nd":
        if N is None or D is None:
            raise DataError("the (N, D) task-loss form needs both N and D")
        E, A, alpha, B, beta = p
        n = np.asarray(N, dtype=float)
        d = np.asarray(D, dtype=float)
        return E + A / n**alpha + B / d**beta
    if C is None:
        raise DataError("the compute task-loss form needs C (FLOPs)")
    E, A, alpha = p
    return E + A / np.asarray(C, dtype=float) ** alpha


def _fit_step1_theta(
    form: str, cols: tuple[np.ndarray, ...], y: np.ndarray, starts: list[np.ndarray],
    huber: float = 1e-2,
) -> np.ndarray:
    """theta: nd -> (E, lnA, alpha, lnB, beta); c -> (E, lnA, alpha). Huber on log loss."""
    logs = tuple(np.log(c) for c in cols)
    ly = np.log(y)

    def pred(th: np.ndarray) -> np.ndarray:
        if form == "nd":
            E, la, a, lb, b = th
            return E + np.exp(la - a * logs[0]) + np.exp(lb - b * logs[1])
        E, la, a = th
        return E + np.exp(la - a * logs[0])

    def resid(th: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(pred(th), 1e-12)) - ly

    if form == "nd":
        lo = [0.0, -50.0, 0.0, -50.0, 0.0]
        hi = [float(y.min()), 200.0, 2.0, 200.0, 2.0]
    else:
        lo = [0.0, -50.0, 0.0]
        hi = [float(y.min()), 400.0, 2.0]
    best, cost = None, math.inf
    for s in starts:
        s = np.clip(s, np.array(lo) + 1e-9, np.array(hi) - 1e-9)
        r = least_squares(resid, s, bounds=(lo, hi), loss="huber", f_scale=huber)
        if r.cost < cost:
            best, cost = r.x, r.cost
    assert best is not None
    return best


def _step1_starts(form: str, cols: tuple[np.ndarray, ...], y: np.ndarray) -> list[np.ndarray]:
    starts = []
    ymin = float(y.min())
    med = [float(np.median(np.log(c))) for c in cols]
    for e_frac in (0.0, 0.5, 0.8):
        E = e_frac * ymin
        rest = max(float(np.median(y)) - E, 1e-3)
        for a in (0.1, 0.3, 0.6):
            if form == "nd":
                for b in (0.1, 0.3, 0.6):
                    starts.append(np.array([
                        E, math.log(rest / 2) + a * med[0], a, math.log(rest / 2) + b * med[1], b,
                    ]))
            else:
                starts.append(np.array([E, math.log(rest) + a * med[0], a]))
    return starts


def _theta_to_params(form: str, th: np.ndarray) -> tuple[float, ...]:
    if form == "nd":
        E, la, a, lb, b = th
        return (float(E), float(math.exp(la)), float(a), float(math.exp(lb)), float(b))
    E, la, a = th
    return (float(E), float(math.exp(la)), float(a))


def fit_task_loss(
    loss: Sequence[float] | np.ndarray,
    *,
    N: Sequence[float] | np.ndarray | None = None,
    D: Sequence[float] | np.ndarray | None = None,
    C: Sequence[float] | np.ndarray | None = None,
    huber: float = 1e-2,
    n_bootstrap: int = 100,
    seed: int = 0,
) -> TaskLossFit:
    """Step 1: fit L(N, D) = E + A/N^alpha + B/D^beta (give N and D), or L(C) = E + A/C^alpha
    (give C). Loss must be positive (bpb or nats). Huber regression on log loss (`huber` is
    the scale, in log-loss units, where it turns linear); residual bootstrap (in log space)
    for intervals."""
    y = np.asarray(loss, dtype=float)
    cols: tuple[np.ndarray, ...]
    names: tuple[str, ...]
    if N is not None and D is not None:
        form, cols = "nd", (np.asarray(N, dtype=float), np.asarray(D, dtype=float))
        names = ("E", "A", "alpha", "B", "beta")
    elif C is not None:
        form, cols = "c", (np.asarray(C, dtype=float),)
        names = ("E", "A", "alpha")
    else:
        raise DataError("fit_task_loss needs N and D, or C")
    ok = np.isfinite(y) & (y > 0)
    for c in cols:
        if c.shape != y.shape:
            raise DataError("scale and loss arrays must have the same length")
        ok &= np.isfinite(c) & (c > 0)
    y = y[ok]
    cols = tuple(c[ok] for c in cols)
    if y.size < len(names) + 1:
        raise DataError(f"step 1 ({form}) needs at least {len(names) + 1} points, got {y.size}")
    theta = _fit_step1_theta(form, cols, y, _step1_starts(form, cols, y), huber)
    params = _theta_to_params(form, theta)
    if form == "nd":
        pred = _step1_value(form, params, cols[0], cols[1], None)
    else:
        pred = _step1_value(form, params, None, None, cols[0])
    log_resid = np.log(y) - np.log(pred)
    boot: list[tuple[float, ...]] = []
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        centred = log_resid - log_resid.mean()
        for _ in range(n_bootstrap):
            yb = pred * np.exp(rng.choice(centred, size=centred.size, replace=True))
            boot.append(_theta_to_params(form, _fit_step1_theta(form, cols, yb, [theta], huber)))
    ci95 = _intervals(names, boot)
    return TaskLossFit(
        form=form,
        params=dict(zip(names, params, strict=True)),
        ci=ci95,
        residuals=tuple(float(r) for r in y - pred),
        selection={"huber": huber, "n_bootstrap": n_bootstrap, "seed": seed},
        n_points=int(y.size),
        boot_params=np.array(boot, dtype=float).reshape(len(boot), len(names)),
    )


def _intervals(
    names: Sequence[str], boot: Sequence[tuple[float, ...]]
) -> dict[str, tuple[float, float]]:
    if not boot:
        return {n: (math.nan, math.nan) for n in names}
    arr = np.array(boot)
    return {n: percentile_interval(arr[:, i]) for i, n in enumerate(names)}


# ---------------------------------------------------------------------------------------
# step 2: task loss -> accuracy


@dataclass(frozen=True, kw_only=True, eq=False)
class AccuracyFit(BootstrapFit):
    """Step 2: acc(L) = b + a / (1 + exp(k (L - L0))); params a, k, L0, b. L in the units of
    the fitted task loss; accuracy in [0, 1]."""

    form: str = "loss_to_accuracy_sigmoid"

    def predict(self, loss: float | np.ndarray) -> np.ndarray:
        """Accuracy at task loss `loss`."""
        p = self.params
        return _step2_value((p["a"], p["k"], p["L0"], p["b"]), loss)

    def _curves(self, rows: np.ndarray, args: tuple, kwargs: dict) -> np.ndarray:
        loss = kwargs["loss"] if "loss" in kwargs else args[0]
        return np.array([np.atleast_1d(_step2_value(row, loss)).ravel()
                         for row in rows]).reshape(len(rows), -1)

def _step2_value(p: Sequence[float], loss: float | np.ndarray) -> np.ndarray:
    a, k, L0, b = p
    return b + a * expit(-k * (np.asarray(loss, dtype=float) - L0))


def _fit_step2_theta(
    L: np.ndarray, y: np.ndarray, w: np.ndarray, chance: float | None, ceil_limit: float,
    fixed_ceiling: bool, starts: list[np.ndarray],
) -> tuple[float, float, float, float]:
    """theta = ([b], [frac], k, L0): b is left out when chance fixes it, frac when the ceiling
    is fixed (frac = 1); a = frac * (ceil_limit - b). w: per-point least-squares weights."""
    sw = np.sqrt(w)

    def unpack(th: np.ndarray) -> tuple[float, float, float, float]:
        rest = list(th)
        b = chance if chance is not None else rest.pop(0)
        frac = 1.0 if fixed_ceiling else rest.pop(0)
        k, L0 = rest
        return (float(frac * (ceil_limit - b)), float(k), float(L0), float(b))

    def resid(th: np.ndarray) -> np.ndarray:
        return sw * (_step2_value(unpack(th), L) - y)

    span = float(L.max() - L.min()) or 1.0
    lo = [1e-3, float(L.min()) - 5 * span]
    hi = [200.0, float(L.max()) + 5 * span]
    if not fixed_ceiling:
        lo, hi = [0.0, *lo], [1.0, *hi]
    if chance is None:
        lo, hi = [0.0, *lo], [float(max(y.min(), 1e-6)), *hi]
    best, cost = None, math.inf
    for s in starts:
        s = np.clip(s, np.array(lo) + 1e-9, np.array(hi) - 1e-9)
        r = least_squares(resid, s, bounds=(lo, hi))
        if r.cost < cost:
            best, cost = r.x, r.cost
    assert best is not None
    return unpack(best)


def _pack_step2(
    p: tuple[float, float, float, float], chance: float | None, ceil_limit: float,
    fixed_ceiling: bool,
) -> np.ndarray:
    a, k, L0, b = p
    th = [k, L0]
    if not fixed_ceiling:
        th = [a / (ceil_limit - b) if ceil_limit > b else 0.0, *th]
    if chance is None:
        th = [b, *th]
    return np.array(th)


def fit_loss_to_accuracy(
    loss: Sequence[float] | np.ndarray,
    acc: Sequence[float] | np.ndarray,
    *,
    chance: float | None = None,
    ceil_limit: float = 1.0,
    fixed_ceiling: bool = False,
    weights: Sequence[float] | np.ndarray | None = None,
    n_bootstrap: int = 100,
    seed: int = 0,
) -> AccuracyFit:
    """Step 2: fit acc = b + a*sigmoid(-k (L - L0)) by bounded (weighted) least squares, several
    starts.

    chance: fix the lower asymptote b (e.g. 0.25 for 4 options); fitted when None.
    ceil_limit bounds the upper asymptote a + b (1 for accuracy); fixed_ceiling pins it there.
    weights: per-point weights (None: equal). Residual bootstrap for intervals."""
    L = np.asarray(loss, dtype=float)
    y = np.asarray(acc, dtype=float)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    if L.shape != y.shape or w.shape != y.shape:
        raise DataError("loss, accuracy and weight arrays must have the same length")
    ok = np.isfinite(L) & np.isfinite(y) & np.isfinite(w) & (w > 0)
    L, y, w = L[ok], y[ok], w[ok]
    need = 2 + (chance is None) + (not fixed_ceiling)
    if y.size < need + 1:
        raise DataError(f"step 2 needs at least {need + 1} points, got {y.size}")
    w = w / w.mean()
    b0 = chance if chance is not None else float(max(y.min() - 0.02, 0.0))
    starts = []
    for frac in ((1.0,) if fixed_ceiling else (0.5, 0.9)):
        for k in (2.0, 8.0):
            for L0 in np.quantile(L, [0.2, 0.8]):
                p0 = (frac * (ceil_limit - b0), k, float(L0), b0)
                starts.append(_pack_step2(p0, chance, ceil_limit, fixed_ceiling))
    params = _fit_step2_theta(L, y, w, chance, ceil_limit, fixed_ceiling, starts)
    pred = _step2_value(params, L)
    resid = y - pred
    boot: list[tuple[float, float, float, float]] = []
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        centred = resid - resid.mean()
        start = [_pack_step2(params, chance, ceil_limit, fixed_ceiling)]
        for _ in range(n_bootstrap):
            yb = pred + rng.choice(centred, size=centred.size, replace=True)
            boot.append(_fit_step2_theta(L, yb, w, chance, ceil_limit, fixed_ceiling, start))
    names = ("a", "k", "L0", "b")
    return AccuracyFit(
        params=dict(zip(names, params, strict=True)),
        ci=_intervals(names, boot),
        residuals=tuple(float(r) for r in resid),
        selection={"chance": chance, "ceil_limit": ceil_limit, "fixed_ceiling": fixed_ceiling,
                   "weighted": weights is not None, "n_bootstrap": n_bootstrap, "seed": seed},
        n_points=int(y.size),
        boot_params=np.array(boot, dtype=float).reshape(len(boot), len(names)),
    )


# ---------------------------------------------------------------------------------------
# chaining


@dataclass(frozen=True, kw_only=True, eq=False)
class TwoStepFit(BootstrapFit):
    """Step 1 and step 2 for one task; predicts accuracy from (N, D) or C.

    Its `params`, `ci` and `boot_params` are derived from the steps: step 1's names prefixed
    "s1_", step 2's "s2_"; a draw pairs step 1's i-th refit with step 2's i-th. `residuals`
    are step 2's (accuracy units), the scatter a prediction band adds.
    """

    task: str = "task"
    step1: TaskLossFit
    step2: AccuracyFit
    form: str = "two_step"
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s1, s2 = self.step1, self.step2
        n = min(s1.n_boot, s2.n_boot)
        derived = {
            "params": {**{f"s1_{k}": v for k, v in s1.params.items()},
                       **{f"s2_{k}": v for k, v in s2.params.items()}},
            "ci": {**{f"s1_{k}": v for k, v in s1.ci.items()},
                   **{f"s2_{k}": v for k, v in s2.ci.items()}},
            "boot_params": np.hstack([s1.boot_params[:n], s2.boot_params[:n]]),
            "residuals": s2.residuals,
            "selection": {"task": self.task},
            "n_points": s1.n_points + s2.n_points,
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)
        super().__post_init__()

    def predict_loss(self, N: Scale = None, D: Scale = None, C: Scale = None) -> np.ndarray:
        """Step 1's task loss at (N, D) or C."""
        return self.step1.predict(N=N, D=D, C=C)

    def predict(self, N: Scale = None, D: Scale = None, C: Scale = None) -> np.ndarray:
        """Predicted accuracy at (N, D) (step-1 form "nd") or C (form "c")."""
        return self.step2.predict(self.predict_loss(N=N, D=D, C=C))

    def _curves(self, rows: np.ndarray, args: tuple, kwargs: dict) -> np.ndarray:
        k = len(self.step1.params)
        losses = self.step1._curves(rows[:, :k], args, kwargs)
        return np.array([np.atleast_1d(_step2_value(row, loss)).ravel()
                         for row, loss in zip(rows[:, k:], losses, strict=True)]
                        ).reshape(len(rows), -1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: the task and both steps' payloads; inverse of `from_dict`."""
        return {"schema": SCHEMA_VERSION, "form": self.form, "task": self.task,
                "step1": self.step1.to_dict(), "step2": self.step2.to_dict()}

    @classmethod
    def _fields(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        return {"task": data["task"], "step1": TaskLossFit.from_dict(data["step1"]),
                "step2": AccuracyFit.from_dict(data["step2"])}
