"""Bad store URLs give one-line StoreErrors naming the URL (password hidden), also in the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaletrack.errors import ScaletrackError
from scaletrack.store import RunRecord, Store, StoreError, resolve_store_url

REPO = Path(__file__).resolve().parents[1]

BAD_URLS = [
    ("not a url", "malformed"),
    ("mysql://root:hunter2@localhost/db", "unsupported store URL scheme"),
    ("postgresql+asyncpg://u:hunter2@localhost/db", "unsupported PostgreSQL driver"),
    ("postgresql://scaler:hunter2@127.0.0.1:1/scaling", "cannot open store"),
    ("sqlite:////nonexistent-dir-for-scaletrack/x/store.db", "does not exist"),
]


def test_store_error_is_a_scaletrack_error():
    assert issubclass(StoreError, ScaletrackError)


@pytest.mark.parametrize(("url", "reason"), BAD_URLS)
def test_bad_url_is_one_line_naming_the_url(url: str, reason: str):
    with pytest.raises(StoreError) as info:
        Store.open(url)
    message = str(info.value)
    assert "\n" not in message
    assert reason in message
    assert "hunter2" not in message
    shown = url.replace("hunter2", "***")
    assert shown in message


SECRET_URLS = [
    ("postgresql://ann:hunter2@db.invalid/x", "postgresql://ann:***@db.invalid/x"),
    ("postgresql://ann:hun@ter2@db.invalid/x", "postgresql://ann:***@db.invalid/x"),
    ("postgresql://ann:hun/ter2?@db.invalid/x", "postgresql://ann:***@db.invalid/x"),
    ("postgresql://ann@db.invalid/x?password=hunter2&token=hunter2",
     "postgresql://ann@db.invalid/x?password=***&token=***"),
    # not parseable by SQLAlchemy: redacted by pattern
    ("postgresql://ann:hunter2@db.invalid:notaport/x",
     "postgresql://ann:***@db.invalid:notaport/x"),
    ("not a url", "not a url"),
]


@pytest.mark.parametrize(("url", "shown"), SECRET_URLS)
def test_redact_url_shows_no_secret(url: str, shown: str):
    """SQLAlchemy's rendering with the password hidden, secret query parameters masked; a URL
    SQLAlchemy cannot parse is masked by pattern."""
    from scaletrack.store.engine import redact_url

    assert redact_url(url) == shown


def test_unwritable_sqlite_file(tmp_path: Path):
    locked = tmp_path / "ro"
    locked.mkdir()
    (locked / "store.db").mkdir()  # a directory where the database file should be
    with pytest.raises(StoreError) as info:
        Store.open(f"sqlite:///{locked / 'store.db'}")
    assert str(locked / "store.db") in str(info.value) and "\n" not in str(info.value)


def test_resolve_store_url(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SCALETRACK_STORE", raising=False)
    assert resolve_store_url(None) == "sqlite:///scaletrack.db"
    monkeypatch.setenv("SCALETRACK_STORE", "sqlite:///elsewhere.db")
    assert resolve_store_url(None) == "sqlite:///elsewhere.db"
    assert resolve_store_url("sqlite:///given.db") == "sqlite:///given.db"


def test_cli_bad_store_url_exit_1_without_traceback():
    from scaletrack.cli.main import app

    result = CliRunner().invoke(app, ["runs", "--store", "mysql://root:hunter2@h/db"])
    assert result.exit_code == 1
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "mysql://root:***@h/db" in text and "Traceback" not in text and "hunter2" not in text


@pytest.mark.slow
def test_cli_unreachable_postgres_subprocess():
    url = "postgresql://scaler:hunter2@127.0.0.1:1/scaling"
    proc = subprocess.run(
        [sys.executable, "-m", "scaletrack.cli.main", "runs", "--store", url],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "127.0.0.1:1" in lines[0] and "hunter2" not in lines[0]


def test_cli_lists_runs_table_and_json(store_url: str, store: Store):
    import json

    from scaletrack.cli.main import app

    store.ensure_run(RunRecord(run_key="abc", sweep="grid", family="gpt", config={"x": 1},
                               N=1000, N_total=1200, D=20_000, C=1.2e8, seed=0, lr=1e-3))
    store.ensure_run(RunRecord(run_key="def", sweep="other", family="lstm", config={},
                               N=None, N_total=None, D=None, C=None))
    store.finish_run("abc", "finished", final_loss=3.25)
    runner = CliRunner()
    result = runner.invoke(app, ["runs", "--store", store_url, "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["run_key"] for r in records] == ["abc", "def"]
    assert records[0]["final_loss"] == 3.25 and records[1]["N"] is None
    result = runner.invoke(app, ["runs", "--store", store_url, "--sweep", "grid", "--json"])
    assert [r["run_key"] for r in json.loads(result.stdout)] == ["abc"]
    result = runner.invoke(app, ["runs", "--store", store_url, "--status", "finished"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "abc" in result.stdout and "def" not in result.stdout
    result = runner.invoke(app, ["runs", "--store", store_url, "--status", "bogus"])
    assert result.exit_code == 1


def test_a_missing_postgres_driver_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    # a module named like the driver that fails to import, as on a machine without it
    (tmp_path / "psycopg.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n")
    url = "postgresql://nobody:hunter2@127.0.0.1:1/x"
    for command in (["runs", "--store", url], ["ui", "--store", url]):
        done = subprocess.run([sys.executable, "-m", "scaletrack.cli.main", *command],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(tmp_path)})
        assert done.returncode != 0, command
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "scaletrack[postgres]" in lines[0], done.stderr
        assert "hunter2" not in done.stderr + done.stdout and "Traceback" not in done.stderr
