"""Exceptions that the CLI turns into one-line errors instead of tracebacks."""


class ScaletrackError(Exception):
    """Base class: a problem the user can fix, with a message that names it."""


class ConfigError(ScaletrackError):
    """A grid file, option or argument is invalid."""


class DataError(ScaletrackError):
    """Input data (a CSV, a corpus, a checkpoint) is missing or malformed."""
