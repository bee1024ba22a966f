"""SQLAlchemy Core schema of the store (the head revision; migrations in store/migrations)."""

from __future__ import annotations

import sqlalchemy as sa

from scaletrack.store.coltypes import Float64Bits, JSONText, NaNFloat, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)

sweeps = sa.Table(
    "sweeps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("spec", JSONText, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("note", sa.Text, nullable=True),  # 0002_byo
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_key", sa.String(64), nullable=False, unique=True),
    sa.Column("sweep", sa.String(200), nullable=True, index=True),
    sa.Column("family", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(200), nullable=True),
    sa.Column("heartbeat_at", UTCDateTime, nullable=True),
    # claim generation (0004_claims): +1 on every claim; writes of the holder are fenced by it
    sa.Column("claim", sa.Integer, nullable=False, server_default="0"),
    sa.Column("N", sa.BigInteger, nullable=True),
    sa.Column("N_total", sa.BigInteger, nullable=True),
    sa.Column("D", sa.BigInteger, nullable=True),
    sa.Column("C", sa.Double, nullable=True),
    sa.Column("seed", sa.BigInteger, nullable=True),
    sa.Column("lr", sa.Double, nullable=True),
    sa.Column("final_loss", sa.Double, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("config", JSONText, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("name", sa.String(200), nullable=True),  # 0002_byo: a human name (e.g. a model)
    sa.Column("note", sa.Text, nullable=True),  # 0002_byo
    # lineage of cooldown branches (revision 0005_branches)
    sa.Column("role", sa.String(16), nullable=False, server_default="cell"),
    sa.Column("parent_run_key", sa.String(64), nullable=True, index=True),
    sa.Column("branch_step", sa.BigInteger, nullable=True),
    sa.CheckConstraint(
        "status IN ('pending', 'running', 'finished', 'failed', 'diverged')", name="status"
    ),
)

# 0004_claims: the paged default views (runs by creation, sweep status by compute, counts)
sa.Index("ix_runs_created_at_id", runs.c.created_at, runs.c.id)
sa.Index("ix_runs_sweep_status", runs.c.sweep, runs.c.status)
sa.Index("ix_runs_sweep_compute", runs.c.sweep, runs.c.C, runs.c.N, runs.c.D, runs.c.seed,
         runs.c.lr, runs.c.id)
# 0008_run_page_indexes: the runs page's sort columns (with the tie-breaking id) and its group
# summaries (group value, status, final loss) at hundreds of thousands of runs
for _col in ("name", "C", "final_loss", "attempts", "updated_at"):
    sa.Index(f"ix_runs_{_col}_id", runs.c[_col], runs.c.id)
for _col in ("N", "D", "lr", "seed", "sweep", "family", "role"):
    sa.Index(f"ix_runs_{_col}_group", runs.c[_col], runs.c.status, runs.c.final_loss)
sa.Index("ix_runs_status_group", runs.c.status, runs.c.final_loss)

# One row per (run, metric name, step). On SQLite a WITHOUT ROWID table clustered on the key;
# value / wall_time are exact float64 (see store.coltypes.Float64Bits).
metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column(
        "run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("step", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("value", Float64Bits, nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=True),
    sa.Column("wall_time", Float64Bits, nullable=True),
    sqlite_with_rowid=False,
)

checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=True,
        index=True,
    ),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("N", sa.BigInteger, nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    sa.Column("flops", sa.Double, nullable=True),
    sa.Column("step", sa.BigInteger, nullable=True),
    sa.Column("path", sa.Text, nullable=False, unique=True),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("loader", sa.String(300), nullable=True),
    sa.Column("meta", JSONText, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("kind IN ('own', 'external')", name="kind"),
)

evals = sa.Table(
    "evals",
    metadata,
    sa.Column(
        "checkpoint_id", sa.Integer, sa.ForeignKey("checkpoints.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("task", sa.String(200), primary_key=True),
    sa.Column("metric", sa.String(200), primary_key=True),
    sa.Column("value", NaNFloat, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("stderr", NaNFloat, nullable=True),  # 0002_byo: standard error of value
    sa.Column("n_shot", sa.Integer, nullable=True),  # 0002_byo: few-shot examples in the prompt
)

ideas = sa.Table(
    "ideas",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("task", sa.String(300), nullable=False),
    sa.Column("metric", sa.String(200), nullable=False),
    sa.Column("threshold", sa.Double, nullable=False),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("hypothesis", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("best_value", sa.Double, nullable=True),
    sa.Column("max_flops_tried", sa.Double, nullable=True),
    sa.Column("max_N_tried", sa.BigInteger, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("direction IN ('above', 'below')", name="direction"),
)

idea_attempts = sa.Table(
    "idea_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "idea_id", sa.Integer, sa.ForeignKey("ideas.id", ondelete="CASCADE"), nullable=False,
        index=True,
    ),
    sa.Column(
        "checkpoint_id", sa.Integer, sa.ForeignKey("checkpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("N", sa.BigInteger, nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    sa.Column("flops", sa.Double, nullable=True),
    sa.Column("value", NaNFloat, nullable=True),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

fits = sa.Table(
    "fits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("form", sa.String(100), nullable=False, index=True),
    sa.Column("sweep", sa.String(200), nullable=True),
    sa.Column("label", sa.Text, nullable=True),
    sa.Column("payload", JSONText, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # 0007_fit_cache: a hash of the fit's inputs (store.fits.fit_cache_key), for the fit cache
    sa.Column("key", sa.String(64), nullable=True, index=True),
)

# 0009_run_config_values: each run's config leaves (dotted path -> number and/or text), kept by
# triggers on `runs` (see that migration; a batch of runs is filled in bulk, store.run_config_fill),
# for the runs page's config filters
run_config_values = sa.Table(
    "run_config_values",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("path", sa.String(200), primary_key=True),
    sa.Column("num", sa.Double, nullable=True),
    sa.Column("txt", sa.String(256), nullable=True),
    sqlite_with_rowid=False,
)
sa.Index("ix_run_config_values_path", run_config_values.c.path, run_config_values.c.num,
         run_config_values.c.txt, run_config_values.c.run_id)

# 0002_byo: free-form labels on runs and sweeps
run_tags = sa.Table(
    "run_tags",
    metadata,
    sa.Column(
        "run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("tag", sa.String(200), primary_key=True, index=True),
)

sweep_tags = sa.Table(
    "sweep_tags",
    metadata,
    sa.Column(
        "sweep_id", sa.Integer, sa.ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("tag", sa.String(200), primary_key=True, index=True),
)

# One row per Slurm task that ran a sweep cell (`--executor slurm`): the array or single job
# id, the last state seen, requeues, the node and the task's log files.
slurm_tasks = sa.Table(
    "slurm_tasks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sweep", sa.String(200), nullable=False, index=True),
    sa.Column("run_key", sa.String(64), nullable=False, index=True),
    sa.Column("job_id", sa.String(64), nullable=False, unique=True),  # "123_4" or "125"
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("restarts", sa.Integer, nullable=False),
    sa.Column("node", sa.String(200), nullable=True),
    sa.Column("stdout", sa.Text, nullable=True),
    sa.Column("stderr", sa.Text, nullable=True),
    sa.Column("cancelled", sa.Boolean, nullable=False),
    sa.Column("submitted_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
