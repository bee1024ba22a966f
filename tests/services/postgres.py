"""A throw-away PostgreSQL server (initdb as an unprivileged user, loopback only), fixtures."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.common import (
    ServiceUnavailable,
    _die_with_parent,
    _tail,
    free_port,
    kill_process_tree,
)

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
