"""Real services for tests: a throw-away PostgreSQL server, a local multi-node Ray cluster,
a one-node Slurm cluster and a headless Chromium.

Each lives in a fresh directory under the system temp dir and is stopped by process id (never by
name), so tests can run beside other PostgreSQL or Ray processes on the same machine.

A helper that cannot start its service raises `ServiceUnavailable` with the reason; fixtures turn
that into `pytest.skip(reason)` so a missing service is reported, never passed silently.
Each service has its own module here; tests import them from this package.
"""

from services.browser import (
    CHROMIUM_FLAGS,
    another_chromium,
    chromium,
    ensure_chromium,
    running_chromium,
)
from services.common import ServiceUnavailable, free_port, kill_process_tree
from services.postgres import (
    PostgresServer,
    find_postgres_bin_dir,
    postgres_db_url,
    postgres_server,
    postgres_url,
    running_postgres,
)
from services.ray import RayCluster, ray_cluster, running_ray_cluster
from services.slurm import SlurmCluster, running_slurm, slurm_cluster

__all__ = [
    "CHROMIUM_FLAGS",
    "PostgresServer",
    "RayCluster",
    "ServiceUnavailable",
    "another_chromium",
    "chromium",
    "ensure_chromium",
    "SlurmCluster",
    "find_postgres_bin_dir",
    "free_port",
    "kill_process_tree",
    "postgres_db_url",
    "postgres_server",
    "postgres_url",
    "ray_cluster",
    "running_chromium",
    "running_postgres",
    "running_ray_cluster",
    "running_slurm",
    "slurm_cluster",
]
