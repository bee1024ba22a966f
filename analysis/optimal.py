"""Compute-optimal allocation N_opt(C), D_opt(C) from a fitted law (N params, D tokens, C FLOPs)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from scaletrack.analysis.result import FitResult
from scaletrack.errors import DataError


def chinchilla_allocation(
    params: dict[str, float], compute: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Closed form under C = 6·N·D: G = (alpha·A/(beta·B))^(1/(alpha+beta)),
    N_opt = G·(C/6)^(beta/(alpha+beta)), D_opt = G^-1·(C/6)^(alpha/(alpha+beta))."""
    al, be, a, b = params["alpha"], params["beta"], params["A"], params["B"]
    g = (al * a / (be * b)) ** (1.0 / (al + be))
    c6 = np.asarray(compute, dtype=float) / 6.0
    return g * c6 ** (be / (al + be)), c6 ** (al / (al + be)) / g


def compute_optimal(fit: FitResult, compute: float | Sequence[float] | np.ndarray
                    ) -> pd.DataFrame:
    """N_opt, D_opt and tokens per parameter at each compute budget C (FLOPs).

    Works for "chinchilla" (closed form; adds loss_opt, the predicted loss in nats) and for
    "isoflop"/"envelope" (their fitted power laws). Loss-only laws ("compute", "power_*")
    carry no allocation and raise `DataError`.
    """
    c = np.atleast_1d(np.asarray(compute, dtype=float))
    if np.any(~np.isfinite(c)) or np.any(c <= 0):
        raise DataError("compute budgets must be finite and > 0 FLOPs")
    if fit.form == "chinchilla":
        n_opt, d_opt = chinchilla_allocation(dict(fit.params), c)
        out = pd.DataFrame({"C": c, "N_opt": n_opt, "D_opt": d_opt})
        out["loss_opt"] = fit.predict(n_opt, d_opt)
    elif fit.form in ("isoflop", "envelope"):
        p = fit.params
        out = pd.DataFrame(
            {"C": c, "N_opt": p["k_N"] * c ** p["a"], "D_opt": p["k_D"] * c ** p["b"]}
        )
    else:
        raise DataError(
            f"a {fit.form!r} fit predicts loss only; compute-optimal allocation needs a "
            "'chinchilla', 'isoflop' or 'envelope' fit"
        )
    out["tokens_per_param"] = out["D_opt"] / out["N_opt"]
    return out
