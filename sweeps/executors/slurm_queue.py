"""Talking to the Slurm controller: are the tools here and the controller up, what squeue says
about a sweep's tasks, scancel, and `cancel_sweep` (`scaletrack sweep cancel NAME`).

None of this needs submitit: `sweep status` and `sweep cancel` use it on any machine with
the Slurm client tools.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scaletrack.errors import ConfigError

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

# the squeue states of a task that is still queued or running
LIVE_STATES = frozenset({
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
    "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED",
    "RESV_DEL_HOLD", "SPECIAL_EXIT",
})


def check_slurm_tools() -> None:
    """sbatch, squeue, scancel and scontrol must be on PATH here."""
    missing = [t for t in ("sbatch", "squeue", "scancel", "scontrol") if shutil.which(t) is None]
    if missing:
        raise ConfigError(f"executor 'slurm': {', '.join(missing)} not found on PATH "
                          "(run from a Slurm login node)")


def check_slurm_reachable() -> None:
    """The Slurm controller answers (`sinfo`), else one line with Slurm's own reason."""
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"executor 'slurm': sinfo did not answer ({exc})") from None
    if out.returncode != 0:
        lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
        raise ConfigError(f"executor 'slurm': cannot reach the Slurm controller "
                          f"({lines[-1] if lines else f'sinfo exit {out.returncode}'})")


@dataclass(frozen=True)
class TaskState:
    """What squeue says about one task."""

    job_id: str
    state: str
    restarts: int
    node: str | None
    reason: str | None


def squeue_states(array_ids: Iterable[str]) -> dict[str, TaskState] | None:
    """job id ("A_T" or "J") -> its state, for every task of the given jobs squeue still lists.

    None when squeue could not answer (controller busy or down): nothing is known, and a task
    must not be taken for gone. Jobs Slurm has already forgotten are simply not listed.
    """
    ids = sorted(set(array_ids))
    if not ids:
        return {}
    cmd = ["squeue", "-h", "-r", "--states=all", "-j", ",".join(ids),
           "-O", "JobArrayID:|,State:|,RestartCnt:|,NodeList:|,Reason:"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    states: dict[str, TaskState] = {}
    if out.returncode != 0:
        # every id forgotten (purged after MinJobAge) is an answer; anything else is not
        return states if "Invalid job id" in out.stderr else None
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 5 or not parts[0]:
            continue
        job_id, state, restarts, node, reason = parts[:5]
        states[job_id] = TaskState(
            job_id, state.split()[0] if state else "UNKNOWN",
            int(restarts) if restarts.isdigit() else 0,
            node if node and node != "(null)" else None,
            reason if reason and reason != "None" else None,
        )
    return states


def scancel(job_ids: Iterable[str], signal_name: str | None = None) -> None:
    """scancel the given jobs (array tasks or whole arrays); silent if some are already gone."""
    ids = sorted(set(job_ids))
    if not ids:
        return
    cmd = ["scancel", *([f"--signal={signal_name}"] if signal_name else []), *ids]
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def cancel_sweep(store: StoreLike, sweep: str) -> list[str]:
    """Flag the sweep's tasks cancelled and scancel the live ones; returns the ids cancelled.

    Tasks get SIGTERM: running cells checkpoint and release their claim (resumable by the
    next `sweep run`), and the sweep's driver, if still running, resubmits nothing.
    """
    ids = store.mark_slurm_cancelled(sweep)
    if not ids:
        return []
    check_slurm_tools()
    arrays = {i.split("_")[0] for i in ids}
    states = squeue_states(arrays)
    if states is None:
        raise ConfigError("squeue did not answer; the tasks were flagged cancelled but are not "
                          "stopped yet: run `scaletrack sweep cancel` again")
    live = {k: v for k, v in states.items() if k in ids and v.state in LIVE_STATES}
    scancel(live)
    for job_id, st in live.items():
        store.update_slurm_task(job_id, state="CANCELLED", restarts=st.restarts, node=st.node)
    return sorted(live)
