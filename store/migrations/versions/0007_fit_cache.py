"""The fit cache: a fit's key (a hash of its inputs: form, points and options) on `fits`.

Fits saved before have no key and are never answered from the cache.

Revision ID: 0007_fit_cache
Revises: 0006_full_flops
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_fit_cache"
down_revision = "0006_full_flops"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain ADD COLUMN (no table rebuild on SQLite)
    op.add_column("fits", sa.Column("key", sa.String(64), nullable=True))
    op.create_index("ix_fits_key", "fits", ["key"])


def downgrade() -> None:
    op.drop_index("ix_fits_key", table_name="fits")
    with op.batch_alter_table("fits") as batch:
        batch.drop_column("key")
