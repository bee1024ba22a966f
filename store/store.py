"""Store: the one place that speaks SQL. SQLite (WAL) by default, PostgreSQL by URL.

`Store` is the facade users open (`Store.open(url)`); its methods come from one module per
domain, each a class over `StoreBase` (engine, sessions, run ids, claim fencing):

- `runs.RunMethods`: sweeps, runs, claims, heartbeats, take-over, release, tags and notes;
- `metrics.MetricMethods`: the batched metric writer, metric upserts and reads;
- `checkpoints.CheckpointMethods`: checkpoints and their evals;
- `ideas.IdeaMethods`: ideas and their attempts;
- `fits.FitMethods`: stored fit results, and the fit cache keyed by a fit's inputs;
- `slurm_tasks.SlurmTaskMethods`: the Slurm tasks of sweeps;
- `run_pages.RunPageMethods`: the dashboard's paged, filtered and grouped reads of runs;
- `importers.apply.ImportMethods`: an import's plan written in one transaction.

Code outside the store types its store by the role it needs (`scaletrack.store.protocol`).
"""

from __future__ import annotations

from scaletrack.store.checkpoints import CHECKPOINT_COLUMNS, EVAL_COLUMNS, CheckpointMethods
from scaletrack.store.fits import FIT_COLUMNS, FitMethods
from scaletrack.store.ideas import IDEA_ATTEMPT_COLUMNS, IDEA_COLUMNS, IdeaMethods
from scaletrack.store.importers.apply import ImportMethods
from scaletrack.store.metrics import MetricMethods
from scaletrack.store.run_pages import RunPageMethods
from scaletrack.store.runs import RUN_COLUMNS, RunMethods
from scaletrack.store.slurm_tasks import SlurmTaskMethods

__all__ = [
    "CHECKPOINT_COLUMNS",
    "EVAL_COLUMNS",
    "FIT_COLUMNS",
    "IDEA_ATTEMPT_COLUMNS",
    "IDEA_COLUMNS",
    "RUN_COLUMNS",
    "Store",
]


class Store(RunMethods, MetricMethods, CheckpointMethods, IdeaMethods, FitMethods,
            SlurmTaskMethods, RunPageMethods, ImportMethods):
    """Experiment database: sweeps, runs, metrics, checkpoints, evals, ideas, fits, Slurm tasks.

    Open with `Store.open(url)`; close with `close()` or use as a context manager. N and
    N_total are parameters, D and tokens are tokens, C and flops are FLOPs, losses are nats
    per token.
    """
