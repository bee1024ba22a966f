"""Is the worker holding a claim still alive? Decidable for workers on this host.

Worker names are "host:pid:index" (see `executors.worker_name`). A claim held by a worker on
this host whose process is gone, or whose PID now belongs to a process started after the
claim's last heartbeat (the PID was reused), is dead: its cell can be taken over at once
instead of waiting for the heartbeat to go stale. Workers on other hosts are never judged
here; their claims expire by heartbeat as before.
"""

from __future__ import annotations

import socket
from datetime import datetime
from typing import TypeGuard

import psutil

# A process cannot have heartbeated before it started; allow for clock rounding (seconds).
_START_SLACK_S = 1.0


def parse_worker(worker: str | None) -> tuple[str, int] | None:
    """(host, pid) of a "host:pid:index" worker name, or None for any other name."""
    if not worker:
        return None
    parts = str(worker).rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def holder_is_dead(worker: str | None, heartbeat_at: datetime | None) -> TypeGuard[str]:
    """True when `worker` ran on this host and its process no longer exists (PID gone, a
    zombie, or reused by a process started after `heartbeat_at`)."""
    parsed = parse_worker(worker)
    if parsed is None or parsed[0] != socket.gethostname():
        return False
    try:
        proc = psutil.Process(parsed[1])
        if proc.status() == psutil.STATUS_ZOMBIE:
            return True
        started = proc.create_time()
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # access denied and the like: assume it lives
        return False
    return heartbeat_at is not None and started > heartbeat_at.timestamp() + _START_SLACK_S
