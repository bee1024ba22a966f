"""Claim generations: runs.claim counts the claims of a run, so a worker's writes can be
fenced by the claim it holds (a worker that lost its run to another cannot write to it).

Revision ID: 0002_claims
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_claims"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("claim", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("claim")
