"""MetricWriter: log metrics without blocking the training step on the database.

`log` appends to an in-memory buffer; a background thread writes full batches (one
transaction each), plus whatever is buffered every `flush_interval_s`, on flush() and on close().
A process killed mid-run therefore loses at most the unwritten rows and never half a batch.
"""

from __future__ import annotations

import atexit
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from scaletrack.store.errors import ClaimLost, StoreError
from scaletrack.store.metric_values import to_float
from scaletrack.store.metrics_io import MetricItem


class MetricValueWarning(UserWarning):
    """A logged metric value was refused (the key and step are named); the rest were kept."""

BatchSink = Callable[[list[MetricItem]], None]


class MetricWriter:
    """Buffered, batched metric logging for one run (use as a context manager or close())."""

    def __init__(
        self, sink: BatchSink, run_key: str, *, batch_size: int = 1000,
        flush_interval_s: float = 0.5,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.run_key = run_key
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._sink = sink
        self._buffer: list[MetricItem] = []
        self._cond = threading.Condition()
        self._logged = 0  # rows appended so far
        self._done = 0  # rows the thread has finished with (written or failed)
        self._flush_wanted = 0  # write everything up to this row count, even a partial batch
        self._error: BaseException | None = None
        self.unreadable: dict[str, int] = {}  # metric name -> values that could not be read
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name=f"scaletrack-metrics-{run_key}", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    # ------------------------------------------------------------------ logging (caller thread)
    def log(
        self, name: str, step: int, value: float, *, tokens: int | None = None,
        wall_time: float | None = None,
    ) -> None:
        """Buffer one value of metric `name` at `step` (tokens seen, wall_time in seconds)."""
        with self._cond:
            if self._closed:
                raise StoreError(f"metric writer for run {self.run_key} is closed")
            if isinstance(self._error, ClaimLost):  # stop the caller at once: nothing is kept
                raise self._error
            self._buffer.append((name, step, value, tokens, wall_time))
            self._logged += 1
            if len(self._buffer) == self.batch_size:
                self._cond.notify()

    def log_many(
        self, step: int, values: Mapping[str, float], *, tokens: int | None = None,
        wall_time: float | None = None,
    ) -> None:
        """Buffer several metrics logged at the same step."""
        with self._cond:
            if self._closed:
                raise StoreError(f"metric writer for run {self.run_key} is closed")
            if isinstance(self._error, ClaimLost):  # stop the caller at once: nothing is kept
                raise self._error
            rows = [(n, step, v, tokens, wall_time) for n, v in values.items()]
            before = len(self._buffer)
            self._buffer += rows
            self._logged += len(rows)
            if before < self.batch_size <= before + len(rows):
                self._cond.notify()

    def flush(self) -> None:
        """Block until every row logged so far is committed; re-raise a writer error."""
        with self._cond:
            target = self._logged
            self._flush_wanted = max(self._flush_wanted, target)
            self._cond.notify_all()
            while self._done < target and self._thread.is_alive():
                self._cond.wait(0.1)
            error, self._error = self._error, None
        if isinstance(error, StoreError):  # already one line naming the store (or ClaimLost)
            raise error
        if error is not None:
            raise StoreError(
                f"writing metrics of run {self.run_key} failed: {error}"
            ) from error

    def close(self) -> None:
        """Flush, stop the background thread. Idempotent."""
        with self._cond:
            if self._closed:
                return
        try:
            self.flush()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._thread.join()
            atexit.unregister(self.close)

    @property
    def pending(self) -> int:
        """Rows logged but not yet written."""
        with self._cond:
            return self._logged - self._done

    def __enter__(self) -> MetricWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ background thread
    def _take(self) -> list[MetricItem] | None:
        """Wait for work; return rows to write, or None to stop."""
        with self._cond:
            while True:
                buffered = len(self._buffer)
                flush_now = self._flush_wanted > self._done or self._closed
                if buffered and flush_now:
                    rows, self._buffer = self._buffer, []
                    return rows
                if buffered >= self.batch_size:
                    whole = buffered - buffered % self.batch_size
                    rows, self._buffer = self._buffer[:whole], self._buffer[whole:]
                    return rows
                if self._closed:
                    return None
                if not self._cond.wait(self.flush_interval_s) and self._buffer:
                    rows, self._buffer = self._buffer, []  # interval elapsed: write what we have
                    return rows

    def _as_floats(self, rows: list[MetricItem]) -> list[MetricItem]:
        """Rows with float values (a 0-d tensor is read off its device here, not in the
        training step). A value that cannot be read is dropped alone, with a warning; the
        rest of the batch is written."""
        out: list[MetricItem] = []
        for row in rows:
            value = row[2]
            if type(value) is not float:
                try:
                    value = to_float(value)
                except Exception as exc:  # noqa: BLE001 - one bad value never costs the batch
                    self.unreadable[row[0]] = self.unreadable.get(row[0], 0) + 1
                    if self.unreadable[row[0]] == 1:
                        warnings.warn(f"scaletrack: run {self.run_key}: value of {row[0]!r} "
                                      f"at step {row[1]} could not be read "
                                      f"({type(exc).__name__}); it was dropped (later ones of "
                                      "this name are counted in .unreadable, not repeated)",
                                      MetricValueWarning, stacklevel=1)
                    continue
            out.append((row[0], row[1], value, row[3], row[4]))
        return out

    def _run(self) -> None:
        while True:
            rows = self._take()
            if rows is None:
                return
            taken = len(rows)
            rows = self._as_floats(rows)
            try:
                self._sink(rows)
            except BaseException as exc:  # keep the thread alive; flush() re-raises
                with self._cond:
                    self._error = exc
            with self._cond:
                self._done += taken
                self._cond.notify_all()
