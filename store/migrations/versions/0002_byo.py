"""Bring your own trainer: run names, tags and notes on runs and sweeps; eval stderr and shots.

Revision ID: 0002_byo
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scaletrack.store.coltypes import NaNFloat

revision = "0002_byo"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("name", sa.String(200), nullable=True))
        batch.add_column(sa.Column("note", sa.Text, nullable=True))
    with op.batch_alter_table("sweeps") as batch:
        batch.add_column(sa.Column("note", sa.Text, nullable=True))
    with op.batch_alter_table("evals") as batch:
        batch.add_column(sa.Column("stderr", NaNFloat, nullable=True))
        batch.add_column(sa.Column("n_shot", sa.Integer, nullable=True))
    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("tag", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "tag", name="pk_run_tags"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_run_tags_run_id_runs",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_run_tags_tag", "run_tags", ["tag"])
    op.create_table(
        "sweep_tags",
        sa.Column("sweep_id", sa.Integer, nullable=False),
        sa.Column("tag", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("sweep_id", "tag", name="pk_sweep_tags"),
        sa.ForeignKeyConstraint(["sweep_id"], ["sweeps.id"], name="fk_sweep_tags_sweep_id_sweeps",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_sweep_tags_tag", "sweep_tags", ["tag"])


def downgrade() -> None:
    op.drop_table("sweep_tags")
    op.drop_table("run_tags")
    with op.batch_alter_table("evals") as batch:
        batch.drop_column("n_shot")
        batch.drop_column("stderr")
    with op.batch_alter_table("sweeps") as batch:
        batch.drop_column("note")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("note")
        batch.drop_column("name")
