"""The store methods behind claims, paging and bulk imports, on SQLite and on a real
PostgreSQL server: claim generations fence writes, bulk inserts count new rows, pages and
counts come from SQL, key prefixes are found by range."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaletrack.store import ClaimLost, MetricRow, RunRecord, Store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 's.db'}"
    return request.getfixturevalue("postgres_db_url")


def _runs(n: int, sweep: str = "s") -> list[RunRecord]:
    return [RunRecord(run_key=f"k{i:05d}", sweep=sweep, family="imported", config={"i": i},
                      N=1000 + i, N_total=1000 + i, D=10 * (n - i), C=6e4 * (1000 + i) * (n - i),
                      status="finished" if i % 3 else "pending", final_loss=2.0)
            for i in range(n)]


def test_bulk_paging_counts_and_prefixes(url: str) -> None:
    with Store.open(url) as store:
        assert store.ensure_runs(_runs(250), batch_size=100) == 250
        assert store.ensure_runs(_runs(260), batch_size=100) == 10  # only the new ones
        assert store.count_runs() == 260 and store.count_runs(status="pending") == 87
        assert store.run_status_counts("s") == {"pending": 87, "running": 0, "finished": 173,
                                                "failed": 0, "diverged": 0}
        page = store.runs(sweep="s", order="compute", limit=10, offset=5)
        everything = store.runs(sweep="s", order="compute")
        assert list(page["run_key"]) == list(everything["run_key"][5:15])
        assert store.runs(limit=3)["config"].tolist() == [{"i": 0}, {"i": 1}, {"i": 2}]
        assert store.find_run_keys("k0012", limit=20) == [f"k0012{d}" for d in range(10)]
        assert store.find_run_keys("k00120") == ["k00120"] and store.find_run_keys("x") == []


def test_claim_fencing(url: str) -> None:
    with Store.open(url) as old, Store.open(url) as new:
        old.ensure_runs(_runs(1))
        assert old.claim_run("k00000", "h:1:0")
        old.write_metrics([MetricRow("k00000", "loss", 0, 1.0)])
        assert new.claim_run("k00000", "h:2:0", stale_after_s=0)
        with pytest.raises(ClaimLost):
            old.write_metrics([MetricRow("k00000", "loss", 1, 1.0)])
        with pytest.raises(ClaimLost):
            old.finish_run("k00000", "finished", final_loss=1.0)
        assert not old.heartbeat("k00000", "h:1:0") and new.heartbeat("k00000", "h:2:0")
        new.write_metrics([MetricRow("k00000", "loss", 1, 0.5)])
        assert new.metrics(["k00000"])["value"].tolist() == [1.0, 0.5]
        new.finish_run("k00000", "finished", final_loss=0.5)
