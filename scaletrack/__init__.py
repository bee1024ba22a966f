"""scaletrack: scaling-law and emergence experiment tracker.

The public Python API is re-exported here; the parts live in `store`, `models`, `sweeps`
and `analysis`.
"""

from scaletrack.errors import ConfigError, DataError, ScaletrackError

__all__ = ["ConfigError", "DataError", "ScaletrackError"]
__version__ = "0.1.0"
