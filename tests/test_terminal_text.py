"""User text reaches a terminal literally: control characters shown escaped, never acted on.

One definition of an unsafe character (scaletrack.safe_text) serves every check that refuses
text and every command that prints it; these tests put escape sequences, bidirectional
overrides and zero-width marks into a store and into a program's stderr, then run each
command that prints them and look for the raw characters in what reached stdout and stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.errors import DataError
from scaletrack.safe_text import LINE_BREAKS, first_unsafe, shown
from scaletrack.store import Store
from scaletrack.store.importers.checks import text as imported_text
from scaletrack.store.metric_values import unsafe_text
from scaletrack.store.records import RunRecord
from scaletrack.sweeps.command import clean_line
from scaletrack.sweeps.spec_sections import control_character

CLEAR_SCREEN = "\x1b[2J"
CLIPBOARD = "\x1b]52;c;ZXZpbA==\x07"  # OSC 52: write "evil" to the clipboard
UNSAFE = ["\x1b", "\x00", "\x07", "\t", "\n", "\r", "\x7f", "\x85", "\x9b", "\u202e", "\u2066",
          "\u200b", "\u200d", "\ufeff", "\u2028", "\u2029", "\ud800"]
SAFE = ["a", " ", "é", "中", "\u00a0", "😀", "\\", "[red]x[/]"]
RAW = ["\x1b", "\x9b", "\u202e", "\u200b", "\x07"]  # none may reach the terminal


def _no_raw_control(output: str) -> None:
    for char in RAW:
        assert char not in output, f"{char!r} reached the terminal: {output!r}"


@pytest.mark.parametrize("char", UNSAFE)
def test_every_check_refuses_the_same_unsafe_characters(char: str) -> None:
    text = f"run{char}name"
    assert first_unsafe(text) == (3, char)
    assert unsafe_text(text) is not None
    assert control_character(text) is not None
    with pytest.raises(DataError):
        imported_text(text, "name")
    assert char not in clean_line(text) or char in LINE_BREAKS
    assert char not in shown(text) and shown(text).startswith("run\\")


@pytest.mark.parametrize("char", SAFE)
def test_every_check_takes_ordinary_text(char: str) -> None:
    text = f"run{char}name"
    assert first_unsafe(text) is None and unsafe_text(text) is None
    assert control_character(text) is None and imported_text(text, "name") == text
    assert clean_line(text) == text and shown(text) == text


def test_shown_escapes_as_python_writes_them() -> None:
    assert shown(f"x{CLEAR_SCREEN}y") == "x\\x1b[2Jy"
    assert shown("a\u202eb\u200bc") == "a\\u202eb\\u200bc"
    assert shown("line 1\nline 2\tend") == "line 1\\nline 2\\tend"
    assert shown("line 1\nline 2\tend", keep=LINE_BREAKS) == "line 1\nline 2\tend"


@pytest.fixture()
def hostile_store(tmp_path: Path) -> str:
    """A store whose names, titles, errors and tags hold escape sequences, as a store written
    by another tool (or an older version) may."""
    url = f"sqlite:///{tmp_path / 'hostile.db'}"
    runner = CliRunner()
    added = runner.invoke(app, ["ideas", "add", f"x{CLEAR_SCREEN}y", "--task", "addition",
                                "--metric", "exact_match", "--threshold", "0.5", "--store", url])
    assert added.exit_code == 0, added.output
    _no_raw_control(added.output)
    sweep = f"sw{CLIPBOARD}eep\u202e"
    with Store.open(url) as store:
        store.upsert_sweep(sweep, {"name": sweep})
        for i, family in enumerate((f"gpt{CLEAR_SCREEN}", "gpt\u200b")):
            key = f"{i:02d}" + "ab" * 15
            store.ensure_run(RunRecord(
                run_key=key, sweep=sweep, family=family, config={"note": CLIPBOARD},
                N=None if i else 533_000_000, N_total=None, D=None, C=5.33e8 if i else None,
                name=f"model{CLEAR_SCREEN}\u202e{i}"))
            store.finish_run(key, "failed", error=f"Traceback\n{CLIPBOARD}boom\u202e\r\x9b2J")
            store.tag(run_key=key, add=[f"tag{CLEAR_SCREEN}"], note=f"note{CLIPBOARD}")
    return url


def test_ideas_list_shows_the_escape_and_does_not_clear_the_screen(hostile_store: str) -> None:
    res = CliRunner().invoke(app, ["ideas", "list", "--store", hostile_store])
    assert res.exit_code == 0, res.output
    _no_raw_control(res.output)
    assert "x\\x1b[2Jy" in res.output


@pytest.mark.parametrize(
    "args",
    [["ideas", "list"], ["ideas", "list", "--json"], ["ideas", "edit", "1", "--threshold", "0.6"],
     ["runs"], ["runs", "--json"], ["runs", "--keys"], ["show", "00"], ["show", "01"],
     ["sweep", "status", f"sw{CLIPBOARD}eep\u202e"], ["tag", "00", "more"],
     ["show", f"{CLEAR_SCREEN}nope"], ["sweep", "status", f"{CLEAR_SCREEN}nope"],
     ["tag", "--sweep", f"sw{CLIPBOARD}eep\u202e", "t"]],
)
def test_no_raw_control_character_reaches_the_terminal(hostile_store: str,
                                                       args: list[str]) -> None:
    res = CliRunner().invoke(app, [*args, "--store", hostile_store])
    assert "Traceback (most recent call last)" not in res.output
    _no_raw_control(res.output)
    if args[:2] == ["runs", "--json"]:  # JSON keeps the text exact, as escapes
        assert json.loads(res.output)[0]["name"] == f"model{CLEAR_SCREEN}\u202e0"


def test_runs_prints_missing_values_as_a_dash(hostile_store: str) -> None:
    res = CliRunner().invoke(app, ["runs", "--store", hostile_store])
    assert res.exit_code == 0, res.output
    assert "<NA>" not in res.output and "nan" not in res.output.lower().split()
    assert "5.33e8" in res.output


NOISY = (
    "import sys\n"
    f"sys.stderr.write({CLIPBOARD!r} + 'RuntimeError: bad\\u202e cell' + {CLEAR_SCREEN!r})\n"
    "sys.exit(1)\n"
)


@pytest.mark.slow
def test_sweep_run_prints_a_programs_stderr_literally(tmp_path: Path) -> None:
    (tmp_path / "noisy.py").write_text(NOISY)
    (tmp_path / "grid.toml").write_text(
        'name = "noisy"\n[axes]\ntokens = [1000]\n[train]\ncommand = "python noisy.py"\n')
    url = f"sqlite:///{tmp_path / 's.db'}"
    res = CliRunner().invoke(app, ["sweep", "run", str(tmp_path / "grid.toml"), "--store", url])
    assert "RuntimeError: bad" in res.output, res.output
    _no_raw_control(res.output)
    status = CliRunner().invoke(app, ["sweep", "status", "noisy", "--store", url])
    assert status.exit_code == 0 and "1 failed" in status.output, status.output
    _no_raw_control(status.output)
