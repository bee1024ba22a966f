"""Curve downsampling on the server: MinMax-LTTB (tsdownsample) keeps spikes and the shape."""

from __future__ import annotations

import numpy as np
from tsdownsample import MinMaxLTTBDownsampler

_DOWNSAMPLER = MinMaxLTTBDownsampler()


def downsample_indices(x: np.ndarray, y: np.ndarray, n_out: int) -> np.ndarray:
    """Indices of at most `n_out` points of the curve (x ascending, y finite) to draw.

    Short curves come back whole. MinMax-LTTB first keeps each bucket's minimum and maximum
    (so a one-step loss spike survives), then picks by largest triangle (LTTB).
    """
    n = len(y)
    if n <= n_out or n_out < 3:
        return np.arange(n)
    idx = _DOWNSAMPLER.downsample(
        np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(y, dtype=np.float64),
        n_out=n_out,
    )
    return np.asarray(idx, dtype=np.int64)
