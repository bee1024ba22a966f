"""Nonparametric bootstrap helpers: resample points with replacement, percentile intervals."""

from __future__ import annotations

import numpy as np


def resample_counts(
    n: int, k: int, seed: int | None | np.random.Generator = 0
) -> np.ndarray:
    """(k, n) matrix: how often each of n points appears in each of k resamples of size n.

    `seed` may be a Generator, so batches drawn in turn continue one random stream."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(k, n))
    counts = np.zeros((k, n))
    np.add.at(counts, (np.repeat(np.arange(k), n), idx.ravel()), 1.0)
    return counts


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite samples (NaN, NaN when there are none)."""
    x = np.asarray(samples, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (float("nan"), float("nan"))
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(x, [tail, 100.0 - tail])
    return (float(lo), float(hi))
