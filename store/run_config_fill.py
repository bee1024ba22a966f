"""`run_config_values` for runs written many at once (an import of a results table).

Triggers on `runs` (revision 0009) fill a run's config leaves row by row, whichever code writes
it. For a batch of runs the store instead inserts the runs with the insert trigger set aside
and then fills the new runs' leaves with one set-based statement, in the same transaction, so
a failed batch leaves neither runs nor leaves behind:

- SQLite: the trigger is dropped inside the batch's write transaction (BEGIN IMMEDIATE, so no
  other connection writes meanwhile) and re-created from its own stored text before the
  commit; a rollback restores it. Readers never see the table without it.
- PostgreSQL: the trigger function returns early while the transaction-local setting
  `scaletrack.run_config_bulk` is on (revision 0010); other sessions never see it on.

The set-based statements select the same leaves as the triggers (checked by the tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

INSERT_TRIGGER = "run_config_values_insert"  # SQLite
BULK_SETTING = "scaletrack.run_config_bulk"  # PostgreSQL, read by run_config_values_fill()

TEXT_MAX = 256  # characters of a text leaf kept (longer: the row without its text)
PATH_MAX = 200  # characters of a dotted path
# top-level config keys named like a run column have no rows (a filter reads the column)
RUN_COLUMNS = ("run_key", "name", "sweep", "family", "status", "role", "N", "N_total", "D", "C",
               "seed", "lr", "final_loss", "attempts", "parent_run_key")
_COLUMN_LIST = ", ".join(f"'{c}'" for c in RUN_COLUMNS)

_FILL = "INSERT INTO run_config_values (run_id, path, num, txt) "

# the leaves of every run inserted after the run with id `?` (the batch's runs: the batch holds
# SQLite's write lock, and rowids grow)
_SQLITE_FILL = _FILL + f"""
SELECT runs.id, substr(replace(j.fullkey, '"', ''), 3),
       CASE WHEN j.type IN ('integer', 'real', 'true', 'false') THEN j.atom END,
       CASE WHEN j.type = 'text' AND length(j.atom) <= {TEXT_MAX} THEN j.atom
            WHEN j.type IN ('integer', 'real') THEN CAST(j.atom AS TEXT)
            WHEN j.type IN ('true', 'false') THEN j.type END
FROM runs, json_tree(CASE WHEN json_valid(runs.config) THEN runs.config ELSE '{{}}' END) AS j
WHERE runs.id > ?
  AND j.type NOT IN ('object', 'array', 'null') AND j.fullkey NOT LIKE '%[%'
  AND j.fullkey LIKE '$.%' AND length(j.fullkey) <= {PATH_MAX + 2}
  AND substr(replace(j.fullkey, '"', ''), 3) NOT IN ({_COLUMN_LIST})
"""

# the leaves of the runs with the given ids, through the functions revision 0009 created
_PG_FILL = _FILL + ("SELECT r.id, l.path, l.num, l.txt FROM runs AS r, "
                    "run_config_leaves(run_config_jsonb(r.config)) AS l WHERE r.id = ANY(%s)")


def insert_runs(cursor: Any, dialect: str, insert_sql: str, rows: Sequence[Any]) -> int:
    """Run `insert_sql` (an INSERT into runs ... ON CONFLICT DO NOTHING, in the driver's
    parameter style) for every row of `rows` on the DB-API `cursor`, inside the caller's write
    transaction, and fill `run_config_values` for the runs it inserted; returns how many
    runs were new."""
    if dialect == "postgresql":
        return _insert_postgresql(cursor, insert_sql, rows)
    cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                   (INSERT_TRIGGER,))
    found = cursor.fetchone()
    if found is None:  # no trigger (a schema before 0009): nothing to fill
        cursor.executemany(insert_sql, rows)
        return max(0, int(cursor.rowcount))
    cursor.execute(f"DROP TRIGGER {INSERT_TRIGGER}")
    cursor.execute("SELECT coalesce(max(id), 0) FROM runs")
    last_id = int(cursor.fetchone()[0])
    cursor.executemany(insert_sql, rows)
    new = max(0, int(cursor.rowcount))
    if new:
        cursor.execute(_SQLITE_FILL, (last_id,))
    cursor.execute(found[0])
    return new


def _insert_postgresql(cursor: Any, insert_sql: str, rows: Sequence[Any]) -> int:
    cursor.execute("SELECT set_config(%s, 'on', true)", (BULK_SETTING,))
    if " RETURNING " not in insert_sql.upper():  # SQLAlchemy may already return the id
        insert_sql += " RETURNING id"
    cursor.executemany(insert_sql, rows, returning=True)
    ids: list[int] = []
    while True:
        ids.extend(row[0] for row in cursor.fetchall())
        if not cursor.nextset():
            break
    cursor.execute("SELECT set_config(%s, 'off', true)", (BULK_SETTING,))
    if ids:
        cursor.execute(_PG_FILL, (ids,))
    return len(ids)
