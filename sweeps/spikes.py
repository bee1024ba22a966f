"""Loss-spike detection: a loss far above the rolling median of the recent past.

A step is a spike when ``loss > median + k * 1.4826 * MAD`` and ``loss > median * (1 + min_rel)``
over the previous ``window`` losses (MAD = median absolute deviation; 1.4826 makes it a standard
deviation estimate for Gaussian noise). Spikes are not added to the history, so one spike
cannot mask the next.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np


class SpikeDetector:
    """Streaming detector; ``state()``/``from_state`` let a resumed run continue it exactly."""

    def __init__(
        self, window: int = 50, k: float = 6.0, min_history: int = 20, min_rel: float = 0.02
    ) -> None:
        self.window, self.k, self.min_history, self.min_rel = window, k, min_history, min_rel
        self.history: deque[float] = deque(maxlen=window)

    def update(self, loss: float) -> bool:
        """Feed one loss; True if it is a spike."""
        if len(self.history) >= self.min_history:
            h = np.fromiter(self.history, dtype=float)
            med = float(np.median(h))
            mad = float(np.median(np.abs(h - med))) * 1.4826
            if loss > med + self.k * mad and loss > med * (1.0 + self.min_rel):
                return True
        self.history.append(float(loss))
        return False

    def state(self) -> dict[str, Any]:
        return {
            "window": self.window, "k": self.k, "min_history": self.min_history,
            "min_rel": self.min_rel, "history": list(self.history),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SpikeDetector:
        det = cls(state["window"], state["k"], state["min_history"], state["min_rel"])
        det.history.extend(state["history"])
        return det


def find_spikes(losses: Iterable[float], **kwargs: float) -> np.ndarray:
    """Boolean mask of spikes in a loss sequence (same rule as :class:`SpikeDetector`)."""
    det = SpikeDetector(**kwargs)  # type: ignore[arg-type]
    return np.array([det.update(float(x)) for x in losses], dtype=bool)
