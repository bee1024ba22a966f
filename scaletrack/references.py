"""`package.module:function` references: how users point scaletrack at their own code.

Used for user evaluation tasks, checkpoint loaders and hooks. A reference that cannot be
resolved is a ConfigError naming it, never a traceback.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from scaletrack.errors import ConfigError, one_line


def load_callable(spec: str, what: str = "function") -> Callable[..., Any]:
    """Import `package.module:attr` (dotted attributes allowed) and return it.

    `what` names the role in error messages (e.g. "task", "checkpoint loader").
    """
    module_name, _, attr = str(spec).partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{what} {spec!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's module
        raise ConfigError(
            f"{what} {spec!r}: cannot import module {module_name!r} ({one_line(exc)})"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{what} {spec!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{what} {spec!r} is not callable")
    return obj
