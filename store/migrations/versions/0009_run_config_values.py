"""Config values of each run, one row per leaf (`run_config_values`: run, dotted path, number,
text), so the runs page filters on a config path through an index instead of decoding every
run's config. Kept by the database itself: triggers fill a run's rows when it is inserted
and refill them when its config changes (SQLite `json_tree`; a PL/pgSQL function on
PostgreSQL), whichever code writes the run; existing runs are filled here.

Leaves inside arrays are not kept, nor JSON nulls, nor top-level keys named like a run
column (N, D, lr, ...: a filter on those names reads the column); a text longer than
`TEXT_MAX` characters keeps its row (the path exists) without its text; a config that is not
valid JSON (a NaN) gets no rows.

Revision ID: 0009_run_config_values
Revises: 0008_run_page_indexes
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_run_config_values"
down_revision = "0008_run_page_indexes"
branch_labels = None
depends_on = None

TEXT_MAX = 256
PATH_MAX = 200
# top-level config keys named like a run column are not kept: a filter on such a name reads
# the run's column (store.run_pages.FILTERABLE, as of this revision)
RUN_COLUMNS = ("run_key", "name", "sweep", "family", "status", "role", "N", "N_total", "D", "C",
               "seed", "lr", "final_loss", "attempts", "parent_run_key")
_COLUMN_LIST = ", ".join(f"'{c}'" for c in RUN_COLUMNS)

# SQLite: the leaves of one config document `{doc}` of run `{run}` (no CTE: not allowed in a
# trigger); json_tree quotes some keys in fullkey, the quotes are dropped
_SQLITE_LEAVES = f"""
SELECT {{run}}, substr(replace(j.fullkey, '"', ''), 3),
       CASE WHEN j.type IN ('integer', 'real', 'true', 'false') THEN j.atom END,
       CASE WHEN j.type = 'text' AND length(j.atom) <= {TEXT_MAX} THEN j.atom
            WHEN j.type IN ('integer', 'real') THEN CAST(j.atom AS TEXT)
            WHEN j.type IN ('true', 'false') THEN j.type END
FROM json_tree(CASE WHEN json_valid({{doc}}) THEN {{doc}} ELSE '{{{{}}}}' END) AS j
WHERE j.type NOT IN ('object', 'array', 'null') AND j.fullkey NOT LIKE '%[%'
  AND j.fullkey LIKE '$.%' AND length(j.fullkey) <= {PATH_MAX + 2}
  AND substr(replace(j.fullkey, '"', ''), 3) NOT IN ({_COLUMN_LIST})
"""

_PG_FUNCTIONS = f"""
CREATE FUNCTION run_config_jsonb(doc text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN doc::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;

CREATE FUNCTION run_config_leaves(doc jsonb)
RETURNS TABLE (path text, num double precision, txt text) LANGUAGE sql IMMUTABLE AS $$
    WITH RECURSIVE leaves(path, value) AS (
        SELECT e.key, e.value
        FROM jsonb_each(CASE WHEN jsonb_typeof(doc) = 'object' THEN doc
                             ELSE '{{}}'::jsonb END) AS e
        UNION ALL
        SELECT l.path || '.' || e.key, e.value
        FROM leaves AS l, jsonb_each(CASE WHEN jsonb_typeof(l.value) = 'object' THEN l.value
                                          ELSE '{{}}'::jsonb END) AS e
    )
    SELECT l.path,
           CASE jsonb_typeof(l.value)
               WHEN 'number' THEN CASE WHEN abs((l.value #>> '{{}}')::numeric) < 1e300
                                  THEN (l.value #>> '{{}}')::double precision END
               WHEN 'boolean' THEN CASE WHEN l.value = 'true'::jsonb THEN 1 ELSE 0 END END,
           CASE WHEN jsonb_typeof(l.value) = 'string'
                     AND length(l.value #>> '{{}}') > {TEXT_MAX} THEN NULL
                ELSE l.value #>> '{{}}' END
    FROM leaves AS l
    WHERE jsonb_typeof(l.value) NOT IN ('object', 'array', 'null')
      AND length(l.path) <= {PATH_MAX} AND l.path NOT IN ({_COLUMN_LIST})
$$;

CREATE FUNCTION run_config_values_fill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.config IS NOT DISTINCT FROM OLD.config THEN
            RETURN NEW;
        END IF;
        DELETE FROM run_config_values WHERE run_id = OLD.id;
    END IF;
    INSERT INTO run_config_values (run_id, path, num, txt)
    SELECT NEW.id, l.path, l.num, l.txt
    FROM run_config_leaves(run_config_jsonb(NEW.config)) AS l;
    RETURN NEW;
END $$;

CREATE TRIGGER run_config_values_fill AFTER INSERT OR UPDATE OF config ON runs
FOR EACH ROW EXECUTE FUNCTION run_config_values_fill();
"""


def upgrade() -> None:
    op.create_table(
        "run_config_values",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("path", sa.String(PATH_MAX), primary_key=True),
        sa.Column("num", sa.Double, nullable=True),
        sa.Column("txt", sa.String(TEXT_MAX), nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_run_config_values_path", "run_config_values",
                    ["path", "num", "txt", "run_id"])
    fill = "INSERT INTO run_config_values (run_id, path, num, txt) "
    if op.get_bind().dialect.name == "sqlite":
        op.execute(fill + _SQLITE_LEAVES.format(run="runs.id", doc="runs.config")
                   .replace("FROM json_tree", "FROM runs, json_tree"))
        new_rows = fill + _SQLITE_LEAVES.format(run="NEW.id", doc="NEW.config")
        op.execute(f"CREATE TRIGGER run_config_values_insert AFTER INSERT ON runs "
                   f"BEGIN {new_rows}; END")
        op.execute(f"CREATE TRIGGER run_config_values_update AFTER UPDATE OF config ON runs "
                   f"BEGIN DELETE FROM run_config_values WHERE run_id = OLD.id; {new_rows}; END")
        return
    for statement in _PG_FUNCTIONS.strip().split("\n\n"):
        op.execute(statement)
    op.execute(fill + "SELECT r.id, l.path, l.num, l.txt FROM runs AS r, "
               "run_config_leaves(run_config_jsonb(r.config)) AS l")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS run_config_values_insert")
        op.execute("DROP TRIGGER IF EXISTS run_config_values_update")
    else:
        op.execute("DROP TRIGGER IF EXISTS run_config_values_fill ON runs")
        for fn in ("run_config_values_fill()", "run_config_leaves(jsonb)",
                   "run_config_jsonb(text)"):
            op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    op.drop_index("ix_run_config_values_path", table_name="run_config_values")
    op.drop_table("run_config_values")
