"""Slurm tasks: one row per Slurm task that ran a sweep cell.

Revision ID: 0003_slurm
Revises: 0002_byo
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scaletrack.store.coltypes import UTCDateTime

revision = "0003_slurm"
down_revision = "0002_byo"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slurm_tasks",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("sweep", sa.String(200), nullable=False),
        sa.Column("run_key", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("restarts", sa.Integer, nullable=False),
        sa.Column("node", sa.String(200), nullable=True),
        sa.Column("stdout", sa.Text, nullable=True),
        sa.Column("stderr", sa.Text, nullable=True),
        sa.Column("cancelled", sa.Boolean, nullable=False),
        sa.Column("submitted_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_slurm_tasks"),
        sa.UniqueConstraint("job_id", name="uq_slurm_tasks_job_id"),
    )
    op.create_index("ix_slurm_tasks_sweep", "slurm_tasks", ["sweep"])
    op.create_index("ix_slurm_tasks_run_key", "slurm_tasks", ["run_key"])


def downgrade() -> None:
    op.drop_index("ix_slurm_tasks_run_key", table_name="slurm_tasks")
    op.drop_index("ix_slurm_tasks_sweep", table_name="slurm_tasks")
    op.drop_table("slurm_tasks")
