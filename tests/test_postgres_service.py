"""The PostgreSQL test service, and scaletrack end to end on a real PostgreSQL server.

The store's own suite (tests/test_store_*.py) runs against PostgreSQL through the parametrized
`store_url` fixture; this file checks the server helper itself and the parts above the store
(sweep runner with several worker processes, CLI) on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from services import PostgresServer, ServiceUnavailable, find_postgres_bin_dir

from scaletrack.store import Store, StoreError

REPO = Path(__file__).resolve().parents[1]


def test_failing_server_binaries_raise_service_unavailable_with_the_reason(tmp_path: Path):
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("initdb", "pg_ctl", "postgres"):
        script = fake / tool
        script.write_text("#!/bin/sh\necho 'initdb: simulated broken install' >&2\nexit 1\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    root = tmp_path / "root"
    root.mkdir()
    server = PostgresServer(root=root, bin_dir=fake, account=None)
    with pytest.raises(ServiceUnavailable, match="initdb failed: initdb: simulated broken"):
        server.start()


def test_missing_binaries_are_a_service_error_not_a_crash(tmp_path: Path):
    server = PostgresServer(root=tmp_path, bin_dir=tmp_path / "nowhere", account=None)
    with pytest.raises(ServiceUnavailable, match="initdb"):
        server.start()


@pytest.mark.postgres
def test_server_runs_unprivileged_on_loopback(postgres_server: PostgresServer):
    assert find_postgres_bin_dir() is not None
    pid = int((postgres_server.data_dir / "postmaster.pid").read_text().splitlines()[0])
    owner = os.stat(f"/proc/{pid}").st_uid
    assert owner != 0  # PostgreSQL refuses root; the helper runs it as another account
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=postgres_server.port,
                         user=postgres_server.superuser, dbname="postgres") as conn:
        addresses = conn.execute("SHOW listen_addresses").fetchone()[0]
    assert addresses == "127.0.0.1"


@pytest.mark.postgres
def test_each_test_database_is_fresh_and_isolated(postgres_server: PostgresServer):
    a = postgres_server.create_database()
    b = postgres_server.create_database()
    from scaletrack.store import RunRecord

    with Store.open(a) as store:
        store.ensure_run(RunRecord(run_key="only-in-a", sweep=None, family="gpt", config={},
                                   N=1, N_total=1, D=1, C=6.0))
    with Store.open(b) as store:
        assert store.runs().empty
    with Store.open(a.replace("postgresql+psycopg://", "postgresql://")) as store:
        assert list(store.runs()["run_key"]) == ["only-in-a"]
    with Store.open(a.replace("postgresql+psycopg://", "postgres://")) as store:
        assert store.count_metrics() == 0
    for url in (a, b):
        postgres_server.drop_database(url.rsplit("/", 1)[1])


@pytest.mark.postgres
def test_unknown_database_is_a_one_line_store_error(postgres_server: PostgresServer):
    url = postgres_server.url("no_such_database").replace("scaletrack@", "scaletrack:s3cret@")
    with pytest.raises(StoreError) as info:
        Store.open(url)
    message = str(info.value)
    assert "\n" not in message and "s3cret" not in message
    assert "no_such_database" in message or "127.0.0.1" in message


GRID = """
name = "pg-sweep"
[data]
path = "{corpus}"
context = 32
[model]
family = "gpt"
sizes = [{{ n_layer = 1, n_head = 1, d_model = 16 }}, {{ n_layer = 1, n_head = 2, d_model = 16 }}]
[axes]
tokens = [2560, 3840]   # 20 and 30 steps of 4 x 32 tokens
[train]
batch_size = 4
[eval]
every = 10
batches = 2
[checkpoint]
every = 10
[executor]
kind = "local"
workers = 2
"""


def scaletrack(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scaletrack.cli.main", *args], capture_output=True, text=True,
        timeout=600, cwd=REPO, env={**os.environ, **(env or {}), "COLUMNS": "200"},
    )


@pytest.mark.postgres
@pytest.mark.slow
def test_cli_sweep_with_two_workers_on_postgres(postgres_db_url: str, tmp_path: Path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("scaling laws predict the loss of large models from small ones. " * 400)
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.format(corpus=corpus))
    first = scaletrack("sweep", "run", str(grid), "--checkpoint-dir", str(tmp_path / "ckpt"),
                       env={"SCALETRACK_STORE": postgres_db_url})
    assert first.returncode == 0, first.stdout + first.stderr
    listed = scaletrack("runs", "--store", postgres_db_url, "--sweep", "pg-sweep", "--json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert len(runs) == 4 and {r["status"] for r in runs} == {"finished"}
    with Store.open(postgres_db_url) as store:
        metrics = store.metrics()
        steps = store.runs().set_index("run_key")
    assert not metrics.duplicated(["run_key", "name", "step"]).any()
    for key, run in steps.iterrows():
        losses = metrics[(metrics["run_key"] == key) & (metrics["name"] == "train/loss")]
        assert losses["step"].tolist() == list(range(run["D"] // 128))
    again = scaletrack("sweep", "run", str(grid), "--store", postgres_db_url)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "4 already done" in again.stdout
