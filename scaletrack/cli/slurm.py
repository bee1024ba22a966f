"""CLI: `sweep cancel NAME` and the Slurm part of `sweep status` (job ids, states, logs);
`scaletrack.cli.sweep` registers them in the `sweep` group."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import typer

from scaletrack.cli.common import StoreOption, console, fail, print_table, store_session

if TYPE_CHECKING:
    import pandas as pd

    from scaletrack.store.protocol import StoreLike


def slurm_task_table(store: StoreLike, sweep: str) -> pd.DataFrame:
    """The sweep's Slurm tasks, states refreshed from squeue where it is on PATH.

    Columns: run_key, job_id, state, restarts, node, stdout (the task's log file).
    """
    from scaletrack.sweeps.executors.slurm_queue import LIVE_STATES, squeue_states

    tasks = store.slurm_tasks(sweep)
    if tasks.empty:
        return tasks
    live = tasks["state"].isin(LIVE_STATES)
    if live.any() and shutil.which("squeue"):
        now = squeue_states({str(j).split("_")[0] for j in tasks.loc[live, "job_id"]}) or {}
        for i in tasks.index[live]:
            st = now.get(str(tasks.at[i, "job_id"]))
            if st is not None:
                tasks.at[i, "state"] = st.state
                tasks.at[i, "restarts"] = st.restarts
                tasks.at[i, "node"] = st.node
    tasks["state"] = [f"{s} (cancelled)" if c and "CANCEL" not in s else s
                      for s, c in zip(tasks["state"], tasks["cancelled"], strict=True)]
    return tasks[["run_key", "job_id", "state", "restarts", "node", "stdout"]]


def print_slurm_tasks(tasks: pd.DataFrame, sweep: str) -> None:
    """A table of the tasks, then each task's log file on a line of its own (never wrapped)."""
    print_table(tasks, title=f"slurm tasks of {sweep}",
                columns=["run_key", "job_id", "state", "restarts", "node"])
    for job_id, path in zip(tasks["job_id"], tasks["stdout"], strict=True):
        if path:
            console.print(f"log {job_id}: {path}", markup=False, highlight=False, soft_wrap=True)


def cancel_command(
    name: str = typer.Argument(..., help="Sweep name."),
    store: str | None = StoreOption,
) -> None:
    """Cancel the sweep's Slurm tasks; running cells checkpoint and can be resumed."""
    from scaletrack.sweeps.executors.slurm_queue import cancel_sweep

    with store_session(store, create=False) as st:  # a sweep to cancel needs a store
        known = st.sweeps()
        if known.empty or name not in set(known["name"]):
            from scaletrack.store.engine import redact_url

            fail(f"no sweep named {name!r} in {redact_url(st.url)}")
        cancelled = cancel_sweep(st, name)
    if cancelled:
        console.print(f"sweep {name}: cancelled {len(cancelled)} slurm task(s): "
                      f"{', '.join(cancelled)}; `scaletrack sweep run` resumes them",
                      markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(f"sweep {name}: no live slurm tasks to cancel", markup=False,
                      highlight=False)

