"""The store a Ray task sees: `HubStore` forwards the WorkerStore protocol's methods to the
sweep's hub actor (which holds the one real Store), and `HubMetricWriter` batches metric rows
to it. The forwarding methods are generated from the protocol, so a method added to
WorkerStore reaches the hub without a change here.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping
from typing import Any

import ray

from scaletrack.errors import ScaletrackError
from scaletrack.store.protocol import WorkerStore, store_methods

# Store methods a task may call through the hub: every method of the WorkerStore protocol
# except those HubStore implements itself (metric writers buffer in the task; close is local).
# A method added to WorkerStore is forwarded without a change here.
FORWARDED_METHODS = store_methods(WorkerStore) - {"metric_writer", "close"}


class HubMetricWriter:
    """MetricWriter stand-in: buffers rows and sends them to the hub in batches.

    `flush()` returns once every row logged so far is committed by the hub.
    """

    def __init__(self, hub: Any, run_key: str, batch_size: int, flush_interval_s: float) -> None:
        self._hub = hub
        self.run_key = run_key
        self._batch_size = max(1, int(batch_size))
        self._interval = float(flush_interval_s)
        self._rows: list[Any] = []
        self._pending: list[tuple[Any, int]] = []  # (hub call, rows in it) not yet confirmed
        self._last_send = time.monotonic()
        self._closed = False

    def log(self, name: str, step: int, value: float, *, tokens: int | None = None,
            wall_time: float | None = None) -> None:
        from scaletrack.store import MetricRow

        if self._closed:
            raise ScaletrackError(f"metric writer for run {self.run_key} is closed")
        self._rows.append(MetricRow(self.run_key, name, int(step), float(value), tokens,
                                    wall_time))
        self._maybe_send()

    def log_many(self, step: int, values: Mapping[str, float], *, tokens: int | None = None,
                 wall_time: float | None = None) -> None:
        for name, value in values.items():
            self.log(name, step, value, tokens=tokens, wall_time=wall_time)

    def _maybe_send(self) -> None:
        full = len(self._rows) >= self._batch_size
        if full or time.monotonic() - self._last_send >= self._interval:
            self._send()

    def _send(self) -> None:
        if self._rows:
            rows, self._rows = self._rows, []
            self._pending.append((self._hub.call.remote("write_metrics", (rows,), {}), len(rows)))
        self._last_send = time.monotonic()
        if self._pending:  # surface a failed batch early and forget committed ones
            refs = [ref for ref, _ in self._pending]
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            finished = set(done)
            self._pending = [(ref, n) for ref, n in self._pending if ref not in finished]
            ray.get(done)

    @property
    def pending(self) -> int:
        """Rows logged but not yet confirmed committed by the hub."""
        return len(self._rows) + sum(n for _, n in self._pending)

    def flush(self) -> None:
        self._send()
        pending, self._pending = self._pending, []
        ray.get([ref for ref, _ in pending])

    def close(self) -> None:
        if not self._closed:
            self.flush()
            self._closed = True

    def __enter__(self) -> HubMetricWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HubStore:
    """Store stand-in inside a Ray task: every `WorkerStore` call runs on the hub actor's Store.

    The forwarding methods (FORWARDED_METHODS) are generated from WorkerStore below the class;
    `metric_writer` and `close` are its own. Open metric writers are flushed before a checkpoint
    is registered or the run is finished, so a registered checkpoint never lacks the metrics
    logged before it.
    """

    def __init__(self, hub: Any, url: str) -> None:
        self._hub = hub
        self.url = url
        self._writers: list[HubMetricWriter] = []

    def metric_writer(self, run_key: str, *, batch_size: int = 1000,
                      flush_interval_s: float = 0.5) -> HubMetricWriter:
        writer = HubMetricWriter(self._hub, run_key, batch_size, flush_interval_s)
        self._writers.append(writer)
        return writer

    def _flush_writers(self) -> None:
        for writer in self._writers:
            if not writer._closed:
                writer.flush()

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if method in ("add_checkpoint", "finish_run", "release_run"):
            self._flush_writers()
        return ray.get(self._hub.call.remote(method, args, kwargs))

    def write_metrics(self, rows: Any, *, batch_size: int = 10_000) -> int:
        import pandas as pd

        if isinstance(rows, pd.DataFrame):
            from scaletrack.store import MetricRow

            rows = [MetricRow(**r) for r in rows.to_dict("records")]
        return int(self._call("write_metrics", list(rows), batch_size=batch_size))

    def close(self) -> None:
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    def __enter__(self) -> HubStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _forwarder(name: str) -> Any:
    """A HubStore method that runs `name` on the hub's Store (signature and doc from
    WorkerStore)."""

    def forward(self: HubStore, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    protocol_method = getattr(WorkerStore, name)
    forward.__name__ = forward.__qualname__ = name
    forward.__doc__ = protocol_method.__doc__
    forward.__signature__ = inspect.signature(protocol_method)  # type: ignore[attr-defined]
    return forward


for _name in sorted(FORWARDED_METHODS):
    if _name not in vars(HubStore):
        setattr(HubStore, _name, _forwarder(_name))
