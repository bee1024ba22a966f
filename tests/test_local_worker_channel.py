"""The local executor's workers share no lock with the parent or with each other.

A process SIGKILLed while it holds a multiprocessing lock leaves that lock taken for good:
every other process that reaches it then hangs. So each worker talks to the parent over a pipe
of its own, and the stop flag is a lock-free shared byte. These tests kill real processes in
the worst places: in the middle of a message, and while reading the stop flag.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import struct
import time
from typing import Any

from scaletrack.sweeps.executors.local import (
    _StopFlag,
    _StopSignal,
    read_waiting,
)

CTX = mp.get_context("spawn")


def _half_message_then_die(conn: Any) -> None:
    """Send one whole message, then the header of a second one and half its body, then die."""
    conn.send({"kind": "whole"})
    body = b"x" * 1000  # the pipe's framing: a 4-byte big-endian length, then the bytes
    os.write(conn.fileno(), struct.pack("!i", len(body)) + body[:500])
    os.kill(os.getpid(), signal.SIGKILL)


def _spin_on_flag(flag: _StopFlag, ready: Any) -> None:
    flag.is_set()
    ready.send(True)
    while True:
        flag.is_set()


def test_a_worker_killed_mid_message_reads_as_the_end_of_its_pipe() -> None:
    parent_end, child_end = CTX.Pipe(duplex=True)
    proc = CTX.Process(target=_half_message_then_die, args=(child_end,), daemon=True)
    proc.start()
    child_end.close()
    proc.join(timeout=60)
    assert proc.exitcode == -signal.SIGKILL
    messages: list[Any] = []
    ended = False
    for _ in range(3):
        got, ended = read_waiting(parent_end)
        messages += got
        if ended:
            break
    assert messages == [{"kind": "whole"}]
    assert ended, "a pipe cut in the middle of a message must read as its end, not block"
    parent_end.close()


def test_a_live_worker_with_nothing_to_say_does_not_block_the_parent() -> None:
    parent_end, child_end = CTX.Pipe(duplex=True)
    assert read_waiting(parent_end) == ([], False)
    child_end.send(("a", 1))
    child_end.send(("b", 2))
    assert read_waiting(parent_end) == ([("a", 1), ("b", 2)], False)
    child_end.close()
    assert read_waiting(parent_end) == ([], True)
    parent_end.close()


def test_readers_of_the_stop_flag_killed_mid_read_never_block_anyone() -> None:
    """With a lock behind the flag (an mp.Event), one of these kills lands inside it sooner
    or later, and the parent's next read hangs; the shared byte has no lock to leave taken."""
    flag = _StopFlag(CTX)
    for _ in range(3):
        pipes = [CTX.Pipe(duplex=False) for _ in range(3)]
        readers = [CTX.Process(target=_spin_on_flag, args=(flag, send), daemon=True)
                   for _, send in pipes]
        for proc in readers:
            proc.start()
        for receive, _ in pipes:  # every reader is spinning on the flag
            assert receive.poll(120)
        time.sleep(0.05)
        for proc in readers:
            proc.kill()
            proc.join(timeout=30)
        assert not flag.is_set()
    flag.set()
    assert flag.is_set()
    assert _StopSignal(flag).is_set()
