"""The typed store seam: Store and the Ray hub's proxy both satisfy StoreLike."""

from __future__ import annotations

import inspect

import pytest

from scaletrack.store import Store, StoreLike
from scaletrack.store.protocol import store_methods


def test_store_satisfies_the_protocol(tmp_path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        assert isinstance(store, StoreLike)


@pytest.mark.parametrize("name", sorted(store_methods()))
def test_protocol_methods_match_the_store_signatures(name: str) -> None:
    declared = inspect.signature(getattr(StoreLike, name))
    actual = inspect.signature(getattr(Store, name))
    assert list(declared.parameters) == list(actual.parameters), name
    for param in declared.parameters.values():
        assert param.default == actual.parameters[param.name].default, (name, param.name)


def test_hub_proxy_forwards_exactly_the_protocol() -> None:
    pytest.importorskip("ray")
    from scaletrack.sweeps.executors.ray import FORWARDED_METHODS, HubStore

    assert store_methods() - {"metric_writer", "close"} == FORWARDED_METHODS
    proxy = HubStore(hub=None, url="sqlite:///x.db")
    assert isinstance(proxy, StoreLike)
    for name in FORWARDED_METHODS:
        assert inspect.signature(getattr(HubStore, name)).parameters.keys() == \
            inspect.signature(getattr(StoreLike, name)).parameters.keys(), name
