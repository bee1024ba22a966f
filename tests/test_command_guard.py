"""Command cells die whole: the cell guardian (sweeps/cell_guard.py) and the worker's backstops.

Real processes throughout. Each test marks the processes it starts with a unique environment
value and checks with psutil that none of them is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from scaletrack.store import Store
from scaletrack.sweeps.command import (
    GUARD_FILENAME,
    GUARD_SCRIPT,
    kill_stale_guard,
    log_dir,
    record_guard,
)
from scaletrack.sweeps.runner import default_checkpoint_root

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux guardian")

# background children of every kind: plain, setsid() (a new session), double-forked (orphaned
# at once), nohup'd; then the program itself exits 0
LEFT_BEHIND = ("sleep 1000 & setsid sleep 1000 & (sleep 1000 &) ; nohup sleep 1000 "
               ">/dev/null 2>&1 & echo started")


def marked(mark: str) -> list[psutil.Process]:
    """Live processes (zombies aside) whose environment carries MARK=mark."""
    out = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("MARK") == mark and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.Error:
            continue
    return out


def guardian_of(mark: str) -> psutil.Process | None:
    """The guardian whose program line carries `mark` (`env MARK=...` in the command)."""
    for proc in psutil.process_iter():
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if GUARD_SCRIPT.name in cmdline and mark in cmdline:
            return proc
    return None


def wait_none_marked(mark: str, timeout: float = 10.0) -> list[psutil.Process]:
    """Poll until no process carries `mark` (or the timeout); return what is left."""
    deadline = time.monotonic() + timeout
    left = marked(mark)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = marked(mark)
    return left


def guard(argv: list[str], mark: str, **kw: object) -> subprocess.Popen:
    """Start the guardian as a worker does (this test process as its parent)."""
    return subprocess.Popen(
        [sys.executable, "-I", str(GUARD_SCRIPT), "--parent", str(os.getpid()), "--", *argv],
        env={**os.environ, "MARK": mark}, start_new_session=True, **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(("script", "code"), [("exit 3", 3), ("kill -KILL $$", -9),
                                              ("kill -TERM $$", -15), ("true", 0)])
def test_guardian_exits_as_its_program_did(script: str, code: int) -> None:
    mark = uuid.uuid4().hex
    proc = guard(["bash", "-c", script], mark)
    assert proc.wait(timeout=60) == code  # a signal death reads as one: "killed by SIGKILL"


def test_background_children_die_when_the_program_exits() -> None:
    mark = uuid.uuid4().hex
    proc = guard(["bash", "-c", LEFT_BEHIND], mark, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=60)  # returns: nothing holds the pipes any more
    assert proc.returncode == 0, err
    assert b"started" in out and b"killed 4 leftover process(es)" in out, out
    assert err == b""  # the guardian's notes go to stdout (the log), never to stderr
    assert wait_none_marked(mark) == []


def _worker_with_guarded_tree(mark: str) -> tuple[subprocess.Popen, list[int]]:
    """A stand-in worker (a Python process) running a guarded `bash -c` tree with a trainer
    stand-in and a daemonised child; returns it and the tree's PIDs once all are up."""
    python = sys.executable  # not a `python` shim on PATH, whose helpers come and go
    program = (f"{python} -c 'import time; time.sleep(1000)' & setsid sleep 1000 & "
               f"{python} -c 'import time; time.sleep(1000)'")
    code = (f"import os, subprocess, sys\n"
            f"p = subprocess.Popen([sys.executable, '-I', {str(GUARD_SCRIPT)!r}, '--parent', "
            f"str(os.getpid()), '--', 'bash', '-c', {program!r}], start_new_session=True)\n"
            f"p.wait()\n")
    worker = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "MARK": mark})
    deadline = time.monotonic() + 60
    tree: list[int] = []
    while time.monotonic() < deadline:
        tree = [p.pid for p in marked(mark) if p.pid != worker.pid]
        if len(tree) >= 5:  # guardian, bash, two pythons, sleep
            break
        time.sleep(0.05)
    assert len(tree) >= 5, tree
    return worker, tree


def test_the_whole_tree_dies_with_the_worker() -> None:
    mark = uuid.uuid4().hex
    worker, _tree = _worker_with_guarded_tree(mark)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    assert wait_none_marked(mark) == []


def test_a_stale_guardian_tree_is_killed_and_a_reused_pid_is_not(tmp_path: Path) -> None:
    mark = uuid.uuid4().hex
    worker, tree = _worker_with_guarded_tree(mark)
    try:
        guardian = next(p for p in marked(mark) if GUARD_SCRIPT.name in " ".join(p.cmdline()))
        record_guard(tmp_path, guardian.pid, "run", "w")
        info = json.loads((tmp_path / GUARD_FILENAME).read_text())
        assert info["pid"] == guardian.pid and info["create_time"] == guardian.create_time()

        # the same PID with another start time is another process: never touched
        (tmp_path / GUARD_FILENAME).write_text(json.dumps({**info, "create_time": 1.0}))
        assert kill_stale_guard(tmp_path) == []
        assert guardian.is_running()

        (tmp_path / GUARD_FILENAME).write_text(json.dumps(info))
        killed = kill_stale_guard(tmp_path)
        assert guardian.pid in killed and set(tree) <= set(killed) | {worker.pid}
        assert wait_none_marked(mark) == [] or [p.pid for p in marked(mark)] == [worker.pid]
    finally:
        worker.kill()
        worker.wait(timeout=10)
    assert wait_none_marked(mark) == []


GRID = """
name = "guarded"
[axes]
tokens = [1000]
[train]
command = '''{command}'''
"""


def _sweep(grid: Path, url: str, **kw: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scaletrack.cli.main", "sweep", "run", str(grid), "--store", url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw,  # type: ignore
    )


@pytest.mark.slow
def test_sweep_run_returns_only_after_a_background_child_is_gone(tmp_path: Path) -> None:
    mark = uuid.uuid4().hex
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.format(command=f"env MARK={mark} bash -c '{LEFT_BEHIND}'"))
    url = f"sqlite:///{tmp_path / 's.db'}"
    sweep = _sweep(grid, url)
    # a stall (the child holding the stderr pipe) would run into this timeout, not pass
    output = sweep.communicate(timeout=120)[0]
    assert sweep.returncode == 0, output
    assert marked(mark) == []  # gone before `sweep run` returned: no wait here
    with Store.open(url) as store:
        runs = store.runs()
    assert list(runs["status"]) == ["finished"]
    key = runs["run_key"].iloc[0]
    log = (log_dir(default_checkpoint_root(url), key) / "command.log").read_text()
    assert "started" in log and "killed 4 leftover process(es)" in log, log
    assert (log_dir(default_checkpoint_root(url), key) / GUARD_FILENAME).is_file()


@pytest.mark.slow
def test_a_killed_guardian_leaves_nothing_behind(tmp_path: Path) -> None:
    """SIGKILL of the guardian itself: its orphans go to the worker (a subreaper while the
    cell runs), which kills them and marks the cell failed."""
    mark = uuid.uuid4().hex
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.format(
        command=f"env MARK={mark} bash -c 'setsid sleep 1000 & sleep 1000'"))
    url = f"sqlite:///{tmp_path / 's.db'}"
    sweep = _sweep(grid, url)
    deadline = time.monotonic() + 120
    guardian = None
    while guardian is None and time.monotonic() < deadline:
        if len(marked(mark)) >= 3:  # bash and two sleeps
            guardian = guardian_of(mark)
        time.sleep(0.05)
    assert guardian is not None
    guardian.kill()
    output = sweep.communicate(timeout=120)[0]
    assert marked(mark) == [], output
    with Store.open(url) as store:
        run = store.runs().iloc[0]
    assert run["status"] == "failed" and "killed by SIGKILL" in run["error"], output


STOPPABLE = r'''
import signal, subprocess, sys, time
child = subprocess.Popen(["sleep", "1000"])  # a child the program never stops itself
def on_term(*_):
    print("got SIGTERM", flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
time.sleep(1000)
'''


@pytest.mark.slow
def test_ctrl_c_stops_a_guarded_cell_and_releases_it(tmp_path: Path) -> None:
    mark = uuid.uuid4().hex
    (tmp_path / "stoppable.py").write_text(STOPPABLE)
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.format(command=f"env MARK={mark} python stoppable.py"))
    url = f"sqlite:///{tmp_path / 's.db'}"
    sweep = _sweep(grid, url)
    deadline = time.monotonic() + 120
    while len(marked(mark)) < 2 and time.monotonic() < deadline:  # the program and its child
        time.sleep(0.05)
    assert len(marked(mark)) == 2
    sweep.send_signal(signal.SIGINT)  # Ctrl-C: the sweep asks its workers to stop
    output = sweep.communicate(timeout=120)[0]
    assert sweep.returncode == 130 and "interrupted" in output, output
    assert marked(mark) == []
    with Store.open(url) as store:
        run = store.runs().iloc[0]
    assert run["status"] == "failed" and run["error"] == "interrupted"  # resumable
    log = (log_dir(default_checkpoint_root(url), run["run_key"]) / "command.log").read_text()
    assert "got SIGTERM" in log, log


@pytest.mark.slow
def test_a_missing_program_is_one_clear_error(tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.format(command="no-such-program-here --tokens {tokens}"))
    url = f"sqlite:///{tmp_path / 's.db'}"
    output = _sweep(grid, url).communicate(timeout=120)[0]
    with Store.open(url) as store:
        run = store.runs().iloc[0]
    assert run["status"] == "failed", output
    assert run["error"] == ("cannot start command 'no-such-program-here': No such file or "
                            "directory")
