"""The store's user-facing error."""

from __future__ import annotations

from scaletrack.errors import ScaletrackError


class StoreError(ScaletrackError):
    """A store URL, connection or store operation failed; the message is one line naming it."""


class ClaimLost(StoreError):
    """This worker no longer holds the run (another took it over); nothing was written."""
