"""`FitResult`: a fitted scaling law as an immutable value that predicts and serialises.

Forms and what `predict` takes/returns (N params, D tokens, C FLOPs, loss nats/token):

- "chinchilla": L(N, D) = E + A/N^alpha + B/D^beta; `predict(N, D)` or `predict(df)` -> loss.
- "compute":    L(C) = E + a·C^(-alpha);               `predict(C)` -> loss.
- "power_N", "power_D": L(x) = E + a·x^(-alpha) (E = 0 for the Kaplan form without the
  irreducible term); `predict(x)` -> loss.
- "isoflop", "envelope": N_opt(C) = k_N·C^a, D_opt(C) = k_D·C^b; `predict(C)` -> N_opt.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

LOSS_FORMS = ("chinchilla", "compute", "power_N", "power_D")
ALLOCATION_FORMS = ("isoflop", "envelope")
FORMS = LOSS_FORMS + ALLOCATION_FORMS
SCHEMA_VERSION = 1


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


@dataclass(frozen=True)
class FitResult:
    """A fitted law: parameters, 95% bootstrap intervals, residuals and the data it came from.

    `residuals` are log(predicted) - log(observed) per selected point, in the order of
    `selection["index"]`. `extra` holds form-specific detail (objective, convergence,
    per-budget minima) and is carried through JSON.
    """

    form: str
    params: Mapping[str, float]
    ci95: Mapping[str, tuple[float, float]]
    residuals: tuple[float, ...]
    selection: Mapping[str, Any]
    n_points: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValueError(f"unknown fit form {self.form!r}; expected one of {FORMS}")
        params = {str(k): float(v) for k, v in self.params.items()}
        ci = {str(k): (_float(v[0]), _float(v[1])) for k, v in self.ci95.items()}
        object.__setattr__(self, "params", MappingProxyType(params))
        object.__setattr__(self, "ci95", MappingProxyType(ci))
        object.__setattr__(self, "residuals", tuple(float(r) for r in self.residuals))
        object.__setattr__(self, "selection", MappingProxyType(dict(self.selection)))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))
        object.__setattr__(self, "n_points", int(self.n_points))

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

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (non-finite numbers become null); inverse of `from_dict`."""
        return _plain(
            {
                "schema": SCHEMA_VERSION,
                "form": self.form,
                "params": dict(self.params),
                "ci95": {k: list(v) for k, v in self.ci95.items()},
                "residuals": list(self.residuals),
                "selection": dict(self.selection),
                "n_points": self.n_points,
                "extra": dict(self.extra),
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FitResult:
        """Rebuild a result written by `to_dict` (e.g. `store.fits()` payloads)."""
        return cls(
            form=data["form"],
            params={k: _float(v) for k, v in data["params"].items()},
            ci95={k: (_float(v[0]), _float(v[1])) for k, v in data.get("ci95", {}).items()},
            residuals=tuple(_float(r) for r in data.get("residuals", [])),
            selection=data.get("selection", {}),
            n_points=data.get("n_points", len(data.get("residuals", []))),
            extra=data.get("extra", {}),
        )

    def to_json(self) -> str:
        """Strict JSON text (no NaN literals)."""
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> FitResult:
        """Inverse of `to_json`."""
        return cls.from_dict(json.loads(text))

    def summary(self) -> pd.DataFrame:
        """One row per parameter: name, value, ci_low, ci_high."""
        rows = [
            {
                "param": k,
                "value": v,
                "ci_low": self.ci95.get(k, (math.nan, math.nan))[0],
                "ci_high": self.ci95.get(k, (math.nan, math.nan))[1],
            }
            for k, v in self.params.items()
        ]
        return pd.DataFrame(rows)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FitResult):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


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
