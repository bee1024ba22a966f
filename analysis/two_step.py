"""Two-step task prediction from a model ladder (Bhagia et al. 2024, "Establishing Task
Scaling Laws via Compute-Efficient Model Ladders").

Step 1, scale -> task loss (bits-per-byte of the correct answer, or nats):
    L(N, D) = E + A / N**alpha + B / D**beta      (N parameters, D tokens), or
    L(C)    = E + A / C**alpha                     (C FLOPs),
fitted (Huber on log loss) on one point per ladder run: its final (N, D), loss the mean of
its last 5 checkpoints.
Step 2, task loss -> accuracy:
    acc(L) = b + a / (1 + exp(k (L - L0)))         (k > 0: accuracy falls as loss rises),
fitted on the checkpoints in the second half of every ladder run, loss and accuracy
smoothed by a centred moving average of 11 checkpoints, plus the ideal point (loss 0,
accuracy 1) as Bhagia et al. add it. Chaining them predicts a target model's accuracy from
its (N, D) or C alone.

These defaults (step1_min_fraction=None, final_window=5, step2_min_fraction=0.5,
step2_smooth=11, step2_anchor=True) were chosen on ladder data only, over the 9 variants
declared in bench/bench_two_step.py, by select_two_step_method: a nested extrapolation
back-test (LADDER_FOLDS: predict the largest size, the largest tokens-per-parameter ratio,
the corner of both, and the two largest sizes from the rest), fold errors averaged with
weights = decades of compute extrapolated. Score 1.51 points (runner-up 1.56). The 7B and
13B targets are reported by that bench as outcomes and chose nothing: 3.60 and 4.03 points
of mean absolute error on 8 tasks (the published ladder's 13B error 4.17; goal <= 3.0 not
met).
Other options (step 1 on every checkpoint past a fraction of the tokens, floor at chance,
ceiling fixed at 1, per-run or inverse-noise weights) are parameters."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.special import expit

from scaletrack.analysis.bootstrap import percentile_interval
from scaletrack.errors import DataError

# ---------------------------------------------------------------------------------------
# step 1: scale -> task loss


@dataclass(frozen=True)
class TaskLossFit:
    """Step 1. form "nd" (params E, A, alpha, B, beta; N params, D tokens) or "c"
    (params E, A, alpha; C FLOPs). Loss in the units it was fitted on (bpb or nats)."""

    form: str
    params: dict[str, float]
    ci95: dict[str, tuple[float, float]]
    residuals: tuple[float, ...]
    selection: dict[str, Any]
    n_points: int
    boot_params: tuple[tuple[float, ...], ...] = ()

    def predict(
        self, N: float | np.ndarray | None = None, D: float | np.ndarray | None = None,
        C: float | np.ndarray | None = None,
    ) -> np.ndarray:
        """Task loss at (N, D) for form "nd", or at C for form "c"."""
        return _step1_value(self.form, tuple(self.params.values()), N, D, C)

    def predict_samples(self, N=None, D=None, C=None) -> np.ndarray:  # noqa: ANN001
        """Bootstrap predictions, shape (n_bootstrap, len(x))."""
        return np.array([_step1_value(self.form, bp, N, D, C) for bp in self.boot_params])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci95"] = {k: list(v) for k, v in self.ci95.items()}
        d["boot_params"] = [list(b) for b in self.boot_params]
        d["residuals"] = list(self.residuals)
        return d


def _step1_value(form: str, p: Sequence[float], N, D, C) -> np.ndarray:  # noqa: ANN001
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
    pred = _step1_value(form, params, *(cols if form == "nd" else (None, None)),
                        C=cols[0] if form == "c" else None)
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
        ci95=ci95,
        residuals=tuple(float(r) for r in y - pred),
        selection={"huber": huber, "n_bootstrap": n_bootstrap, "seed": seed},
        n_points=int(y.size),
        boot_params=tuple(boot),
    )


def _intervals(
    names: Sequence[str], boot: list[tuple[float, ...]]
) -> dict[str, tuple[float, float]]:
    if not boot:
        return {n: (math.nan, math.nan) for n in names}
    arr = np.array(boot)
    return {n: percentile_interval(arr[:, i]) for i, n in enumerate(names)}


# ---------------------------------------------------------------------------------------
# step 2: task loss -> accuracy


@dataclass(frozen=True)
class AccuracyFit:
    """Step 2: acc(L) = b + a / (1 + exp(k (L - L0))); params a, k, L0, b. L in the units of
    the fitted task loss; accuracy in [0, 1]."""

    params: dict[str, float]
    ci95: dict[str, tuple[float, float]]
    residuals: tuple[float, ...]
    selection: dict[str, Any]
    n_points: int
    boot_params: tuple[tuple[float, float, float, float], ...] = ()
    form: str = "loss_to_accuracy_sigmoid"

    def predict(self, loss: float | np.ndarray) -> np.ndarray:
        p = self.params
        return _step2_value((p["a"], p["k"], p["L0"], p["b"]), loss)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci95"] = {k: list(v) for k, v in self.ci95.items()}
        d["boot_params"] = [list(b) for b in self.boot_params]
        d["residuals"] = list(self.residuals)
        return d


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
        ci95=_intervals(names, boot),
        residuals=tuple(float(r) for r in resid),
        selection={"chance": chance, "ceil_limit": ceil_limit, "fixed_ceiling": fixed_ceiling,
                   "weighted": weights is not None, "n_bootstrap": n_bootstrap, "seed": seed},
        n_points=int(y.size),
        boot_params=tuple(boot),
    )


# ---------------------------------------------------------------------------------------
# chaining


@dataclass(frozen=True)
class TwoStepFit:
    """Step 1 and step 2 for one task; predicts accuracy from (N, D) or C."""

    task: str
    step1: TaskLossFit
    step2: AccuracyFit

    def predict_loss(self, N=None, D=None, C=None) -> np.ndarray:  # noqa: ANN001
        return self.step1.predict(N=N, D=D, C=C)

    def predict(self, N=None, D=None, C=None) -> np.ndarray:  # noqa: ANN001
        """Predicted accuracy at (N, D) (step-1 form "nd") or C (form "c")."""
        return self.step2.predict(self.predict_loss(N=N, D=D, C=C))

    def predict_ci95(self, N=None, D=None, C=None) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
        """95% interval of the chained prediction: bootstrap step 1 x bootstrap step 2
        (paired by index)."""
        l_s = self.step1.predict_samples(N=N, D=D, C=C)
        if l_s.size == 0 or not self.step2.boot_params:
            nan = np.full(np.shape(np.atleast_1d(self.predict(N=N, D=D, C=C))), np.nan)
            return nan, nan
        n = min(len(l_s), len(self.step2.boot_params))
        accs = np.array([_step2_value(self.step2.boot_params[i], l_s[i]) for i in range(n)])
        return np.quantile(accs, 0.025, axis=0), np.quantile(accs, 0.975, axis=0)

    def predict_interval(
        self, N=None, D=None, C=None, *, kind: str = "prediction", level: float = 0.95,  # noqa: ANN001
        seed: int = 0,
    ) -> pd.DataFrame:
        """Chained accuracy with a band: DataFrame pred, lo, hi (accuracy units).

        "confidence": bootstrap step 1 x bootstrap step 2 (paired by index), percentiles.
        "prediction": each chained curve plus a deviation drawn from step 2's residuals
        (symmetrised; accuracy of a run's smoothed checkpoints around the fitted sigmoid),
        so the band also holds the run-to-run scatter of one model's accuracy."""
        if kind not in ("prediction", "confidence"):
            raise ValueError(f"kind must be 'prediction' or 'confidence', got {kind!r}")
        pred = np.atleast_1d(np.asarray(self.predict(N=N, D=D, C=C), dtype=float))
        l_s = self.step1.predict_samples(N=N, D=D, C=C)
        tail = 50.0 * (1.0 - level)
        if l_s.size == 0 or not self.step2.boot_params:
            nan = np.full(pred.shape, np.nan)
            return pd.DataFrame({"pred": pred, "lo": nan, "hi": nan})
        n = min(len(l_s), len(self.step2.boot_params))
        accs = np.array([np.atleast_1d(_step2_value(self.step2.boot_params[i], l_s[i]))
                         for i in range(n)])
        if kind == "prediction":
            r = np.asarray(self.step2.residuals, dtype=float)
            r = np.concatenate([r, -r])
            if r.size:
                reps = max(1, -(-2000 // n))
                accs = np.tile(accs, (reps, 1))
                rng = np.random.default_rng(seed)
                accs = accs + r[rng.integers(0, r.size, size=(accs.shape[0], 1))]
        lo, hi = np.percentile(accs, [tail, 100.0 - tail], axis=0)
        return pd.DataFrame({"pred": pred, "lo": lo, "hi": hi})

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "step1": self.step1.to_dict(), "step2": self.step2.to_dict()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def final_points(
    df: pd.DataFrame, *, run_col: str = "run", step_col: str = "step",
    value_cols: Iterable[str] = ("loss",), window: int = 1,
) -> pd.DataFrame:
    """One row per run: its last checkpoint, with `value_cols` averaged over the last
    `window` checkpoints (by step)."""
    rows = []
    for _, g in df.sort_values(step_col).groupby(run_col, sort=True):
        last = g.iloc[-1].copy()
        tail = g.iloc[-window:]
        for c in value_cols:
            last[c] = float(tail[c].mean())
        rows.append(last)
    return pd.DataFrame(rows).reset_index(drop=True)


STEP2_WEIGHTINGS = ("checkpoint", "run", "inverse_noise")


def _step1_points(
    data: pd.DataFrame, tok_col: str, window: int, min_fraction: float | None
) -> pd.DataFrame:
    """Step-1 points: each run's final checkpoint with loss averaged over its last `window`
    checkpoints; or, with `min_fraction`, every checkpoint past that fraction of its run's
    tokens (loss a trailing mean over `window` checkpoints, D the tokens seen so far)."""
    if min_fraction is None:
        return final_points(data, value_cols=("loss",), window=window)
    pts = data.sort_values(["run", "step"])
    loss = pts.groupby("run")["loss"].transform(
        lambda s: s.rolling(window, min_periods=1).mean()
    )
    pts = pts.assign(loss=loss)
    frac = pts[tok_col] / pts.groupby("run")[tok_col].transform("max")
    return pts[frac >= min_fraction]


def _step2_weights(raw: pd.DataFrame, pts: pd.DataFrame, weighting: str) -> np.ndarray | None:
    """Per-point weights for step 2: None (each checkpoint counts once), 'run' (each run
    counts once in total), 'inverse_noise' (1 / the run's accuracy noise variance, estimated
    from differences of consecutive raw checkpoints)."""
    if weighting == "checkpoint":
        return None
    if weighting == "run":
        return (1.0 / pts.groupby("run")["acc"].transform("size")).to_numpy(dtype=float)
    if weighting == "inverse_noise":
        var = raw.groupby("run")["acc"].agg(lambda s: float(np.var(np.diff(s.to_numpy())) / 2))
        floor = float(var[var > 0].median()) * 1e-2 if (var > 0).any() else 1e-12
        return (1.0 / np.maximum(pts["run"].map(var).to_numpy(dtype=float), floor))
    raise DataError(f"step-2 weighting must be one of {STEP2_WEIGHTINGS}, got {weighting!r}")


def fit_two_step(
    df: pd.DataFrame,
    *,
    task: str = "task",
    use_compute: bool = False,
    chance: float | None = None,
    final_window: int = 5,
    step1_min_fraction: float | None = None,
    step1_huber: float = 1e-3,
    step2_min_fraction: float = 0.5,
    step2_smooth: int = 11,
    step2_fixed_ceiling: bool = False,
    step2_anchor: bool = True,
    step2_weighting: str = "checkpoint",
    n_bootstrap: int = 100,
    seed: int = 0,
) -> TwoStepFit:
    """Fit both steps on one task's ladder checkpoints.

    df columns: run, step, N (params), D (tokens seen at that checkpoint), loss (task loss),
    acc (task accuracy); C (FLOPs) when use_compute.
    Step 1 uses each run's final checkpoint, loss averaged over its last `final_window`
    checkpoints (`step1_min_fraction=None`); or, given a fraction, every checkpoint past that
    fraction of its run's tokens, loss a trailing mean over `final_window` checkpoints, D the
    tokens seen so far. `step1_huber` is the Huber scale on log loss.
    Step 2 uses every checkpoint past `step2_min_fraction` of its run's tokens, loss and
    accuracy replaced by their centred moving average over `step2_smooth` consecutive
    checkpoints of the same run (1 = raw). `chance` fixes the sigmoid's floor;
    `step2_fixed_ceiling` pins its ceiling at accuracy 1 (else fitted, at most 1);
    `step2_anchor` adds the ideal point (loss 0, accuracy 1) as Bhagia et al. do;
    `step2_weighting` is one of STEP2_WEIGHTINGS.
    """
    need = {"run", "step", "loss", "acc"} | ({"C"} if use_compute else {"N", "D"})
    missing = need - set(df.columns)
    if missing:
        raise DataError(f"two-step fit for {task!r}: missing columns {sorted(missing)}")
    data = df.dropna(subset=["loss", "acc"])
    tok_col = "C" if use_compute else "D"
    s1_pts = _step1_points(data, tok_col, final_window, step1_min_fraction)
    scale = {"C": s1_pts["C"]} if use_compute else {"N": s1_pts["N"], "D": s1_pts["D"]}
    s1 = fit_task_loss(s1_pts["loss"], **scale, huber=step1_huber, n_bootstrap=n_bootstrap,
                       seed=seed)
    frac = data[tok_col] / data.groupby("run")[tok_col].transform("max")
    raw = data[frac >= step2_min_fraction].sort_values(["run", "step"])
    pts = raw
    if step2_smooth > 1:
        smooth = raw.groupby("run")[["loss", "acc"]].transform(
            lambda s: s.rolling(step2_smooth, center=True, min_periods=1).mean()
        )
        pts = raw.assign(loss=smooth["loss"], acc=smooth["acc"])
    loss, acc = pts["loss"].to_numpy(dtype=float), pts["acc"].to_numpy(dtype=float)
    w = _step2_weights(raw, pts, step2_weighting)
    if step2_anchor:
        w_anchor = float(np.mean(w)) if w is not None else 1.0
        loss, acc = np.append(loss, 0.0), np.append(acc, 1.0)
        w = np.append(w, w_anchor) if w is not None else None
    s2 = fit_loss_to_accuracy(loss, acc, chance=chance, fixed_ceiling=step2_fixed_ceiling,
                              weights=w, n_bootstrap=n_bootstrap, seed=seed)
    return TwoStepFit(task=task, step1=s1, step2=s2)


def predict_two_step(
    ladder: pd.DataFrame,
    *,
    N: float | None = None,
    D: float | None = None,
    C: float | None = None,
    chance: float | dict[str, float] | None = None,
    final_window: int = 5,
    step1_min_fraction: float | None = None,
    step1_huber: float = 1e-3,
    step2_min_fraction: float = 0.5,
    step2_smooth: int = 11,
    step2_fixed_ceiling: bool = False,
    step2_anchor: bool = True,
    step2_weighting: str = "checkpoint",
    n_bootstrap: int = 100,
    seed: int = 0,
) -> pd.DataFrame:
    """Fit the two steps per task on a long ladder frame (columns task, run, step, N, D, C,
    loss, acc) and predict a target at (N, D) — or at C when only C is given. The method
    options are fit_two_step's; `chance` may map task -> floor.

    Returns one row per task: task, predicted_loss, predicted_acc, acc_lo, acc_hi, plus
    the step fits' parameters (s1_*, s2_*)."""
    if "task" not in ladder.columns:
        raise DataError("ladder frame needs a 'task' column")
    use_compute = N is None or D is None
    if use_compute and C is None:
        raise DataError("give the target's N and D, or its C")
    rows = []
    for task, g in ladder.groupby("task", sort=True):
        ch = chance.get(str(task)) if isinstance(chance, dict) else chance
        fit = fit_two_step(
            g, task=str(task), use_compute=use_compute, chance=ch, final_window=final_window,
            step1_min_fraction=step1_min_fraction, step1_huber=step1_huber,
            step2_min_fraction=step2_min_fraction, step2_smooth=step2_smooth,
            step2_fixed_ceiling=step2_fixed_ceiling, step2_anchor=step2_anchor,
            step2_weighting=step2_weighting, n_bootstrap=n_bootstrap, seed=seed,
        )
        kw = {"C": C} if use_compute else {"N": N, "D": D}
        lo, hi = fit.predict_ci95(**kw)
        row: dict[str, Any] = {
            "task": str(task),
            "predicted_loss": float(np.squeeze(fit.predict_loss(**kw))),
            "predicted_acc": float(np.squeeze(fit.predict(**kw))),
            "acc_lo": float(np.squeeze(lo)),
            "acc_hi": float(np.squeeze(hi)),
        }
        row.update({f"s1_{k}": v for k, v in fit.step1.params.items()})
        row.update({f"s2_{k}": v for k, v in fit.step2.params.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def holdout_validation(
    ladder: pd.DataFrame,
    *,
    held_out_N: Sequence[float] | None = None,
    actual_window: int = 5,
    chance: float | dict[str, float] | None = None,
    method: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Ladder-only check of a two-step method: fit on the runs whose N is not in `held_out_N`
    (default: the largest ladder size), predict each held-out run's final accuracy from its
    (N, final D), and compare with the mean accuracy of its last `actual_window` checkpoints.
    `method` holds predict_two_step's method options.

    Returns one row per held-out run and task: run, task, N, D (tokens), actual_acc,
    predicted_acc, abs_error_points (100 x |predicted - actual|)."""
    need = {"task", "run", "step", "N", "D", "loss", "acc"}
    missing = need - set(ladder.columns)
    if missing:
        raise DataError(f"holdout validation: ladder frame lacks columns {sorted(missing)}")
    sizes = np.unique(ladder["N"].to_numpy(dtype=float))
    held = np.array([sizes.max()] if held_out_N is None else held_out_N, dtype=float)
    is_held = ladder["N"].isin(held)
    train, test = ladder[~is_held], ladder[is_held]
    if test.empty or train["N"].nunique() < 2:
        raise DataError("holdout validation needs held-out runs and at least 2 other sizes")
    return _predict_runs(train, test, actual_window, chance, method)


def load_olmo_ladder(path: str | Path) -> pd.DataFrame:
    """Read the published OLMo ladder table (olmo_ladder_task_bpb_acc.csv) into the columns
    this module uses: task, run, role, step, N, D (tokens), C (FLOPs), loss (task bpb),
    acc (task accuracy, ranked classification), chance."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"OLMo ladder table not found: {p}")
    raw = pd.read_csv(p)
    need = {"run", "role", "n_params", "tokens", "flops_approx", "step", "task", "task_bpb",
            "task_acc_rc", "chance"}
    missing = need - set(raw.columns)
    if missing:
        raise DataError(f"{p.name}: missing columns {sorted(missing)}")
    out = pd.DataFrame({
        "task": raw["task"].astype(str),
        "run": raw["run"].astype(str),
        "role": raw["role"].astype(str),
        "step": raw["step"].astype(float),
        "N": raw["n_params"].astype(float),
        "D": raw["tokens"].astype(float),
        "C": raw["flops_approx"].astype(float),
        "loss": raw["task_bpb"].astype(float),
        "acc": raw["task_acc_rc"].astype(float),
        "chance": raw["chance"].astype(float),
    })
    # rows without a step (an annealed final eval) sort last within their run
    out["step"] = out["step"].fillna(np.inf)
    return out


# ---------------------------------------------------------------------------------------
# ladder-only back-test: choosing a method without the targets


@dataclass(frozen=True)
class LadderFold:
    """One ladder-only extrapolation fold. Runs are grouped by size (N) and by their
    tokens-per-parameter ratio (final D / N). The `hold_sizes` largest sizes and the
    `hold_ratios` largest ratios are held out; the fit uses the runs in neither held group,
    the prediction targets the runs in every held group that is not empty (e.g. 1 and 1:
    fit on the smaller sizes at the smaller ratios, predict the largest size at the largest
    ratio, the ladder's corner)."""

    name: str
    hold_sizes: int = 0
    hold_ratios: int = 0


LADDER_FOLDS: tuple[LadderFold, ...] = (
    LadderFold("largest size", hold_sizes=1),
    LadderFold("largest ratio", hold_ratios=1),
    LadderFold("corner", hold_sizes=1, hold_ratios=1),
    LadderFold("two largest sizes", hold_sizes=2),
)


def _run_table(ladder: pd.DataFrame) -> pd.DataFrame:
    """One row per run: N, final D (tokens), C = N x D (FLOPs / 6), ratio_group (0 = the
    smallest tokens-per-parameter ratio; ratios within 10 % of each other share a group)."""
    runs = ladder.groupby("run").agg(N=("N", "first"), D=("D", "max"))
    ratio = runs["D"] / runs["N"]
    order = np.sort(ratio.unique())
    groups, g, last = {}, -1, -math.inf
    for r in order:
        if r > last * 1.1:
            g += 1
            last = r
        groups[r] = g
    return runs.assign(C=runs["N"] * runs["D"], ratio_group=ratio.map(groups))


def split_ladder(
    ladder: pd.DataFrame, fold: LadderFold
) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """(train, test, distance) for one fold; distance = decades of compute (N x D) from the
    largest training run to the largest test run."""
    if fold.hold_sizes <= 0 and fold.hold_ratios <= 0:
        raise DataError(f"fold {fold.name!r} holds nothing out")
    runs = _run_table(ladder)
    sizes = np.sort(runs["N"].unique())
    ratios = np.sort(runs["ratio_group"].unique())
    big_n = runs["N"].isin(sizes[len(sizes) - fold.hold_sizes:]) if fold.hold_sizes > 0 \
        else pd.Series(False, index=runs.index)
    big_r = runs["ratio_group"].isin(ratios[len(ratios) - fold.hold_ratios:]) \
        if fold.hold_ratios > 0 else pd.Series(False, index=runs.index)
    train_runs = runs.index[~big_n & ~big_r]
    test_mask = pd.Series(True, index=runs.index)
    if fold.hold_sizes > 0:
        test_mask &= big_n
    if fold.hold_ratios > 0:
        test_mask &= big_r
    test_runs = runs.index[test_mask]
    train = runs.loc[train_runs]
    if train["N"].nunique() < 2 or test_runs.empty:
        raise DataError(f"fold {fold.name!r} leaves fewer than 2 sizes to fit, or nothing to "
                        "predict")
    distance = math.log10(float(runs.loc[test_runs, "C"].max()) / float(train["C"].max()))
    return (ladder[ladder["run"].isin(train_runs)], ladder[ladder["run"].isin(test_runs)],
            distance)


def _predict_runs(
    train: pd.DataFrame, test: pd.DataFrame, actual_window: int,
    chance: float | dict[str, float] | None, method: Mapping[str, Any] | None,
) -> pd.DataFrame:
    """Fit each task once on `train` and predict every `test` run's final accuracy from its
    (N, final D); compare with the mean of its last `actual_window` checkpoints."""
    opts = {"n_bootstrap": 0, **dict(method or {})}
    fits = {}
    for task, g in train.groupby("task", sort=True):
        ch = chance.get(str(task)) if isinstance(chance, dict) else chance
        fits[str(task)] = fit_two_step(g, task=str(task), chance=ch, **opts)
    rows = []
    for run, g in test.groupby("run", sort=True):
        N, D = float(g["N"].iloc[0]), float(g["D"].max())
        actual = (g.sort_values("step").groupby("task").tail(actual_window)
                  .groupby("task")["acc"].mean())
        for task, fit in fits.items():
            p = float(np.squeeze(fit.predict(N=N, D=D)))
            a = float(actual.get(task, np.nan))
            rows.append({"run": str(run), "task": task, "N": N, "D": D, "actual_acc": a,
                         "predicted_acc": p, "abs_error_points": 100 * abs(p - a)})
    return pd.DataFrame(rows)


def ladder_backtest(
    ladder: pd.DataFrame,
    *,
    method: Mapping[str, Any] | None = None,
    folds: Sequence[LadderFold] = LADDER_FOLDS,
    actual_window: int = 5,
    chance: float | dict[str, float] | None = None,
) -> pd.DataFrame:
    """Score a two-step method (fit_two_step options in `method`) on the ladder alone: for
    each fold, fit every task on the fold's training runs and predict the held-out runs'
    final accuracy (vs the mean of their last `actual_window` checkpoints).

    Returns one row per fold: fold, n_train_runs, n_test_runs, distance_decades (compute
    extrapolated, log10 of N x D), mae_points (100 x mean |predicted - actual| over test
    runs x tasks)."""
    need = {"task", "run", "step", "N", "D", "loss", "acc"}
    missing = need - set(ladder.columns)
    if missing:
        raise DataError(f"ladder back-test: frame lacks columns {sorted(missing)}")
    rows = []
    for fold in folds:
        train, test, dist = split_ladder(ladder, fold)
        val = _predict_runs(train, test, actual_window, chance, method)
        rows.append({"fold": fold.name, "n_train_runs": train["run"].nunique(),
                     "n_test_runs": test["run"].nunique(), "distance_decades": dist,
                     "mae_points": float(val["abs_error_points"].mean())})
    return pd.DataFrame(rows)


def ladder_score(backtest: pd.DataFrame) -> float:
    """The selection score of a ladder_backtest table: fold MAEs (points) averaged with
    weights equal to each fold's extrapolation distance (decades of compute), so folds that
    reach further, as a target far beyond the ladder does, count more."""
    w = backtest["distance_decades"].to_numpy(dtype=float).clip(min=1e-3)
    return float(np.average(backtest["mae_points"].to_numpy(dtype=float), weights=w))


@dataclass(frozen=True)
class MethodSelection:
    """select_two_step_method's outcome: `table` (one row per variant, in declared order:
    each fold's MAE in points and the weighted `score`), `chosen` (lowest score; the first
    declared wins a tie) and `distances` (decades of compute per fold)."""

    table: pd.DataFrame
    chosen: str
    distances: dict[str, float]


def select_two_step_method(
    ladder: pd.DataFrame,
    variants: Mapping[str, Mapping[str, Any]],
    *,
    folds: Sequence[LadderFold] = LADDER_FOLDS,
    actual_window: int = 5,
    chance: float | dict[str, float] | None = None,
) -> MethodSelection:
    """Choose among named two-step variants (fit_two_step options) by ladder_score over the
    ladder-only `folds`; nothing beyond the ladder is used."""
    if not variants:
        raise DataError("select_two_step_method needs at least one variant")
    rows, distances = [], {}
    for name, method in variants.items():
        bt = ladder_backtest(ladder, method=method, folds=folds, actual_window=actual_window,
                             chance=chance)
        distances = dict(zip(bt["fold"], bt["distance_decades"], strict=True))
        rows.append({"variant": name, **dict(zip(bt["fold"], bt["mae_points"], strict=True)),
                     "score": ladder_score(bt)})
    table = pd.DataFrame(rows).set_index("variant")
    scores = table["score"].to_numpy(dtype=float)
    if not np.isfinite(scores).any():
        raise DataError("no variant has a finite ladder score")
    chosen = str(table.index[int(np.nanargmin(scores))])
    return MethodSelection(table=table, chosen=chosen, distances=distances)
