"""The fit cache: fits saved under a key of their inputs (migration 0007), answered by
`cached_fit` after a restart; keys that change with any input and agree across processes."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from scaletrack.store import Store, StoreError, fit_cache_key
from scaletrack.store import schema as store_schema
from scaletrack.store.migrate import alembic_config, head_revision

POINTS = pd.DataFrame({"N": [1_000_000, 4_000_000, 16_000_000],
                       "D": [2e7, 8e7, 3.2e8], "loss": [4.1, 3.62, 3.3]})
OPTIONS = {"bootstrap": 200, "seed": 0, "fixed": {"E": None}}


def test_key_is_stable_and_changes_with_every_input() -> None:
    key = fit_cache_key("chinchilla", POINTS, OPTIONS)
    assert len(key) == 64 and int(key, 16) >= 0
    # the same inputs as numpy values, plain lists or reordered columns and options
    plain = {c: list(POINTS[c]) for c in reversed(POINTS.columns)}
    assert fit_cache_key("chinchilla", plain, dict(reversed(OPTIONS.items()))) == key
    arrays = {c: POINTS[c].to_numpy() for c in POINTS.columns}
    assert fit_cache_key("chinchilla", arrays, OPTIONS) == key
    changed = POINTS.copy()
    changed.loc[1, "loss"] = np.nextafter(3.62, 4.0)  # one float by one ulp
    others = {
        fit_cache_key("powerlaw", POINTS, OPTIONS),
        fit_cache_key("chinchilla", changed, OPTIONS),
        fit_cache_key("chinchilla", POINTS.iloc[::-1], OPTIONS),  # row order is an input
        fit_cache_key("chinchilla", POINTS.iloc[:2], OPTIONS),
        fit_cache_key("chinchilla", POINTS, {**OPTIONS, "seed": 1}),
        fit_cache_key("chinchilla", POINTS, None),
    }
    assert key not in others and len(others) == 6


def test_key_handles_missing_and_infinite_values() -> None:
    nan = pd.DataFrame({"N": pd.array([1, None], dtype="Int64"), "loss": [np.nan, np.inf]})
    key = fit_cache_key("chinchilla", nan)
    assert key != fit_cache_key("chinchilla", nan.fillna({"loss": 0.0}))
    with pytest.raises(StoreError, match="cannot key a fit on a value of type object"):
        fit_cache_key("chinchilla", {"N": [object()]})


def test_key_is_the_same_in_another_process() -> None:
    code = ("import pandas as pd; from scaletrack.store import fit_cache_key; "
            f"print(fit_cache_key('chinchilla', pd.DataFrame({POINTS.to_dict('list')!r}), "
            f"{OPTIONS!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == fit_cache_key("chinchilla", POINTS, OPTIONS)


def test_cached_fit_answers_after_a_restart(store_url: str) -> None:
    key = fit_cache_key("chinchilla", POINTS, OPTIONS)
    with Store.open(store_url) as store:
        assert store.cached_fit(key) is None
        store.save_fit("chinchilla", {"params": {"E": 1.7}}, sweep="grid", label="uncached")
        assert store.cached_fit(key) is None  # a fit saved without a key is no cache entry
        store.save_fit("chinchilla", {"params": {"E": 1.8}}, sweep="grid", key=key)
        newest = store.save_fit("chinchilla", {"params": {"E": 1.81}, "ci": [1.7, float("inf")]},
                                sweep="grid", key=key)
    with Store.open(store_url) as store:  # a new process would open it the same way
        cached = store.cached_fit(key)
        frame = store.fits(cached=True)
        listed = store.fits()  # the fits someone saved: cache entries left out
        assert store.cached_fit(fit_cache_key("chinchilla", POINTS)) is None
    assert cached == {"params": {"E": 1.81}, "ci": [1.7, float("inf")]}
    assert list(frame.columns) == ["id", "form", "sweep", "label", "payload", "created_at"]
    assert frame["id"].tolist()[-1] == newest and len(frame) == 3
    assert listed["payload"].tolist() == [{"params": {"E": 1.7}}]


@pytest.mark.parametrize("bad", ["", "x" * 65, 42])
def test_bad_key_is_refused_and_nothing_is_written(store_url: str, bad: object) -> None:
    with Store.open(store_url) as store:
        with pytest.raises(StoreError, match="invalid fit key"):
            store.save_fit("chinchilla", {}, key=bad)  # type: ignore[arg-type]
        with pytest.raises(StoreError, match="invalid fit key"):
            store.cached_fit(bad)  # type: ignore[arg-type]
        assert store.fits().empty


def test_migration_adds_the_key_keeps_old_fits_and_rolls_back(store_url: str) -> None:
    Store.open(store_url).close()
    engine = sa.create_engine(store_url)
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0006_full_flops")
        assert "key" not in {c["name"] for c in sa.inspect(conn).get_columns("fits")}
        conn.execute(sa.text("INSERT INTO fits (form, sweep, label, payload, created_at) "
                             "VALUES ('chinchilla', 'old', NULL, '{\"E\": 1.7}', :t)"), {"t": now})
        command.upgrade(alembic_config(conn), "head")
        columns = {c["name"] for c in sa.inspect(conn).get_columns("fits")}
        indexes = {i["name"]: i["column_names"] for i in sa.inspect(conn).get_indexes("fits")}
        old_key = conn.execute(sa.text("SELECT key FROM fits")).scalar_one()
    engine.dispose()
    assert "key" in columns and indexes["ix_fits_key"] == ["key"]
    assert old_key is None
    with Store.open(store_url) as store:
        assert store.schema_version() == head_revision()
        assert store.fits()["payload"].tolist() == [{"E": 1.7}]
        key = fit_cache_key("chinchilla", POINTS)
        store.save_fit("chinchilla", {"E": 1.8}, key=key)
        assert store.cached_fit(key) == {"E": 1.8}


def test_migrated_schema_matches_the_declared_one(store_url: str) -> None:
    """Every migration together builds exactly the tables, columns and indexes of
    store/schema.py (types compared by kind, as alembic's autogenerate sees them)."""
    Store.open(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), store_schema.metadata)
    engine.dispose()
    assert diff == []
