"""A throw-away one-node Slurm cluster on this machine (munged + slurmctld + slurmd), fixtures.

Everything lives in a fresh temp directory: a generated munge key and socket, a slurm.conf
for one node named after this host (address 127.0.0.1), state and spool dirs, logs. Daemons
run in the foreground as our children and are stopped by pid. Cgroups are off
(proctrack/linuxproc, task/none) so it runs in a container without systemd; slurmctld and
slurmd run as the current user (root in CI: SlurmUser=root). The node advertises
`SLURM_TEST_CPUS` CPUs (config_overrides: more than the machine has is fine for tiny cells).
Client commands (sbatch, squeue...) find the cluster through $SLURM_CONF, which
`running_slurm` sets for the duration of the block.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.common import (
    ServiceUnavailable,
    _die_with_parent,
    _tail,
    free_port,
    kill_process_tree,
)

SLURM_TEST_CPUS = 4
_TOOLS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol")


def install_slurm() -> None:
    """apt-get install Debian's slurm-wlm (slurmctld, slurmd, clients) and munge."""
    if os.geteuid() != 0:
        raise ServiceUnavailable("Slurm is not installed and we are not root to apt-get it")
    if shutil.which("apt-get") is None:
        raise ServiceUnavailable("Slurm is not installed and apt-get is absent")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"],
                ["apt-get", "install", "-y", "--no-install-recommends", "slurm-wlm", "munge"]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise ServiceUnavailable(f"`{' '.join(cmd)}` failed: {' | '.join(last)}")


def ensure_slurm_tools() -> None:
    """The munge and Slurm programs, installed when absent."""
    if any(shutil.which(t) is None for t in _TOOLS):
        install_slurm()
    missing = [t for t in _TOOLS if shutil.which(t) is None]
    if missing:
        raise ServiceUnavailable(f"after installing slurm-wlm and munge, still missing {missing}")


@dataclass
class SlurmCluster:
    """munged, slurmctld and slurmd for one node (this host) under `root`."""

    root: Path
    cpus: int = SLURM_TEST_CPUS
    node: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    partition: str = "debug"
    startup_s: float | None = None
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge-run" / "munge.sock"

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _write_conf(self, ctld_port: int, slurmd_port: int) -> None:
        user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
        r = self.root
        self.conf.write_text(f"""\
ClusterName=scaletrack-test
SlurmctldHost={self.node}(127.0.0.1)
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
StateSaveLocation={r / "state"}
SlurmdSpoolDir={r / "spool"}
SlurmctldPidFile={r / "slurmctld.pid"}
SlurmdPidFile={r / "slurmd.pid"}
SlurmctldLogFile={r / "slurmctld.log"}
SlurmdLogFile={r / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
KillWait=5
MinJobAge=3600
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory=4000 State=UNKNOWN
PartitionName={self.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / f"{name}.out", "ab")  # noqa: SIM115 - kept open by the child
        try:
            self.processes[name] = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.root, env=self.env(), start_new_session=True,
                preexec_fn=_die_with_parent(signal.SIGTERM),
            )
        except OSError as exc:
            raise ServiceUnavailable(f"cannot run {cmd[0]}: {exc}") from exc
        finally:
            log.close()

    def start(self, timeout_s: float = 90.0) -> None:
        """Key, config, daemons; returns once sinfo shows the node idle."""
        t0 = time.perf_counter()
        for sub in ("state", "spool", "munge-etc", "munge-run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "munge-etc").chmod(0o700)
        (self.root / "munge-run").chmod(0o755)
        key = self.root / "munge-etc" / "munge.key"
        made = subprocess.run(["mungekey", "--create", f"--keyfile={key}"],
                              capture_output=True, text=True)
        if made.returncode != 0:
            raise ServiceUnavailable(f"mungekey failed: {made.stderr.strip()}")
        key.chmod(0o600)
        self._spawn("munged", [
            "munged", "--foreground", "--force", f"--socket={self.munge_socket}",
            f"--key-file={key}", f"--pid-file={self.root / 'munge-run' / 'munged.pid'}",
            f"--seed-file={self.root / 'munge-etc' / 'munged.seed'}",
            f"--log-file={self.root / 'munged.log'}",
        ])
        self._wait(lambda: self.munge_socket.exists(), "munged socket", 20)
        self._write_conf(free_port(), free_port())
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf), "-N", self.node])
        self._wait(self._node_idle, "the node to be idle in sinfo", timeout_s)
        self.startup_s = time.perf_counter() - t0

    def _node_idle(self) -> bool:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                log = _tail(self.root / f"{name}.log") or _tail(self.root / f"{name}.out")
                raise ServiceUnavailable(f"{name} exited ({proc.returncode}): {log}")
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True,
                             text=True, env=self.env(), timeout=30)
        return out.returncode == 0 and f"{self.node} idle" in out.stdout

    def _wait(self, ready, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.2)
        raise ServiceUnavailable(
            f"timed out after {timeout_s:.0f} s waiting for {what}: "
            f"{_tail(self.root / 'slurmctld.log')} | {_tail(self.root / 'slurmd.log')}"
        )

    def scontrol(self, *args: str) -> str:
        """Run scontrol against this cluster; returns stdout (raises on failure)."""
        done = subprocess.run(["scontrol", *args], capture_output=True, text=True,
                              env=self.env(), timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"scontrol {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def cancel_all_jobs(self, timeout_s: float = 30.0) -> None:
        """scancel every job of this (private) cluster and wait until none is running."""
        env = self.env()
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(["squeue", "-h", "-o", "%A"], capture_output=True, text=True,
                                 env=env, timeout=30)
            ids = sorted(set(out.stdout.split()))
            if not ids:
                return
            subprocess.run(["scancel", *ids], capture_output=True, env=env, timeout=30)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                out = subprocess.run(["squeue", "-h", "-t", "R,CG,PD", "-o", "%A"],
                                     capture_output=True, text=True, env=env, timeout=30)
                if not out.stdout.strip():
                    return
                time.sleep(0.5)

    def stop(self) -> None:
        """Cancel the jobs left, then stop slurmd, slurmctld and munged by pid."""
        if self.processes.get("slurmctld") is not None:
            self.cancel_all_jobs()
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.processes.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                kill_process_tree(proc.pid, pgid=proc.pid)
                proc.wait(timeout=10)


@contextlib.contextmanager
def running_slurm(cpus: int = SLURM_TEST_CPUS) -> Iterator[SlurmCluster]:
    """A private one-node Slurm for the block, with $SLURM_CONF pointing at it."""
    ensure_slurm_tools()
    root = Path(tempfile.mkdtemp(prefix="scaletrack-slurm-"))
    cluster = SlurmCluster(root=root, cpus=cpus)
    previous = os.environ.get("SLURM_CONF")
    try:
        cluster.start()
        os.environ["SLURM_CONF"] = str(cluster.conf)
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A one-node Slurm cluster for the whole test session, or skip with the reason."""
    try:
        with running_slurm() as cluster:
            yield cluster
    except ServiceUnavailable as exc:
        pytest.skip(f"Slurm unavailable: {exc}")
