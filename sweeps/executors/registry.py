"""Executors by name: the one place that knows every executor module (none imports it back)."""

from __future__ import annotations

from typing import Any

from scaletrack.errors import ConfigError
from scaletrack.sweeps.executors import Executor


def make_executor(
    kind: str, *, workers: int, address: str | None = None, spec: Any = None
) -> Executor:
    """The executor called `kind` ("local", "ray" or "slurm").

    `spec` is the grid's [executor] table (an ExecutorSpec); Slurm takes its settings from it.
    An executor may also define `preflight(store_url)`, which `run_sweep` calls before the
    store is opened, to refuse a sweep (ConfigError) without touching anything stored.
    """
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
    if kind == "slurm":
        try:
            from scaletrack.sweeps.executors.slurm import SlurmExecutor, SlurmSettings
        except ImportError as exc:  # submitit missing
            raise ConfigError(
                f"executor 'slurm' is not available here ({type(exc).__name__}: {exc}); "
                "pip install 'scaletrack[slurm]'"
            ) from None
        settings = SlurmSettings.from_spec(spec) if spec is not None else SlurmSettings()
        return SlurmExecutor(workers=workers, settings=settings)
    raise ConfigError(f"unknown executor {kind!r}; expected 'local', 'ray' or 'slurm'")
