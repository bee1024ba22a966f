"""Claim generations: runs.claim counts the claims of a run, so a worker's writes can be
fenced by the claim it holds (a worker that lost its run to another cannot write to it).
Also the indexes behind the paged default views of a store of millions of runs (`runs` by
creation, `sweep status` by compute, status counts per sweep).

Revision ID: 0004_claims
Revises: 0003_slurm
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_claims"
down_revision = "0003_slurm"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("claim", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_runs_created_at_id", "runs", ["created_at", "id"])
    op.create_index("ix_runs_sweep_status", "runs", ["sweep", "status"])
    op.create_index("ix_runs_sweep_compute", "runs", ["sweep", "C", "N", "D", "seed", "lr", "id"])


def downgrade() -> None:
    for name in ("ix_runs_sweep_compute", "ix_runs_sweep_status", "ix_runs_created_at_id"):
        op.drop_index(name, table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("claim")
