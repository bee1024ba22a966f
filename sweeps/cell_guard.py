"""The guardian of one command cell (Linux): the cell's program and everything it starts die
with the worker, and nothing of the cell outlives it.

Run by the worker as ``python -I cell_guard.py --parent PID [--grace S] -- PROGRAM ARGS...``
(standard library only, so it starts in a few tens of milliseconds and imports no torch). It

1. puts itself in a new session (the worker starts it so), asks for SIGUSR1 when its parent
   dies (PR_SET_PDEATHSIG) and becomes a child subreaper (PR_SET_CHILD_SUBREAPER), so every
   descendant of the program — even one that daemonises or calls setsid() — stays in its tree
   and is reparented to it, not to init; then it checks that its parent is still the worker
   (the worker may have died before the prctl) and exits at once if not;
2. starts the program in a process group of its own (stdin, stdout, stderr, environment and
   working directory are the guardian's);
3. on SIGTERM (the worker's graceful stop) sends SIGTERM to every descendant, and SIGKILL to
   every one still alive after the grace;
4. when the program exits, when the parent dies (SIGUSR1) or when the grace runs out, sends
   SIGKILL to every remaining descendant (found by walking /proc, repeated until none is left)
   and reaps them;
5. exits with the program's status: its exit code, or — if a signal killed it — by killing
   itself with the same signal (no core file), so the worker still reads "killed by SIGKILL".

Its own notes go to stdout (the cell's log), never to stderr, so they do not become the run's
error message. Exit code 125 (with a note) when it cannot start the program.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PARENT_DIED = signal.SIGUSR1  # the parent-death signal; also "kill everything now"
POLL_S = 0.05
CANNOT_START = 125


def note(text: str) -> None:
    """One line in the cell's log (stdout, which the worker points at logs/command.log)."""
    with contextlib.suppress(OSError):
        os.write(1, f"=== scaletrack guard {os.getpid()}: {text}\n".encode(errors="replace"))


def descendants(root: int) -> list[int]:
    """PIDs of every process below `root` (zombies included), from /proc."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) >= 2:
            children.setdefault(int(fields[1]), []).append(int(name))
    out: list[int] = []
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), ()):
            out.append(pid)
            todo.append(pid)
    return out


def signal_all(sig: int) -> int:
    """Send `sig` to every descendant; the number signalled."""
    sent = 0
    for pid in descendants(os.getpid()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
            sent += 1
    return sent


class Guard:
    def __init__(self, parent: int, grace_s: float) -> None:
        self.parent = parent
        self.grace_s = grace_s
        self.program: subprocess.Popen[bytes] | None = None
        self.program_status: int | None = None  # the raw wait status, once it exited
        self.parent_died = False
        self.stop_at: float | None = None  # when SIGTERM was forwarded

    def on_parent_died(self, _signum: int, _frame: object) -> None:
        self.parent_died = True

    def on_term(self, _signum: int, _frame: object) -> None:
        if self.stop_at is None:
            self.stop_at = time.monotonic()
            signal_all(signal.SIGTERM)

    def reap(self) -> None:
        """Reap every exited child (the program, and orphans reparented to us)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.program is not None and pid == self.program.pid:
                self.program_status = status
                self.program.returncode = os.waitstatus_to_exitcode(status)

    def kill_all(self, why: str) -> None:
        """SIGKILL every descendant and reap it, until none is left."""
        start = time.monotonic()
        killed: set[int] = set()
        warned = False
        while True:
            self.reap()
            left = descendants(os.getpid())
            if not left:
                break
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                if self.program is None or pid != self.program.pid:
                    killed.add(pid)
            if not warned and time.monotonic() - start > 10:
                warned = True
                note(f"still waiting for processes {sorted(left)} to die")
            time.sleep(0.01)
        if killed:
            note(f"{why}: killed {len(killed)} leftover process(es) of the cell: "
                 + " ".join(str(p) for p in sorted(killed)[:20]))

    def run(self, argv: list[str]) -> int:
        signal.signal(PARENT_DIED, self.on_parent_died)
        signal.signal(signal.SIGTERM, self.on_term)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the sleep below sooner
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(PARENT_DIED), 0, 0, 0) != 0:
            note(f"prctl(PR_SET_PDEATHSIG) failed (errno {ctypes.get_errno()})")
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            note(f"prctl(PR_SET_CHILD_SUBREAPER) failed (errno {ctypes.get_errno()})")
        if os.getppid() != self.parent:  # the worker died before the prctl: start nothing
            note("the worker is gone; not starting the program")
            return CANNOT_START
        if self.parent_died or self.stop_at is not None:
            return CANNOT_START
        try:
            # the program's own process group; SIGINT back to its default (a worker ignores it)
            self.program = subprocess.Popen(
                argv, process_group=0, close_fds=False,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
        except OSError as exc:
            print(f"cannot start command {argv[0]!r}: {exc.strerror or exc}", file=sys.stderr)
            return CANNOT_START
        while self.program_status is None and not self.parent_died:
            if os.getppid() != self.parent:  # no parent-death signal came (prctl refused?)
                self.parent_died = True
                break
            self.reap()
            if self.program_status is not None or self.parent_died:
                break
            if self.stop_at is not None and time.monotonic() - self.stop_at > self.grace_s:
                note(f"the program did not stop within {self.grace_s:g} s of SIGTERM")
                break
            time.sleep(POLL_S)
        if self.parent_died:
            self.kill_all("the worker died")
        elif self.program_status is None:
            self.kill_all("stop grace over")
        else:
            self.kill_all("the program exited")
        return self.exit_code()

    def exit_code(self) -> int:
        status = self.program_status
        if status is None:
            return CANNOT_START
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            with contextlib.suppress(OSError, ValueError):
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # die of it, but dump nothing
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                with contextlib.suppress(OSError, ValueError):
                    signal.signal(sig, signal.SIG_DFL)
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
            os.kill(os.getpid(), sig)
            time.sleep(1.0)
            return 128 + sig  # a signal that does not kill (cannot happen for a death cause)
        return os.waitstatus_to_exitcode(status)


def main(args: list[str]) -> int:
    parent, grace = None, 120.0
    while args and args[0] != "--":
        flag = args.pop(0)
        if flag == "--parent" and args:
            parent = int(args.pop(0))
        elif flag == "--grace" and args:
            grace = float(args.pop(0))
        else:
            print(f"cell_guard: unknown argument {flag!r}", file=sys.stderr)
            return 2
    argv = args[1:]
    if parent is None or not argv:
        print("usage: cell_guard.py --parent PID [--grace S] -- PROGRAM [ARGS...]",
              file=sys.stderr)
        return 2
    return Guard(parent, grace).run(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
