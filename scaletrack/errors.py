"""Exceptions that the CLI turns into one-line errors instead of tracebacks."""


class ScaletrackError(Exception):
    """Base class: a problem the user can fix, with a message that names it."""


class ConfigError(ScaletrackError):
    """A grid file, option or argument is invalid."""


class DataError(ScaletrackError):
    """Input data (a CSV, a corpus, a checkpoint) is missing or malformed."""


class RunBusyError(ScaletrackError):
    """The run is held by another live worker (a sweep cell or a tracked script)."""


def one_line(exc: BaseException, *, with_type: bool = True) -> str:
    """An exception as one line: 'TypeName: first line of its message' (or just the line).

    With no message, the type name alone; `with_type=False` drops the type when there is text.
    """
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}" if with_type else lines[0]
