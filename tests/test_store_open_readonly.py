"""Opening a store only to read, or for a command that fails its checks, creates nothing:
no SQLite file, no PostgreSQL tables; messages name the store by its masked URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.store import Store, StoreError


@pytest.fixture
def empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder without a store, and no $SCALETRACK_STORE."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCALETRACK_STORE", raising=False)
    return tmp_path


def lm_eval_file(folder: Path, model: str) -> Path:
    """A small lm-eval 0.3 result file of `model` at step 1000."""
    path = folder / f"{model}.json"
    path.write_text(json.dumps({
        "results": {"lambada_openai": {"acc": 0.5, "acc_stderr": 0.01, "ppl": 12.0}},
        "config": {"model_args": f"pretrained=org/{model},revision=step1000",
                   "num_fewshot": 0},
    }))
    return path


@pytest.mark.parametrize("args", [["tag", "nosuchrun", "x"], ["logs", "nosuchrun"],
                                  ["sweep", "cancel", "nosweep"]])
def test_commands_on_what_exists_create_no_store(empty_folder: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "no scaletrack store at" in result.output
    assert str(empty_folder / "scaletrack.db") in result.output
    assert list(empty_folder.iterdir()) == []


def test_unknown_run_is_named_with_the_store_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    Store.open(url).close()
    result = CliRunner().invoke(app, ["tag", "nosuchrun", "x", "--store", url])
    assert result.exit_code == 1
    assert f"no run with key 'nosuchrun' in {url}" in result.output
    assert "Store(" not in result.output


@pytest.mark.parametrize("problem", ["model not in sizes", "broken JSON"])
def test_failed_lm_eval_import_leaves_no_store(empty_folder: Path, problem: str) -> None:
    sizes = empty_folder / "sizes.csv"
    sizes.write_text("model,params,tokens_per_step\nknown-model,1000000,2048\n")
    if problem == "broken JSON":
        lm_eval_file(empty_folder, "known-model")
        (empty_folder / "broken.json").write_text("{broken")
    else:
        lm_eval_file(empty_folder, "unknown-model")
    before = set(empty_folder.iterdir())
    result = CliRunner().invoke(app, ["import", "lm-eval", str(empty_folder), "--sizes",
                                      str(sizes)])
    assert result.exit_code == 1, result.output
    assert "error:" in result.output
    assert set(empty_folder.iterdir()) == before  # no scaletrack.db, -wal or -shm


def test_failed_idea_registration_leaves_no_store(empty_folder: Path) -> None:
    result = CliRunner().invoke(app, ["ideas", "add", "t", "--task", "addition", "--metric",
                                      "exact_match", "--threshold", "0.9", "--direction",
                                      "sideways"])
    assert result.exit_code == 1
    assert "direction 'sideways' must be 'above' or 'below'" in result.output
    assert list(empty_folder.iterdir()) == []
    ok = CliRunner().invoke(app, ["ideas", "add", "t", "--task", "addition", "--metric",
                                  "exact_match", "--threshold", "0.9"])
    assert ok.exit_code == 0, ok.output
    assert (empty_folder / "scaletrack.db").is_file()


def test_failed_checkpoint_registration_leaves_no_store(empty_folder: Path) -> None:
    result = CliRunner().invoke(app, ["checkpoints", "add", str(empty_folder / "none.bin"),
                                      "--params", "10", "--tokens", "10"])
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert list(empty_folder.iterdir()) == []


def test_a_store_file_with_rows_is_never_taken_for_an_empty_one(tmp_path: Path) -> None:
    from scaletrack.store.guard import sqlite_file_holds_rows

    path = tmp_path / "s.db"
    with Store.open(f"sqlite:///{path}") as store:
        assert not sqlite_file_holds_rows(path)  # the schema and its version only
        store.upsert_sweep("kept", spec={})
    assert sqlite_file_holds_rows(path)
    path.with_name("junk.db").write_bytes(b"not a database")
    assert sqlite_file_holds_rows(path.with_name("junk.db"))


def test_successful_lm_eval_import_still_creates_the_store(empty_folder: Path) -> None:
    sizes = empty_folder / "sizes.csv"
    sizes.write_text("model,params,tokens_per_step\nknown-model,1000000,2048\n")
    lm_eval_file(empty_folder, "known-model")
    result = CliRunner().invoke(app, ["import", "lm-eval", str(empty_folder), "--sizes",
                                      str(sizes)])
    assert result.exit_code == 0, result.output
    with Store.open("sqlite:///scaletrack.db", create=False) as store:
        assert list(store.runs()["name"]) == ["known-model"]


def test_failed_import_into_an_existing_store_keeps_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    Store.open(url).close()
    (tmp_path / "broken.json").write_text("{broken")
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("model,params,tokens_per_step\nm,1000000,2048\n")
    result = CliRunner().invoke(app, ["import", "lm-eval", str(tmp_path / "broken.json"),
                                      "--sizes", str(sizes), "--store", url])
    assert result.exit_code == 1
    with Store.open(url, create=False) as store:
        assert store.runs().empty


def test_sqlite_url_with_user_and_password_is_refused(tmp_path: Path) -> None:
    url = f"sqlite://alice:secret@{tmp_path / 'u.db'}"
    with pytest.raises(StoreError, match="SQLite URLs take no user or password") as caught:
        Store.open(url)
    assert "secret" not in str(caught.value)
    assert not (tmp_path / "u.db").exists()
    result = CliRunner().invoke(app, ["runs", "--store", url])
    assert result.exit_code == 1
    assert "SQLite URLs take no user or password" in result.output
    assert "secret" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def with_password(url: str, password: str) -> str:
    """`url` (postgresql+psycopg://user@host...) with a password the server ignores (trust)."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("args", [["runs"], ["tag", "somerun", "x"], ["logs", "somerun"]])
def test_postgres_read_only_command_on_empty_database_creates_nothing(
        postgres_db_url: str, args: list[str]) -> None:
    url = with_password(postgres_db_url, "hunter2")
    result = CliRunner().invoke(app, [*args, "--store", url])
    assert result.exit_code == 1
    assert "no scaletrack store at postgresql+psycopg://" in result.output
    assert "hunter2" not in result.output
    assert table_names(postgres_db_url) == set()


@pytest.mark.postgres
def test_postgres_read_only_open_refuses_an_empty_database(postgres_db_url: str) -> None:
    with pytest.raises(StoreError, match="^no scaletrack store at "):
        Store.open(postgres_db_url, create=False)
    from scaletrack.store import open_read_only

    with pytest.raises(StoreError, match="^no scaletrack store at "):
        open_read_only(postgres_db_url)
    assert table_names(postgres_db_url) == set()
    Store.open(postgres_db_url).close()  # a writing open still creates the store
    with Store.open(postgres_db_url, create=False) as store:
        assert store.runs().empty


@pytest.mark.postgres
def test_postgres_database_with_a_foreign_runs_table_is_left_alone(
        postgres_db_url: str, tmp_path: Path) -> None:
    engine = sa.create_engine(postgres_db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE runs (id serial PRIMARY KEY, label text)"))
        conn.execute(sa.text("INSERT INTO runs (label) VALUES ('theirs')"))
    engine.dispose()
    with pytest.raises(StoreError) as caught:
        Store.open(postgres_db_url)
    message = str(caught.value)
    assert "holds other tables named like scaletrack's (runs)" in message
    assert "nothing was changed" in message and "\n" not in message
    assert table_names(postgres_db_url) == {"runs"}
    csv = tmp_path / "r.csv"
    csv.write_text("N,D,loss\n1000000,20000000,3.5\n")
    result = CliRunner().invoke(app, ["import-csv", str(csv), "--store",
                                      with_password(postgres_db_url, "hunter2")])
    assert result.exit_code == 1
    assert "holds other tables named like scaletrack's" in result.output
    assert "hunter2" not in result.output
    assert table_names(postgres_db_url) == {"runs"}
