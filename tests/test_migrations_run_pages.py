"""Migrations 0008 (runs page indexes) and 0009 (config leaves kept by triggers): an older
store gains them with its runs' config values filled in, equal to what the triggers write
for a run inserted afterwards; a config that is not valid JSON never blocks a run; both roll
back."""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import command

from scaletrack.store import RunRecord, Store
from scaletrack.store.migrate import alembic_config
from scaletrack.store.run_pages import RunFilter

CONFIG = {"model": {"n_layer": 4, "act": "gelu", "tie": False}, "lr": 3e-4, "tags": [1, 2],
          "none": None, "long": "x" * 300}


def _record(key: str, config: dict) -> RunRecord:
    return RunRecord(run_key=key, sweep="s", family="gpt", config=config, N=1000, N_total=None,
                     D=10, C=6e4, status="finished", final_loss=2.5)


def _values(conn: sa.Connection, key: str) -> set[tuple]:
    return set(conn.execute(sa.text(
        "SELECT v.path, v.num, v.txt FROM run_config_values AS v JOIN runs AS r "
        "ON r.id = v.run_id WHERE r.run_key = :k"), {"k": key}).all())


def test_upgrade_fills_config_values_as_the_triggers_do(store_url: str) -> None:
    Store.open(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0007_fit_cache")
        tables = set(sa.inspect(conn).get_table_names())
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("runs")}
    assert "run_config_values" not in tables and "ix_runs_final_loss_id" not in indexes
    with engine.begin() as conn:  # a run of the older schema, then the upgrade
        conn.execute(sa.text(
            "INSERT INTO runs (run_key, sweep, family, status, attempts, claim, config, "
            "created_at, updated_at, role) VALUES ('old', 's', 'gpt', 'finished', 0, 0, "
            ":c, '2026-01-01 00:00:00', '2026-01-01 00:00:00', 'cell')"),
            {"c": json.dumps(CONFIG)})
        command.upgrade(alembic_config(conn), "head")
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("runs")}
    assert {"ix_runs_final_loss_id", "ix_runs_N_group", "ix_runs_status_group"} <= indexes
    with Store.open(store_url) as store:
        store.ensure_runs([_record("new", CONFIG), _record("nan", {"rate": float("nan")})])
        assert {r["run_key"] for r in store.runs_page(
            RunFilter(where=(("model.n_layer", "4"),)))["rows"]} == {"old", "new"}
        assert store.runs_page(RunFilter(where=(("rate", "none"),)))["total"] == 3  # none has it
    with engine.connect() as conn:
        old, new = _values(conn, "old"), _values(conn, "new")
        nan = _values(conn, "nan")
    engine.dispose()
    assert old == new
    paths = {p for p, _, _ in new}
    assert paths == {"model.n_layer", "model.act", "model.tie", "long"}  # lr: a run column
    by_path = {p: (num, txt) for p, num, txt in new}
    assert by_path["model.n_layer"][0] == 4 and by_path["model.act"] == (None, "gelu")
    assert by_path["model.tie"] == (0, "false") and by_path["long"] == (None, None)
    assert nan == set()


def test_downgrade_drops_table_and_triggers(store_url: str) -> None:
    Store.open(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0007_fit_cache")
        assert "run_config_values" not in sa.inspect(conn).get_table_names()
        # inserts and config updates work without the triggers' table
        conn.execute(sa.text(
            "INSERT INTO runs (run_key, sweep, family, status, attempts, claim, config, "
            "created_at, updated_at, role) VALUES ('k', 's', 'gpt', 'pending', 0, 0, "
            "'{\"a\": 1}', '2026-01-01 00:00:00', '2026-01-01 00:00:00', 'cell')"))
        conn.execute(sa.text("UPDATE runs SET config = '{\"a\": 2}'"))
        command.upgrade(alembic_config(conn), "head")
        assert _values(conn, "k") == {("a", 2.0, "2")}
    engine.dispose()


def test_the_run_columns_left_out_are_the_filterable_ones() -> None:
    """Top-level config keys named like a run column are not kept (a filter on that name reads
    the column): the migration's frozen list is the runs page's list of such columns."""
    import importlib.util

    from scaletrack.store.migrate import MIGRATIONS_DIR
    from scaletrack.store.run_pages import FILTERABLE

    path = MIGRATIONS_DIR / "versions" / "0009_run_config_values.py"
    spec = importlib.util.spec_from_file_location("migration_0009", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.RUN_COLUMNS) == set(FILTERABLE)
