"""Runs written in bulk get their config leaves from one set-based statement
(store.run_config_fill) instead of the row trigger: on PostgreSQL the trigger function of
0009 now returns at once while the transaction-local setting `scaletrack.run_config_bulk` is
on (only the store's bulk insert turns it on, for its own transaction), and runs without JIT
compilation, which PostgreSQL otherwise starts for the leaves query of every row written (about
10 ms a run). SQLite needs no change (the bulk insert sets its trigger aside inside the write
transaction).

Revision ID: 0010_bulk_config_fill
Revises: 0009_run_config_values
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0010_bulk_config_fill"
down_revision = "0009_run_config_values"
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE OR REPLACE FUNCTION run_config_values_fill() RETURNS trigger LANGUAGE plpgsql {config}AS $$
BEGIN
    {skip}IF TG_OP = 'UPDATE' THEN
        IF NEW.config IS NOT DISTINCT FROM OLD.config THEN
            RETURN NEW;
        END IF;
        DELETE FROM run_config_values WHERE run_id = OLD.id;
    END IF;
    INSERT INTO run_config_values (run_id, path, num, txt)
    SELECT NEW.id, l.path, l.num, l.txt
    FROM run_config_leaves(run_config_jsonb(NEW.config)) AS l;
    RETURN NEW;
END $$
"""
_SKIP = """IF TG_OP = 'INSERT' AND current_setting('scaletrack.run_config_bulk', true) = 'on' THEN
        RETURN NEW;
    END IF;
    """


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION.format(skip=_SKIP, config="SET jit = off "))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION.format(skip="", config=""))
