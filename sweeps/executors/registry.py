"""Executors by name: the one place that knows every executor module (none imports it back)."""

from __future__ import annotations

from scaletrack.errors import ConfigError
from scaletrack.sweeps.executors import Executor


def make_executor(kind: str, *, workers: int, address: str | None = None) -> Executor:
    """The executor called `kind` ("local" or "ray")."""
    if kind == "local":
        from scaletrack.sweeps.executors.local import LocalExecutor

        return LocalExecutor(workers=workers)
    if kind == "ray":
        try:
            from scaletrack.sweeps.executors.ray import RayExecutor
        except ImportError as exc:
            raise ConfigError(
                f"executor 'ray' is not available here ({type(exc).__name__}: {exc})"
            ) from None
        return RayExecutor(workers=workers, address=address)
    raise ConfigError(f"unknown executor {kind!r}; expected 'local' or 'ray'")
