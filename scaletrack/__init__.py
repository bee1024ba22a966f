"""scaletrack: scaling-law and emergence experiment tracker.

The public Python API is re-exported here; the parts live in `store`, `models`, `sweeps`
and `analysis`.
"""

from scaletrack.errors import ConfigError, DataError, ScaletrackError

__all__ = ["ConfigError", "DataError", "ScaletrackError", "init"]
__version__ = "0.1.0"


def init(*args, **kwargs):  # noqa: ANN002, ANN003 - see scaletrack.tracking.init
    """Start or resume a tracked run (`scaletrack.tracking.init`)."""
    from scaletrack.tracking import init as _init

    return _init(*args, **kwargs)
