"""Initial schema: sweeps, runs, metrics, checkpoints, evals, ideas, idea_attempts, fits.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scaletrack.store.coltypes import Float64Bits, JSONText, NaNFloat, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec", JSONText, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sweeps"),
        sa.UniqueConstraint("name", name="uq_sweeps_name"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("run_key", sa.String(64), nullable=False),
        sa.Column("sweep", sa.String(200), nullable=True),
        sa.Column("family", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("heartbeat_at", UTCDateTime, nullable=True),
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
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint("run_key", name="uq_runs_run_key"),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'finished', 'failed', 'diverged')",
            name="ck_runs_status",
        ),
    )
    op.create_index("ix_runs_sweep", "runs", ["sweep"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "metrics",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("value", Float64Bits, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=True),
        sa.Column("wall_time", Float64Bits, nullable=True),
        sa.PrimaryKeyConstraint("run_id", "name", "step", name="pk_metrics"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_metrics_run_id_runs", ondelete="CASCADE"
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("N", sa.BigInteger, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("flops", sa.Double, nullable=True),
        sa.Column("step", sa.BigInteger, nullable=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("loader", sa.String(300), nullable=True),
        sa.Column("meta", JSONText, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_checkpoints"),
        sa.UniqueConstraint("path", name="uq_checkpoints_path"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_checkpoints_run_id_runs", ondelete="CASCADE"
        ),
        sa.CheckConstraint("kind IN ('own', 'external')", name="ck_checkpoints_kind"),
    )
    op.create_index("ix_checkpoints_run_id", "checkpoints", ["run_id"])
    op.create_table(
        "evals",
        sa.Column("checkpoint_id", sa.Integer, nullable=False),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("value", NaNFloat, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("checkpoint_id", "task", "metric", name="pk_evals"),
        sa.ForeignKeyConstraint(
            ["checkpoint_id"], ["checkpoints.id"], name="fk_evals_checkpoint_id_checkpoints",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "ideas",
        sa.Column("id", sa.Integer, nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_ideas"),
        sa.CheckConstraint("direction IN ('above', 'below')", name="ck_ideas_direction"),
    )
    op.create_table(
        "idea_attempts",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("idea_id", sa.Integer, nullable=False),
        sa.Column("checkpoint_id", sa.Integer, nullable=False),
        sa.Column("N", sa.BigInteger, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("flops", sa.Double, nullable=True),
        sa.Column("value", NaNFloat, nullable=True),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_idea_attempts"),
        sa.ForeignKeyConstraint(
            ["idea_id"], ["ideas.id"], name="fk_idea_attempts_idea_id_ideas", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["checkpoint_id"], ["checkpoints.id"],
            name="fk_idea_attempts_checkpoint_id_checkpoints", ondelete="CASCADE",
        ),
    )
    op.create_index("ix_idea_attempts_idea_id", "idea_attempts", ["idea_id"])
    op.create_table(
        "fits",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("form", sa.String(100), nullable=False),
        sa.Column("sweep", sa.String(200), nullable=True),
        sa.Column("label", sa.Text, nullable=True),
        sa.Column("payload", JSONText, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_fits"),
    )
    op.create_index("ix_fits_form", "fits", ["form"])


def downgrade() -> None:
    for name in ("fits", "idea_attempts", "ideas", "evals", "checkpoints", "metrics", "runs"):
        op.drop_table(name)
    op.drop_table("sweeps")
