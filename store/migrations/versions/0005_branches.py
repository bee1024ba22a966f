"""Cooldown branches: a run's role (cell, trunk, branch) and a branch's lineage.

Revision ID: 0005_branches
Revises: 0004_claims
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_branches"
down_revision = "0004_claims"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMNs (no table rebuild on SQLite); existing runs become cells
    op.add_column("runs", sa.Column("role", sa.String(16), nullable=False,
                                    server_default="cell"))
    op.add_column("runs", sa.Column("parent_run_key", sa.String(64), nullable=True))
    op.add_column("runs", sa.Column("branch_step", sa.BigInteger, nullable=True))
    op.create_index("ix_runs_parent_run_key", "runs", ["parent_run_key"])


def downgrade() -> None:
    op.drop_index("ix_runs_parent_run_key", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("branch_step")
        batch.drop_column("parent_run_key")
        batch.drop_column("role")
