"""Fitted results as immutable values: the base every fit shares, and the scaling-law fit.

`BootstrapFit` is the one result family. Every fit scaletrack returns builds on it
(`FitResult` here; `SigmoidFit` in `analysis.emergence`; `TaskLossFit`, `AccuracyFit` and
`TwoStepFit` in `analysis.two_step_fit`) and carries:

- `params`: name -> fitted value; `param_names` their order;
- `ci`: name -> (low, high), the 95% bootstrap percentile interval (NaN where not computed;
  `ci95` is the same mapping);
- `boot_params`: the bootstrap refits, a read-only float array of shape (n_boot, n_params),
  columns in `param_names` order, (0, n_params) when no bootstrap was run;
- `residuals`, `selection` (the data and options the fit used), `n_points`;
- one interval method, `predict_interval(..., kind="prediction" | "confidence", level=0.95)`:
  a DataFrame with columns pred, lo, hi in the units of `predict`;
- `to_dict` / `from_dict` (JSON-able; the key "ci95" holds `ci`, "boot_params" the draws).

`FitResult` is a scaling law. Forms and what `predict` takes/returns (N params, D tokens,
C FLOPs, loss nats/token):

- "chinchilla": L(N, D) = E + A/N^alpha + B/D^beta; `predict(N, D)` or `predict(df)` -> loss.
- "compute":    L(C) = E + a·C^(-alpha);               `predict(C)` -> loss.
- "power_N", "power_D": L(x) = E + a·x^(-alpha) (E = 0 for the Kaplan form without the
  irreducible term); `predict(x)` -> loss.
- "isoflop", "envelope": N_opt(C) = k_N·C^a, D_opt(C) = k_D·C^b; `predict(C)` -> N_opt.

Its `predict_interval` bands:

- "confidence": the spread of the mean curve, percentiles of the bootstrap refits'
  predictions (`boot_params`).
- "prediction": the range where a *new run* should land. Each bootstrap refit's prediction
  (in log loss) is paired with a run-to-run deviation: with `extra["scatter_model"]` (set by
  `scaletrack.analysis.calibration.calibrate_scatter`) it is m·d + sigma(d)·z, z drawn from
  the model's standardised out-of-sample residuals, sigma(d)^2 = s0^2 + (k·d)^2 and d the
  point's `extrapolation_distance` (decades beyond the training runs; the "frontier" models
  of `analysis.extrapolation` use the decades of compute and of N separately); else from
  `extra["scatter_residuals"]` when present, else from the fit's own residuals rescaled by
  sqrt(n / (n - p)) for p fitted parameters. Percentiles of the sums give the band (a
  residual bootstrap). Where the fitted points were seed means (`extra["seed_scatter"]`, see
  `calibration.seed_scatter`), a single new run's own seed noise is added: normal with
  variance sd^2·(1 - mean 1/n_seeds), the part of the per-run scatter averaging removed.
  bench/bench_backtest.py measures the coverage this reaches when
  extrapolating Epoch's points to larger compute.

`status` is "ok" or "degenerate" (with `status_reason`, see `scaletrack.analysis.status`):
a degenerate law is reported, never trusted. Payloads written before the draws had their own
field (schema 1: `extra["bootstrap_params"]`) load unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Self

import numpy as np
import pandas as pd

from scaletrack.analysis.extrapolation import FRONTIER_MODELS, frontier_draws

LOSS_FORMS = ("chinchilla", "compute", "power_N", "power_D")
ALLOCATION_FORMS = ("isoflop", "envelope")
FORMS = LOSS_FORMS + ALLOCATION_FORMS
SCHEMA_VERSION = 2  # 2: bootstrap draws in their own field (1: in extra)
STATUSES = ("ok", "degenerate")
INTERVAL_KINDS = ("prediction", "confidence")
_MIN_DRAWS = 2000


def _plain(value: Any) -> Any:
    """Convert numpy scalars/arrays and tuples to JSON-able Python; non-finite floats -> None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _draws_array(rows: Any, n_params: int) -> np.ndarray:
    """Bootstrap draws as a read-only (n_boot, n_params) float array."""
    arr = np.array([] if rows is None else rows, dtype=float)
    if arr.size == 0:
        arr = arr.reshape(0, n_params)
    if arr.ndim != 2 or arr.shape[1] != n_params:
        raise ValueError(f"boot_params must have shape (n_boot, {n_params}), got {arr.shape}")
    arr.setflags(write=False)
    return arr


def check_interval_request(kind: str, level: float) -> None:
    """Raise ValueError unless `kind` is one of INTERVAL_KINDS and 0 < level < 1."""
    if kind not in INTERVAL_KINDS:
        raise ValueError(f"kind must be one of {INTERVAL_KINDS}, got {kind!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")


@dataclass(frozen=True, kw_only=True, eq=False)
class BootstrapFit:
    """A fitted model with bootstrap intervals: the base of every fit result.

    Subclasses give `predict` and `_curves` (predictions for many parameter rows at once);
    the base gives the intervals, the draws by name, a summary table and serialisation.
    Two results are equal when their `to_dict` payloads are.
    """

    form: str
    params: Mapping[str, float]
    ci: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    residuals: tuple[float, ...] = ()
    selection: Mapping[str, Any] = field(default_factory=dict)
    n_points: int = 0
    boot_params: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))

    def __post_init__(self) -> None:
        params = {str(k): float(v) for k, v in self.params.items()}
        ci = {str(k): (_float(v[0]), _float(v[1])) for k, v in self.ci.items()}
        object.__setattr__(self, "params", MappingProxyType(params))
        object.__setattr__(self, "ci", MappingProxyType(ci))
        object.__setattr__(self, "residuals", tuple(float(r) for r in self.residuals))
        object.__setattr__(self, "selection", MappingProxyType(dict(self.selection)))
        object.__setattr__(self, "n_points", int(self.n_points))
        object.__setattr__(self, "boot_params", _draws_array(self.boot_params, len(params)))

    # ------------------------------------------------------------------ parameters
    @property
    def param_names(self) -> tuple[str, ...]:
        """Parameter names, in the column order of `boot_params`."""
        return tuple(self.params)

    @property
    def ci95(self) -> Mapping[str, tuple[float, float]]:
        """The same mapping as `ci` (every interval here is a 95% one)."""
        return self.ci

    @property
    def n_boot(self) -> int:
        """Number of bootstrap refits kept (rows of `boot_params`)."""
        return int(self.boot_params.shape[0])

    def bootstrap_samples(self) -> dict[str, np.ndarray]:
        """The bootstrap refits' parameters, one array per name (empty when none were kept)."""
        if self.n_boot == 0:
            return {}
        return {k: self.boot_params[:, i] for i, k in enumerate(self.param_names)}

    def summary(self) -> pd.DataFrame:
        """One row per parameter: param, value, ci_low, ci_high."""
        rows = [
            {
                "param": k,
                "value": v,
                "ci_low": self.ci.get(k, (math.nan, math.nan))[0],
                "ci_high": self.ci.get(k, (math.nan, math.nan))[1],
            }
            for k, v in self.params.items()
        ]
        return pd.DataFrame(rows, columns=["param", "value", "ci_low", "ci_high"])

    # ------------------------------------------------------------------ prediction
    def predict(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """The fitted curve at the given points (see the subclass for its arguments)."""
        raise NotImplementedError

    def _curves(self, rows: np.ndarray, args: tuple, kwargs: dict) -> np.ndarray:
        """Predictions for many parameter rows (columns in `param_names` order) at the
        points `args`/`kwargs` name: shape (n_rows, n_points)."""
        raise NotImplementedError

    def predict_interval(
        self, *args: Any, kind: str = "prediction", level: float = 0.95, seed: int = 0,
        **kwargs: Any,
    ) -> pd.DataFrame:
        """Predictions with a band: a DataFrame with columns pred, lo, hi (units of `predict`),
        one row per point. Arguments as for `predict`.

        kind "confidence": where the fitted curve lies (percentiles of the bootstrap refits'
        curves); "prediction": where a new observation lands (the refits' curves plus drawn
        residual scatter; under the "frontier_hedged" residual model it always holds the
        band without drift and the law's own prediction, since that model's drift is
        uncertain in size down to zero, so it also holds the confidence band).
        lo and hi are NaN when there are no refits to draw from.
        """
        check_interval_request(kind, level)
        pred = np.atleast_1d(np.asarray(self.predict(*args, **kwargs), dtype=float)).ravel()
        draws = self._interval_draws(pred, kind, seed, args, kwargs)
        tail = 50.0 * (1.0 - level)
        if draws.shape[0] < 2:
            lo = hi = np.full(pred.size, np.nan)
        else:
            lo, hi = self._from_draw_scale(np.percentile(draws, [tail, 100.0 - tail], axis=0))
            if kind == "prediction" and self._band_spans_prediction():
                # a drift of uncertain size, down to none: the band holds the band without
                # the drift (the refits' curves and the scatter) and the law's own value
                plain = self._interval_draws(pred, kind, seed, args, kwargs, drift=False)
                lo0, hi0 = self._from_draw_scale(
                    np.percentile(plain, [tail, 100.0 - tail], axis=0))
                with np.errstate(invalid="ignore"):
                    lo, hi = np.fmin(np.fmin(lo, lo0), pred), np.fmax(np.fmax(hi, hi0), pred)
        return pd.DataFrame({"pred": pred, "lo": lo, "hi": hi})

    def _interval_draws(self, pred: np.ndarray, kind: str, seed: int, args: tuple,
                        kwargs: dict, drift: bool = True) -> np.ndarray:
        """Draws whose percentiles make the band: the refits' curves, plus for "prediction"
        the residuals (symmetrised, one per drawn curve; at least 2,000 curves). `drift`
        False leaves a residual model's drift out."""
        if self.n_boot == 0:
            return np.empty((0, pred.size))
        curves = np.asarray(self._curves(self.boot_params, args, kwargs), dtype=float)
        curves = curves.reshape(self.n_boot, -1)
        if kind == "prediction":
            r = np.asarray(self.residuals, dtype=float)
            r = np.concatenate([r, -r])
            if r.size:
                curves = np.tile(curves, (max(1, -(-_MIN_DRAWS // curves.shape[0])), 1))
                rng = np.random.default_rng(seed)
                curves = curves + r[rng.integers(0, r.size, size=(curves.shape[0], 1))]
        return curves

    def _from_draw_scale(self, values: np.ndarray) -> np.ndarray:
        """Map band percentiles from the scale the draws live on to `predict`'s units."""
        return values

    # ------------------------------------------------------------------ serialisation
    def _band_spans_prediction(self) -> bool:
        """Whether the prediction band is widened to contain the point prediction."""
        return False

    def _payload(self) -> dict[str, Any]:
        """Fields a subclass adds to `to_dict`."""
        return {}

    @classmethod
    def _fields(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor arguments from a `to_dict` payload; subclasses add theirs."""
        params = {k: _float(v) for k, v in data["params"].items()}
        ci = data.get("ci95", data.get("ci", {}))
        rows = [[_float(x) for x in row] for row in data.get("boot_params") or []]
        return {
            "form": data["form"],
            "params": params,
            "ci": {k: (_float(v[0]), _float(v[1])) for k, v in ci.items()},
            "residuals": tuple(_float(r) for r in data.get("residuals", [])),
            "selection": data.get("selection", {}),
            "n_points": data.get("n_points", len(data.get("residuals", []))),
            "boot_params": np.array(rows, dtype=float).reshape(len(rows), len(params)),
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (non-finite numbers become null); inverse of `from_dict`."""
        return _plain({
            "schema": SCHEMA_VERSION,
            "form": self.form,
            "params": dict(self.params),
            "ci95": {k: list(v) for k, v in self.ci.items()},
            "residuals": list(self.residuals),
            "selection": dict(self.selection),
            "n_points": self.n_points,
            "boot_params": self.boot_params.tolist(),
            **self._payload(),
        })

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a result written by `to_dict`."""
        return cls(**cls._fields(data))

    def to_json(self) -> str:
        """Strict JSON text (no NaN literals)."""
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Inverse of `to_json`."""
        return cls.from_dict(json.loads(text))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BootstrapFit) or type(other) is not type(self):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, kw_only=True, eq=False)
class FitResult(BootstrapFit):
    """A fitted scaling law: parameters, 95% bootstrap intervals, residuals and the data it
    came from.

    `residuals` are log(predicted) - log(observed) per selected point, in the order of
    `selection["index"]`. `extra` holds form-specific detail (objective, convergence,
    per-budget minima, the scatter model of prediction bands) and is carried through JSON.
    """

    extra: Mapping[str, Any] = field(default_factory=dict)
    status: str = "ok"
    status_reason: str = ""

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValueError(f"unknown fit form {self.form!r}; expected one of {FORMS}")
        super().__post_init__()
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))
        if self.status not in STATUSES:
            raise ValueError(f"unknown fit status {self.status!r}; expected one of {STATUSES}")

    def __repr__(self) -> str:
        parts = []
        for k, v in self.params.items():
            lo, hi = self.ci.get(k, (math.nan, math.nan))
            parts.append(f"{k}={v:.4g} [{lo:.3g}, {hi:.3g}]")
        status = self.status + (f" ({self.status_reason})" if self.status_reason else "")
        return (f"FitResult(form={self.form!r}, n_points={self.n_points}, status={status!r}, "
                f"{', '.join(parts)})")

    @property
    def degenerate(self) -> bool:
        """True when the law cannot be trusted (see `status_reason`)."""
        return self.status == "degenerate"

    # ------------------------------------------------------------------ prediction
    def predict(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """Evaluate the law; see the module docstring for each form's arguments."""
        p = self.params
        if self.form == "chinchilla":
            n, d = _two_arrays(args, kwargs)
            return p["E"] + p["A"] * n ** (-p["alpha"]) + p["B"] * d ** (-p["beta"])
        x = _one_array(self.form, args, kwargs)
        if self.form in ("compute", "power_N", "power_D"):
            return p["E"] + p["a"] * x ** (-p["alpha"])
        return p["k_N"] * x ** p["a"]

    def _curves(self, rows: np.ndarray, args: tuple, kwargs: dict) -> np.ndarray:
        p = {k: rows[:, i][:, None] for i, k in enumerate(self.param_names)}
        with np.errstate(all="ignore"):
            if self.form == "chinchilla":
                n, d = _two_arrays(args, kwargs)
                n, d = n.ravel()[None, :], d.ravel()[None, :]
                return p["E"] + p["A"] * n ** (-p["alpha"]) + p["B"] * d ** (-p["beta"])
            x = _one_array(self.form, args, kwargs).ravel()[None, :]
            if self.form in ("compute", "power_N", "power_D"):
                return p["E"] + p["a"] * x ** (-p["alpha"])
            return p["k_N"] * x ** p["a"]

    def _interval_draws(self, pred: np.ndarray, kind: str, seed: int, args: tuple,
                        kwargs: dict, drift: bool = True) -> np.ndarray:
        """Log-loss draws: the refits' curves, plus for "prediction" the calibrated scatter
        (with the residual model's drift unless `drift` is False)."""
        with np.errstate(all="ignore"):
            if self.n_boot:
                log_curves = np.log(self._curves(self.boot_params, args, kwargs))
                log_curves = log_curves[np.all(np.isfinite(log_curves), axis=1)]
            else:
                log_curves = np.empty((0, pred.size))
            if kind == "confidence":
                return log_curves
            if log_curves.shape[0] == 0:  # no refits: the point fit with residual scatter
                log_curves = np.log(pred)[None, :]
            # at least 2,000 (refit, residual) pairs so the band's tails are smooth
            reps = -(-_MIN_DRAWS // log_curves.shape[0])
            log_curves = np.tile(log_curves, (reps, 1))
            distance = self.extrapolation_distance(*args, **kwargs).ravel()
            if (self.extra.get("scatter_model") or {}).get("name") in FRONTIER_MODELS:
                distance = np.vstack([distance, self.n_extrapolation_distance(*args, **kwargs)])
            return log_curves - self._scatter_draws(log_curves.shape, seed, distance, drift)

    def _from_draw_scale(self, values: np.ndarray) -> np.ndarray:
        return np.exp(values)

    def _band_spans_prediction(self) -> bool:
        # a hedged drift of size u·b, u uniform on [0, 2]: no drift is as plausible as the
        # fitted one, so the band keeps the band without drift and the law's value inside it
        return (self.extra.get("scatter_model") or {}).get("name") == "frontier_hedged"

    def scatter_scale(self) -> float:
        """The run-to-run scatter in log loss used by prediction intervals (RMS, rescaled)."""
        held_out = self.extra.get("scatter_residuals")
        if held_out:
            r = np.asarray(held_out, dtype=float)
            return float(np.sqrt(np.mean(r * r)))
        r = np.asarray(self.residuals, dtype=float)
        n, p = r.size, len(self.params)
        if n == 0:
            return math.nan
        return float(np.sqrt(np.mean(r * r) * n / max(n - p, 1)))

    def log10_scale(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """log10 of the law's scale variable at the given points (arguments as for `predict`):
        6·N·D FLOPs for "chinchilla", else the one variable the form takes (C, N or D)."""
        with np.errstate(all="ignore"):
            if self.form == "chinchilla":
                n, d = _two_arrays(args, kwargs)
                return np.log10(6.0 * n * d)
            return np.log10(_one_array(self.form, args, kwargs))

    def extrapolation_distance(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """Decades beyond the largest training run, max(0, log10 x - log10 x_max) (see
        `log10_scale`); zero everywhere when the training reach was not recorded. Under the
        "reach" residual model a Chinchilla fit's distance is the larger of that and the
        decades of N beyond its largest training model."""
        x = np.asarray(self.log10_scale(*args, **kwargs), dtype=float)
        x_max = self.extra.get("log10_scale_max")
        if x_max is None:
            return np.zeros_like(x)
        d = np.maximum(x - float(x_max), 0.0)
        model = self.extra.get("scatter_model") or {}
        n_max = self.extra.get("log10_N_max")
        if model.get("name") == "reach" and n_max is not None and self.form == "chinchilla":
            n, _ = _two_arrays(args, kwargs)
            with np.errstate(all="ignore"):
                d = np.maximum(d, np.log10(n) - float(n_max))
        return d

    def n_extrapolation_distance(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """Decades of N beyond the largest training model, max(0, log10 N - log10 N_max), for
        a Chinchilla fit whose training N was recorded; zeros otherwise."""
        x = np.asarray(self.log10_scale(*args, **kwargs), dtype=float).ravel()
        n_max = self.extra.get("log10_N_max")
        if n_max is None or self.form != "chinchilla":
            return np.zeros_like(x)
        n, _ = _two_arrays(args, kwargs)
        with np.errstate(all="ignore"):
            d_n = np.log10(np.asarray(n, dtype=float)) - float(n_max)
        return np.maximum(np.broadcast_to(d_n, np.shape(self.log10_scale(*args, **kwargs)))
                          .ravel(), 0.0)

    def _scatter_draws(self, shape: tuple[int, int], seed: int,
                       distance: np.ndarray | None = None, drift: bool = True) -> np.ndarray:
        """Residual draws (log observed deviations), one per refit row; (rows, 1) broadcast
        over points, or (rows, points) when a residual model scales them by distance."""
        rng = np.random.default_rng(seed)
        draws = self._fit_scatter_draws(shape, rng, distance, drift)
        per_run = self.extra.get("seed_scatter")
        if per_run:  # a single new run: add the seed scatter that averaging took out
            sd = float(per_run["sd"]) * math.sqrt(max(1.0 - float(per_run["inv_seeds"]), 0.0))
            draws = draws + sd * rng.standard_normal((shape[0], 1))
        return draws

    def _fit_scatter_draws(self, shape: tuple[int, int], rng: np.random.Generator,
                           distance: np.ndarray | None, drift: bool = True) -> np.ndarray:
        """Deviations of the fitted points (seed means where seeds were averaged)."""
        model = self.extra.get("scatter_model")
        if model and model.get("name") in FRONTIER_MODELS and distance is not None:
            if not drift and model.get("name") == "frontier_hedged":
                model = {**model, "b_C": 0.0, "b_N": 0.0}
            return frontier_draws(model, shape[0], distance[0], distance[1], rng)
        if model and model.get("z"):
            z = np.asarray(model["z"], dtype=float)
            z = z[rng.integers(0, z.size, size=(shape[0], 1))]
            s0, k, m = (float(model.get(key, 0.0)) for key in ("s0", "k", "m"))
            if k == 0.0 and m == 0.0:
                return s0 * z
            d = np.zeros(shape[1]) if distance is None else np.asarray(distance, dtype=float)
            return m * d[None, :] + np.sqrt(s0 * s0 + (k * d[None, :]) ** 2) * z
        held_out = self.extra.get("scatter_residuals")
        if held_out:
            r = np.asarray(held_out, dtype=float)
            return r[rng.integers(0, r.size, size=(shape[0], 1))]
        r = np.asarray(self.residuals, dtype=float)
        r = r[np.isfinite(r)]
        if r.size == 0:
            return np.zeros((shape[0], 1))
        n, p = r.size, len(self.params)
        scale = math.sqrt(n / max(n - p, 1))
        return (r - r.mean())[rng.integers(0, n, size=(shape[0], 1))] * scale

    # ------------------------------------------------------------------ serialisation
    def _payload(self) -> dict[str, Any]:
        return {"extra": dict(self.extra), "status": self.status,
                "status_reason": self.status_reason}

    @classmethod
    def _fields(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        extra = dict(data.get("extra", {}))
        old_rows = extra.pop("bootstrap_params", None)  # schema 1 kept the draws in extra
        if old_rows and not data.get("boot_params"):
            rows = np.asarray(old_rows, dtype=float)
            if rows.ndim == 2 and rows.shape[1] == len(data["params"]):  # else never used
                data = {**data, "boot_params": old_rows}
        return {**super()._fields(data), "extra": extra,
                "status": data.get("status", "ok"),
                "status_reason": data.get("status_reason", "")}


def _column(df: pd.DataFrame, col: str) -> np.ndarray:
    if col not in df.columns:
        raise KeyError(f"predict needs column {col!r}")
    return df[col].to_numpy(dtype=float)


def _two_arrays(args: tuple, kwargs: dict) -> tuple[np.ndarray, np.ndarray]:
    if len(args) == 1 and isinstance(args[0], pd.DataFrame):
        return _column(args[0], "N"), _column(args[0], "D")
    if "N" in kwargs or "D" in kwargs:
        n, d = kwargs["N"], kwargs["D"]
    elif len(args) == 2:
        n, d = args
    else:
        raise TypeError("chinchilla predict takes (N, D) or a DataFrame with columns N and D")
    n_arr, d_arr = np.broadcast_arrays(np.asarray(n, dtype=float), np.asarray(d, dtype=float))
    return n_arr, d_arr


def _one_array(form: str, args: tuple, kwargs: dict) -> np.ndarray:
    col = {"power_N": "N", "power_D": "D"}.get(form, "C")
    if len(args) == 1 and isinstance(args[0], pd.DataFrame):
        return _column(args[0], col)
    if col in kwargs:
        return np.asarray(kwargs[col], dtype=float)
    if len(args) == 1:
        return np.asarray(args[0], dtype=float)
    raise TypeError(f"{form} predict takes one array ({col}) or a DataFrame with column {col}")
