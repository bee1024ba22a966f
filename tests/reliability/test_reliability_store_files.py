"""What a store URL may point at: another application's SQLite file, a text file, a missing
file, a damaged store, a store written by a newer scaletrack, URLs with secrets in odd places.
Each gives one line (exit 1, no traceback), touches nothing, and never prints a secret."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reliability.harness import populate_store
from scaletrack.cli.main import app
from scaletrack.store import Store, StoreError
from scaletrack.store.engine import parse_store_url, redact_secrets, redact_url

READ_COMMANDS = (["runs"], ["sweep", "status", "existing"], ["show", "run-0"],
                 ["ideas", "list"], ["checkpoints", "list"])


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_error(args: list[str], *words: str) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, (args, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), (args, repr(result.exception))
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.output)
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def test_another_applications_sqlite_file_is_refused_untouched(tmp_path: Path,
                                                               figures: dict) -> None:
    other = tmp_path / "app.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    before = _digest(other)
    text = tmp_path / "notes.db"
    text.write_text("not a database at all\n")
    for args in (*READ_COMMANDS, ["ideas", "add", "t", "--task", "val_loss", "--metric",
                                  "loss", "--threshold", "1"]):
        one_line_error([*args, "--store", f"sqlite:///{other}"], "not a scaletrack store",
                       "customers")
        one_line_error([*args, "--store", f"sqlite:///{text}"], "not a SQLite database")
    assert _digest(other) == before and not Path(f"{other}-wal").exists()
    assert text.read_text() == "not a database at all\n"
    with pytest.raises(StoreError, match="not a scaletrack store"):
        Store.open(f"sqlite:///{other}")
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + 2 * 6


def test_read_commands_do_not_create_a_store(tmp_path: Path, figures: dict) -> None:
    missing = tmp_path / "typo.db"
    for args in READ_COMMANDS:
        one_line_error([*args, "--store", f"sqlite:///{missing}"], "no scaletrack store at")
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    one_line_error(["runs", "--store", f"sqlite:///{empty}"], "no scaletrack store at")
    assert empty.stat().st_size == 0
    with Store.open(f"sqlite:///{empty}") as store:  # sweep run / imports create one
        assert store.runs().empty
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + len(READ_COMMANDS) + 1


def test_a_damaged_page_is_one_line_suggesting_recover(tmp_path: Path, figures: dict) -> None:
    db = tmp_path / "s.db"
    populate_store(f"sqlite:///{db}", tmp_path / "ckpt")
    assert not Path(f"{db}-wal").exists()  # checkpointed on close: the damage is in the file
    with open(db, "r+b") as fh:
        for page in range(3, os.path.getsize(db) // 4096):
            fh.seek(page * 4096 + 100)
            fh.write(b"\xff" * 200)
    line = one_line_error(["show", "run-0", "--store", f"sqlite:///{db}"],
                          "database disk image is malformed", ".recover")
    assert str(db) in line
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + 1


def test_a_store_from_a_newer_scaletrack_says_upgrade(tmp_path: Path, figures: dict) -> None:
    db = tmp_path / "s.db"
    with Store.open(f"sqlite:///{db}"):
        pass
    conn = sqlite3.connect(db)
    conn.execute("UPDATE alembic_version SET version_num = '0099_future'")
    conn.commit()
    conn.close()
    before = _digest(db)
    one_line_error(["runs", "--store", f"sqlite:///{db}"], str(db),
                          "this store was written by a newer scaletrack (schema 0099",
                          "; upgrade scaletrack")
    assert _digest(db) == before
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + 1


SECRET_URLS = {
    "postgresql://ann:hunter2@db.invalid/x": "hunter2",
    "postgresql://ann:p@ss@word@db.invalid/x": "ss@word",
    "postgresql://ann@db.invalid/x?password=hunter2&sslmode=disable": "hunter2",
    "postgresql://ann@db.invalid/x?sslpassword=k3y": "k3y",
    "postgresql://ann:hunter2@db.invalid:notaport/x": "hunter2",
}


@pytest.mark.parametrize("url", sorted(SECRET_URLS))
def test_no_secret_is_ever_printed(url: str, figures: dict) -> None:
    secret = SECRET_URLS[url]
    assert secret not in redact_url(url)
    said = redact_secrets(f"cannot open '{url}': host not found")
    assert secret not in said and said.endswith("': host not found"), said
    if "notaport" in url:
        line = one_line_error(["runs", "--store", url], "port is not a number")
        assert secret not in line
    else:
        parsed = parse_store_url(url)
        assert parsed.host == "db.invalid"  # an '@' in the password is not part of the host
    figures["bad inputs tried"] = figures.get("bad inputs tried", 0) + 1
