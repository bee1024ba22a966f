"""Indexes behind the dashboard's runs page at hundreds of thousands of runs: one per sort
column that no other index orders (with the id that breaks ties), and one per group column
covering the group summary (group value, status, final loss), so a grouped page reads a
narrow index instead of every run's row and config.

Revision ID: 0008_run_page_indexes
Revises: 0007_fit_cache
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0008_run_page_indexes"
down_revision = "0007_fit_cache"
branch_labels = None
depends_on = None

SORT_COLUMNS = ("name", "C", "final_loss", "attempts", "updated_at")
GROUP_COLUMNS = ("N", "D", "lr", "seed", "sweep", "family", "role", "status")


def upgrade() -> None:
    for col in SORT_COLUMNS:
        op.create_index(f"ix_runs_{col}_id", "runs", [col, "id"])
    for col in GROUP_COLUMNS:
        columns = [col, "final_loss"] if col == "status" else [col, "status", "final_loss"]
        op.create_index(f"ix_runs_{col}_group", "runs", columns)


def downgrade() -> None:
    for col in GROUP_COLUMNS:
        op.drop_index(f"ix_runs_{col}_group", table_name="runs")
    for col in SORT_COLUMNS:
        op.drop_index(f"ix_runs_{col}_id", table_name="runs")
