"""`run_config_values` equals each run's flattened config after every path that writes runs:
sweep preparation, `scaletrack.init`, `import-csv` (the bulk insert), lm-eval import, bulk
inserts of nested configs, config updates; on SQLite and PostgreSQL. A failed bulk batch
leaves neither runs nor config rows, and the row trigger still works afterwards. Migration
0010 upgrades a 0009 store and rolls back."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command
from test_sweep_spec import VALID, to_toml
from typer.testing import CliRunner

import scaletrack as st
from scaletrack.cli.main import app
from scaletrack.store import RunRecord, Store
from scaletrack.store.importers.lm_eval import import_lm_eval, read_sizes
from scaletrack.store.migrate import alembic_config
from scaletrack.store.run_config_fill import PATH_MAX, RUN_COLUMNS, TEXT_MAX
from scaletrack.sweeps.grid import load_grid
from scaletrack.sweeps.runner import prepare_sweep

REPO = Path(__file__).resolve().parents[1]
NESTED = {"model": {"n_layer": 4, "act": "gelu", "tie": False, "deep": {"x": -1.5e-7}},
          "lr": 3e-4, "N": 5, "tags": [1, {"in_list": 2}], "none": None, "long": "x" * 300,
          "edge": "y" * TEXT_MAX, "big": 1e200, "flag": True, "empty": {}, "k" * 201: 1,
          "unicode": "λ–✓"}


def _leaves(config: Any, prefix: str = "") -> set[tuple[str, float | None, str | None]]:
    """The rows the store promises for one config: leaves of nested objects (not inside arrays,
    not null), top-level run-column names left out, paths up to PATH_MAX characters, texts up
    to TEXT_MAX characters (a longer one keeps its path without text); numbers and booleans
    as their value with a text (numbers' texts compared by value, see `_actual`)."""
    out: set[tuple[str, float | None, str | None]] = set()
    for key, value in config.items():
        path = f"{prefix}{key}"
        if (not prefix and key in RUN_COLUMNS) or value is None or isinstance(value, list):
            continue
        if isinstance(value, dict):
            out |= _leaves(value, path + ".")
        elif len(path) > PATH_MAX:
            continue
        elif isinstance(value, bool):
            out.add((path, float(value), str(value).lower()))
        elif isinstance(value, int | float):
            out.add((path, float(value), "number"))
        else:
            out.add((path, None, value if len(value) <= TEXT_MAX else None))
    return out


def _expected(config: Any) -> set[tuple[str, float | None, str | None]]:
    text = json.dumps(config)
    if "NaN" in text or "Infinity" in text:  # not valid JSON: no rows
        return set()
    return _leaves(config)


def _actual(conn: sa.Connection) -> dict[str, set[tuple[str, float | None, str | None]]]:
    out: dict[str, set[tuple[str, float | None, str | None]]] = {}
    for key, path, num, txt in conn.execute(sa.text(
            "SELECT r.run_key, v.path, v.num, v.txt FROM run_config_values AS v "
            "JOIN runs AS r ON r.id = v.run_id")):
        if txt not in (None, "true", "false") and num is not None:
            assert math.isclose(float(txt), num, rel_tol=1e-15), (path, num, txt)
            txt = "number"
        out.setdefault(key, set()).add((path, None if num is None else float(num), txt))
    return out


def assert_config_values_match(store: Store) -> int:
    """Every run's `run_config_values` rows equal its flattened config; returns runs checked."""
    runs = store.runs()
    with store.engine.connect() as conn:
        actual = _actual(conn)
    assert set(actual) <= set(runs["run_key"])
    for key, config in zip(runs["run_key"], runs["config"], strict=True):
        assert actual.get(key, set()) == _expected(config), key
    return len(runs)


def _record(key: str, config: dict[str, Any], family: str = "gpt") -> RunRecord:
    return RunRecord(run_key=key, sweep=None, family=family, config=config, N=1000,
                     N_total=None, D=10, C=6e4, status="finished", final_loss=2.5)


def test_bulk_insert_fills_config_values_like_the_row_trigger(store: Store) -> None:
    configs = [NESTED, {"rate": float("nan"), "a": 1}, {}, {"only": {"nested": "text"}},
               {"a.b": {"c": 2}, "sweep": "s", "seed": 3}]
    store.ensure_run(_record("single", NESTED))  # the row trigger
    new = store.ensure_runs([_record(f"bulk{i}", c) for i, c in enumerate(configs)]
                            + [_record("single", {"changed": 1})], batch_size=2)
    assert new == len(configs)
    with store.engine.connect() as conn:
        actual = _actual(conn)
    assert actual["bulk0"] == actual["single"] == _expected(NESTED)
    assert assert_config_values_match(store) == len(configs) + 1
    store.ensure_run(_record("after", {"later": "yes"}))  # the trigger is back
    store.update_run("bulk0", config={"model": {"n_layer": 8}, "lr": 1.0})
    store.update_run("bulk3", config={"rate": float("inf")})
    assert assert_config_values_match(store) == len(configs) + 2


def test_failed_bulk_batch_leaves_nothing_and_keeps_the_trigger(store: Store) -> None:
    store.ensure_runs([_record("before", {"a": 1})])
    bad = [_record("ok", {"b": 2}), _record("bad", {"c": 3}, family=None)]  # type: ignore[arg-type]
    with pytest.raises(Exception):  # noqa: B017,PT011 - the driver's NOT NULL violation
        store.ensure_runs(bad)
    assert list(store.runs()["run_key"]) == ["before"]
    with store.engine.connect() as conn:
        assert set(_actual(conn)) == {"before"}
    store.ensure_run(_record("single", {"d": {"e": "f"}}))
    assert assert_config_values_match(store) == 2


def test_every_writer_leaves_config_values_equal_to_the_configs(
        store: Store, store_url: str, tmp_path: Path, shared_data: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    grid_file = tmp_path / "grid.toml"  # sweep preparation (one run row per cell)
    grid_file.write_text(to_toml(VALID))
    cells, _ = prepare_sweep(load_grid(grid_file), store)
    assert cells

    monkeypatch.delenv("SCALETRACK_RUN", raising=False)  # tracking API
    monkeypatch.setenv("SCALETRACK_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    run = st.init("tracked", {"lr": 1e-3, "opt": {"beta2": 0.95, "name": "adamw"}},
                  params=1000, tokens=10_000, store=store)
    run.finish()

    csv = tmp_path / "results.csv"  # import-csv, the bulk path
    pd.DataFrame({"model": ["a", "b", "c"], "N": [1e6, 2e6, 4e6], "D": [2e7, 4e7, 8e7],
                  "loss": [3.1, 2.9, 2.7], "hellaswag": [0.3, None, 0.35]}).to_csv(csv,
                                                                                    index=False)
    result = CliRunner().invoke(app, ["import-csv", str(csv), "--sweep", "ext", "--store",
                                      store_url])
    assert result.exit_code == 0, result.output

    folder = shared_data / "lm_eval_pythia"  # lm-eval import
    files = sorted(folder.glob("**/*.json"))[:2]
    assert files, f"no lm-eval result files under {folder}"
    import_lm_eval(store, files, read_sizes(REPO / "examples" / "lm_eval" / "pythia_sizes.csv"))

    key = store.runs(sweep="ext")["run_key"].iloc[0]  # an update of a run's config
    store.update_run(key, config={"source": "fixed.csv", "extra": {"k": [1], "v": 2}})
    families = set(store.runs()["family"])
    assert {"imported", "custom"} <= families and len(families) >= 3
    assert assert_config_values_match(store) >= len(cells) + 1 + 3 + 1


def _trigger_settings(engine: sa.Engine) -> list[str] | None:
    """The settings the PostgreSQL trigger function runs with (None on SQLite or none)."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT proconfig FROM pg_proc "
                                    "WHERE proname = 'run_config_values_fill'")).scalar()


def test_migration_0010_upgrades_a_0009_store_and_rolls_back(store_url: str) -> None:
    Store.open(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0009_run_config_values")
    with Store.open(store_url) as store:  # upgrades again; the bulk path fills the table
        assert store.schema_version() == "0010_bulk_config_fill"
        pg = store.engine.dialect.name == "postgresql"  # no JIT for every row written
        assert _trigger_settings(store.engine) == (["jit=off"] if pg else None)
        store.ensure_runs([_record("bulk", NESTED)])
        store.ensure_run(_record("single", NESTED))
        assert assert_config_values_match(store) == 2
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0009_run_config_values")
        conn.execute(sa.text(  # the 0009 trigger fills a row written by any code
            "INSERT INTO runs (run_key, family, status, attempts, claim, config, created_at, "
            "updated_at, role) VALUES ('raw', 'gpt', 'finished', 0, 0, :c, "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00', 'cell')"), {"c": json.dumps(NESTED)})
        raw = _actual(conn)["raw"]
    assert _trigger_settings(engine) is None
    engine.dispose()
    assert raw == _expected(NESTED)


def test_bulk_setting_stays_inside_its_transaction(store: Store) -> None:
    """PostgreSQL: while one transaction has the bulk setting on, a run another session
    inserts is still filled by the trigger; the setting ends with its transaction."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("the setting is PostgreSQL's; SQLite sets the trigger aside under its "
                    "write lock")
    with store.engine.connect() as bulk:
        bulk.execute(sa.text("SELECT set_config('scaletrack.run_config_bulk', 'on', true)"))
        store.ensure_run(_record("other", {"x": {"y": 1}}))
        bulk.rollback()
        assert bulk.execute(sa.text(
            "SELECT current_setting('scaletrack.run_config_bulk', true)")).scalar() in ("", None)
    store.ensure_runs([_record("bulk", {"z": "w"})])
    store.ensure_run(_record("after", {"v": True}))
    assert assert_config_values_match(store) == 3
    with store.engine.connect() as conn:
        assert set(_actual(conn)) == {"other", "bulk", "after"}
