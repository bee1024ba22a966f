"""A local multi-node Ray cluster (a head and workers as separate processes) and its fixture."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from services.common import (
    ServiceUnavailable,
    _die_with_parent,
    _tail,
    free_port,
    kill_process_tree,
)


@dataclass
class RayNode:
    """One `ray start --block` process (and everything it spawned) = one Ray node."""

    name: str
    process: subprocess.Popen
    log_file: Path
    resources: dict[str, float] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the node: raylet, object store, its Ray workers — like a machine dying."""
        kill_process_tree(self.process.pid, pgid=self.process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def _ray_cli() -> str:
    beside = Path(sys.executable).parent / "ray"
    if beside.exists():
        return str(beside)
    found = shutil.which("ray")
    if found is None:
        raise ServiceUnavailable(
            "the `ray` command is not installed: pip install 'scaletrack[ray]'"
        )
    return found


@dataclass
class RayCluster:
    """A local Ray cluster on 127.0.0.1: one head node plus worker nodes, each 1 CPU by default.

    Every node carries a custom resource named after it (`{"w1": 1}`), so tests can tell the
    nodes apart in `ray.nodes()`. Nodes are started with --node-ip-address=127.0.0.1, but
    Ray (2.60) replaces a loopback address with the machine's primary IP; the cluster still
    lives on this machine only. Token authentication with a private token (never
    ~/.ray/auth_token) is on; `auth_env()` is what a driver needs.
    """

    root: Path
    port: int = 0
    nodes: dict[str, RayNode] = field(default_factory=dict)
    startup_s: float | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def token_file(self) -> Path:
        return self.root / "auth_token"

    def auth_env(self) -> dict[str, str]:
        """Environment a driver needs to join: token auth with this cluster's own token.

        The cluster never reads ~/.ray/auth_token, so it works whatever that file holds.
        """
        if not self.token_file.exists():
            self.token_file.write_text(secrets.token_hex(32))
            self.token_file.chmod(0o600)
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_file)}

    @property
    def temp_dir(self) -> Path:
        return self.root / "ray"

    def _launch(self, name: str, args: list[str], num_cpus: int) -> RayNode:
        log_file = self.root / f"{name}.log"
        resources = {name: 1.0}
        cmd = [
            _ray_cli(), "start", *args, "--block", "--node-ip-address=127.0.0.1",
            f"--num-cpus={num_cpus}", "--num-gpus=0", f"--resources={json.dumps(resources)}",
            "--disable-usage-stats", f"--object-store-memory={100 * 1024 * 1024}",
        ]
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
               **self.auth_env()}
        env.pop("RAY_AUTH_TOKEN", None)
        with open(log_file, "wb") as log:
            process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.root, env=env,
                preexec_fn=_die_with_parent(signal.SIGTERM),  # `ray start --block` then stops
            )
        node = RayNode(name=name, process=process, log_file=log_file, resources=resources)
        self.nodes[name] = node
        return node

    def _wait_for_head(self, head: RayNode, timeout_s: float) -> None:
        """Wait until the head's GCS port accepts connections (or the head process died)."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            if not head.alive:
                raise ServiceUnavailable(
                    f"ray head exited ({head.process.returncode}): {_tail(head.log_file, 10)}"
                )
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(1)
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.3)
        raise ServiceUnavailable(f"ray head did not listen on {self.address} in {timeout_s:.0f} s")

    def start(self, workers: int = 1, num_cpus: int = 1, timeout_s: float = 180) -> None:
        """Start the head and `workers` worker nodes; wait until all have joined."""
        t0 = time.perf_counter()
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        head = self._launch(
            "head",
            ["--head", f"--port={self.port}", "--include-dashboard=false",
             f"--temp-dir={self.temp_dir}"],
            num_cpus,
        )
        self._wait_for_head(head, timeout_s)
        for i in range(workers):
            self.add_worker(f"w{i + 1}", num_cpus=num_cpus)
        self._check_started(1 + workers)
        self.startup_s = time.perf_counter() - t0

    def add_worker(self, name: str, num_cpus: int = 1) -> RayNode:
        """Start one more worker node joining the head (does not wait for it to register)."""
        return self._launch(name, [f"--address={self.address}"], num_cpus)

    def wait_for_nodes(self, count: int, timeout_s: float = 120) -> int:
        """Block until the cluster reports at least `count` live nodes; return the live count.

        Asks from a short-lived driver process, so the calling process stays free of Ray state.
        """
        code = (
            "import sys, time, ray\n"
            f"ray.init(address='{self.address}', logging_level='ERROR', log_to_driver=False)\n"
            f"deadline = time.time() + {timeout_s}\n"
            "while True:\n"
            "    alive = sum(1 for n in ray.nodes() if n.get('Alive'))\n"
            f"    if alive >= {count} or time.time() > deadline:\n"
            "        break\n"
            "    time.sleep(0.3)\n"
            "print('ALIVE', alive)\n"
        )
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **self.auth_env()}
        env.pop("RAY_AUTH_TOKEN", None)
        try:
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True,
                timeout=timeout_s + 60, env=env, cwd=self.root,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServiceUnavailable(f"ray cluster at {self.address} did not answer") from exc
        for line in done.stdout.splitlines():
            if line.startswith("ALIVE "):
                return int(line.split()[1])
        raise ServiceUnavailable(
            f"could not connect to ray at {self.address}: {done.stderr.strip()[-600:]}"
        )

    def _check_started(self, count: int) -> None:
        for node in self.nodes.values():
            if not node.alive:
                raise ServiceUnavailable(
                    f"ray node {node.name} exited ({node.process.returncode}): "
                    f"{_tail(node.log_file, 10)}"
                )
        alive = self.wait_for_nodes(count)
        if alive < count:
            raise ServiceUnavailable(
                f"ray cluster reached only {alive} of {count} nodes; "
                f"head log: {_tail(self.nodes['head'].log_file, 10)}"
            )

    def stop(self) -> None:
        """SIGKILL every node process tree, then any process still using this cluster's temp dir."""
        for node in self.nodes.values():
            node.kill()
        marker = str(self.root)
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = " ".join(proc.info.get("cmdline") or [])
            if marker in cmdline and proc.pid != os.getpid():
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    proc.kill()


@contextlib.contextmanager
def running_ray_cluster(workers: int = 1, num_cpus: int = 1) -> Iterator[RayCluster]:
    """A local Ray cluster for the duration of the block, always torn down afterwards."""
    _ray_cli()
    root = Path(tempfile.mkdtemp(prefix="st-ray-"))  # short: Ray's unix sockets live under it
    cluster = RayCluster(root=root)
    try:
        cluster.start(workers=workers, num_cpus=num_cpus)
        yield cluster
    finally:
        cluster.stop()
        for _ in range(5):  # dying processes may still be writing logs for a moment
            shutil.rmtree(root, ignore_errors=True)
            if not root.exists():
                break
            time.sleep(1)


# --------------------------------------------------------------------------------------------
# pytest fixtures (tests/conftest.py imports these names)
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A local Ray cluster (head + 1 worker node, 1 CPU each) shared by the session, or skip.

    The cluster uses token authentication with its own token. While it runs, this process's
    environment says where that token is (RAY_AUTH_TOKEN_PATH), as a user's shell would; a
    driver turns token mode on with `sweeps.executors.ray.use_token_if_available()` (the Ray
    executor does so itself). The environment is restored afterwards.
    """
    try:
        with (
            running_ray_cluster(workers=1, num_cpus=1) as cluster,
            pytest.MonkeyPatch.context() as mp,
        ):
            mp.setenv("RAY_AUTH_TOKEN_PATH", cluster.auth_env()["RAY_AUTH_TOKEN_PATH"])
            mp.delenv("RAY_AUTH_TOKEN", raising=False)
            mp.delenv("RAY_AUTH_MODE", raising=False)
            yield cluster
    except ServiceUnavailable as exc:
        pytest.skip(f"Ray cluster unavailable: {exc}")
