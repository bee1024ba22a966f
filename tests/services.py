"""Real services for tests: a throw-away PostgreSQL server and a local multi-node Ray cluster.

Both live in a fresh directory under the system temp dir and are stopped by process id (never by
name), so tests can run beside other PostgreSQL or Ray processes on the same machine.

A helper that cannot start its service raises `ServiceUnavailable` with the reason; fixtures turn
that into `pytest.skip(reason)` so a missing service is reported, never passed silently.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest


class ServiceUnavailable(RuntimeError):
    """A test service could not be found, installed or started; the message says why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def kill_process_tree(pid: int, *, pgid: int | None = None) -> None:
    """SIGKILL `pid`, every descendant of it and (if given) its process group; no error if gone.

    The group is frozen (SIGSTOP) first, so nothing in it runs on while the tree is listed:
    a node "dies" at the moment of the call, as a machine would.
    """
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGSTOP)
    procs: list[psutil.Process] = []
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        pass
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)


def _die_with_parent(sig: int) -> Callable[[], None]:
    """A preexec_fn: the child gets `sig` when the process that started it dies (Linux)."""

    def arm() -> None:
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(sig))  # PR_SET_PDEATHSIG

    return arm


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

_PG_TOOLS = ("initdb", "pg_ctl", "postgres")


def find_postgres_bin_dir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres (newest version first), or None.

    Looks on PATH, in /usr/lib/postgresql/*/bin (Debian/Ubuntu) and in /usr/local/bin.
    """
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)

    def version_key(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key, reverse=True):
        candidates.append(Path(found))
    candidates.append(Path("/usr/local/bin"))
    for directory in candidates:
        tools = [directory / tool for tool in _PG_TOOLS]
        if all(t.exists() for t in tools):
            return tools[0].resolve().parent
    return None


def install_postgres() -> None:
    """Install Debian's `postgresql` package with apt-get; raises ServiceUnavailable on failure."""
    if os.geteuid() != 0:
        raise ServiceUnavailable("PostgreSQL is not installed and we are not root to apt-get it")
    if shutil.which("apt-get") is None:
        raise ServiceUnavailable("PostgreSQL is not installed and apt-get is absent")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise ServiceUnavailable(f"`{' '.join(cmd)}` failed: {' | '.join(last)}")


def ensure_postgres_bin_dir() -> Path:
    """Find the PostgreSQL server binaries, installing the Debian package when they are absent."""
    found = find_postgres_bin_dir()
    if found is None:
        install_postgres()
        found = find_postgres_bin_dir()
    if found is None:
        raise ServiceUnavailable("apt-get installed postgresql but no initdb/pg_ctl/postgres found")
    return found


def _server_account() -> pwd.struct_passwd | None:
    """The account to run the server as: None when not root, else an unprivileged user.

    PostgreSQL refuses to run as root. Uses the `postgres` account when present, otherwise
    creates a system user `scaletrack-pg`.
    """
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "scaletrack-pg"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
         "scaletrack-pg"],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam("scaletrack-pg")


@dataclass
class PostgresServer:
    """A private PostgreSQL cluster on 127.0.0.1 (trust auth, fsync off: tests only).

    Use `start()` / `stop()` or the `running_postgres()` context manager.
    """

    root: Path
    bin_dir: Path
    port: int = 0
    superuser: str = "scaletrack"
    account: pwd.struct_passwd | None = None
    startup_s: float | None = None
    process: subprocess.Popen | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver) for `database` on this server."""
        return f"postgresql+psycopg://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def _run(self, args: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess:
        kwargs: dict = {}
        if self.account is not None:
            kwargs = {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        try:
            return subprocess.run(
                list(args), capture_output=True, text=True, timeout=timeout, cwd=self.root,
                env=env, **kwargs,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServiceUnavailable(f"cannot run {Path(args[0]).name}: {exc}") from exc

    def start(self) -> None:
        """initdb, then start the server and wait until it accepts connections."""
        t0 = time.perf_counter()
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self.account is not None:
            for path in (self.root, self.socket_dir):
                os.chown(path, self.account.pw_uid, self.account.pw_gid)
        init = self._run(
            [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.superuser,
             "--auth=trust", "--encoding=UTF8", "--no-sync"]
        )
        if init.returncode != 0:
            raise ServiceUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
        last_error = ""
        for _ in range(3):  # a free port can be taken between picking and binding it
            self.port = free_port()
            self.process = self._spawn_server()
            error = self._wait_ready(timeout_s=60)
            if error is None:
                self.startup_s = time.perf_counter() - t0
                return
            last_error = error
            self.stop()
        raise ServiceUnavailable(f"PostgreSQL server did not start: {last_error[-800:]}")

    def _spawn_server(self) -> subprocess.Popen:
        """The postmaster as our child; it gets SIGQUIT (immediate stop) if this process dies."""
        cmd = [
            str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
            "-h", "127.0.0.1", "-k", str(self.socket_dir), "-F",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=200", "-c", "shared_buffers=32MB",
        ]
        kwargs: dict = {}
        if self.account is not None:
            kwargs = {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        with open(self.log_file, "ab") as log:
            try:
                return subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=self.root, env=env, start_new_session=True,
                    preexec_fn=_die_with_parent(signal.SIGQUIT), **kwargs,
                )
            except OSError as exc:
                raise ServiceUnavailable(f"cannot run postgres: {exc}") from exc

    def _wait_ready(self, timeout_s: float) -> str | None:
        """None once the server accepts connections, else why it did not."""
        import psycopg

        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return f"postgres exited: {_tail(self.log_file)}"
            try:
                with psycopg.connect(host="127.0.0.1", port=self.port, user=self.superuser,
                                     dbname="postgres", connect_timeout=5):
                    return None
            except psycopg.OperationalError as exc:
                last = str(exc).strip()
            time.sleep(0.1)
        return f"not accepting connections after {timeout_s:.0f} s ({last}): {_tail(self.log_file)}"

    def stop(self) -> None:
        """Stop the server immediately (SIGQUIT; the data is throw-away)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill_process_tree(process.pid, pgid=process.pid)
            process.wait(timeout=10)

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run one statement in autocommit mode (CREATE/DROP DATABASE need it)."""
        import psycopg

        conninfo = f"host=127.0.0.1 port={self.port} user={self.superuser} dbname={database}"
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh empty database and return its SQLAlchemy URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting anyone still connected to it."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the duration of the block (ServiceUnavailable if none)."""
    bin_dir = ensure_postgres_bin_dir()
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise ServiceUnavailable(
            "psycopg is not installed: pip install 'scaletrack[postgres]'"
        ) from exc
    root = Path(tempfile.mkdtemp(prefix="scaletrack-pg-"))
    server = PostgresServer(root=root, bin_dir=bin_dir, account=_server_account())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Ray
# --------------------------------------------------------------------------------------------


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
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the whole test session, or skip with the reason."""
    try:
        with running_postgres() as server:
            yield server
    except ServiceUnavailable as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of one database shared by the session (`postgresql+psycopg://...`)."""
    return postgres_server.create_database("scaletrack_session")


@pytest.fixture
def postgres_db_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh, empty database for one test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


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
