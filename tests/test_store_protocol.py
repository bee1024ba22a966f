"""The typed store seams: Store satisfies every role protocol and StoreLike; the Ray hub's proxy
forwards exactly WorkerStore; workers call nothing outside WorkerStore."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from scaletrack.store import Store, StoreLike, WorkerStore
from scaletrack.store import protocol as roles
from scaletrack.store.protocol import store_methods

REPO = Path(__file__).resolve().parents[1]
# The code that runs inside a worker holding runs: executors, the trainers, command cells and
# the tracking API's Run (attach.py opens the whole Store).
WORKER_MODULES = ("sweeps/executors/__init__.py", "sweeps/train.py", "sweeps/multi.py",
                  "sweeps/command.py", "scaletrack/tracking/run.py")
ROLES = (roles.ClaimStore, roles.MetricSink, roles.CheckpointLog, roles.WorkerStore,
         roles.RunCatalog, roles.MetricReader, roles.EvalCatalog, roles.IdeaStore,
         roles.FitStore, roles.SlurmTaskLog, roles.RunPages, roles.ImportSink, StoreLike)


def test_store_satisfies_the_protocol(tmp_path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        assert isinstance(store, StoreLike)
        for role in ROLES:
            assert isinstance(store, role), role.__name__


def test_full_protocol_is_the_union_of_the_roles() -> None:
    parts = [store_methods(r) for r in ROLES if r not in (StoreLike, WorkerStore)]
    assert store_methods() == frozenset().union(*parts) | {"close"}
    for i, a in enumerate(parts):  # every method in exactly one role
        for b in parts[i + 1:]:
            assert not a & b, a & b
    # every public method of the facade is declared in some role (schema_version: for tests
    # and migrations, like the engine)
    public = {n for n, v in inspect.getmembers(Store, inspect.isfunction)
              if not n.startswith("_")} - {"schema_version"}
    assert public == store_methods(), public ^ store_methods()


@pytest.mark.parametrize("name", sorted(store_methods()))
def test_protocol_methods_match_the_store_signatures(name: str) -> None:
    declared = inspect.signature(getattr(StoreLike, name))
    actual = inspect.signature(getattr(Store, name))
    assert list(declared.parameters) == list(actual.parameters), name
    for param in declared.parameters.values():
        assert param.default == actual.parameters[param.name].default, (name, param.name)


def test_worker_role_holds_claims_metrics_and_checkpoints() -> None:
    worker = store_methods(WorkerStore)
    assert {"claim_run", "take_over_run", "claim_generation", "adopt_claim", "heartbeat",
            "finish_run", "release_run", "metric_writer", "write_metrics", "add_checkpoint",
            "latest_checkpoints", "add_eval"} <= worker
    assert not worker & {"ideas", "runs", "metrics", "save_fit", "delete_idea", "tag"}
    assert {"delete_idea", "take_over_run", "claim_generation", "adopt_claim",
            "cached_fit"} <= store_methods()


def _store_calls(path: Path) -> set[str]:
    """Methods called on a variable or attribute named like a store in one module."""
    names = {"store", "_store", "st"}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            owner_name = (owner.id if isinstance(owner, ast.Name) else
                          owner.attr if isinstance(owner, ast.Attribute) else None)
            if owner_name in names:
                found.add(node.func.attr)
    return found


@pytest.mark.parametrize("module", WORKER_MODULES)
def test_workers_call_only_the_worker_role(module: str) -> None:
    called = _store_calls(REPO / module)
    assert called, module  # the scan sees the module's store calls
    assert called <= store_methods(WorkerStore), sorted(called - store_methods(WorkerStore))


def test_hub_proxy_forwards_exactly_the_worker_protocol() -> None:
    pytest.importorskip("ray")
    from scaletrack.sweeps.executors.ray_store import FORWARDED_METHODS, HubStore

    assert store_methods(WorkerStore) - {"metric_writer", "close"} == FORWARDED_METHODS
    assert "take_over_run" in FORWARDED_METHODS and "ideas" not in FORWARDED_METHODS
    proxy = HubStore(hub=None, url="sqlite:///x.db")
    assert isinstance(proxy, WorkerStore)
    assert not hasattr(proxy, "ideas")
    for name in FORWARDED_METHODS:
        assert inspect.signature(getattr(HubStore, name)).parameters.keys() == \
            inspect.signature(getattr(WorkerStore, name)).parameters.keys(), name
