"""W&B run folders on disk -> plain Python data, through the wandb SDK's own reader.

A run folder (`wandb/offline-run-<time>-<id>/` or a synced `wandb/run-<time>-<id>/`) holds
`run-<id>.wandb`, the run's transaction log: a leveldb-style log of protobuf `Record`s. It is
read with the SDK's `wandb.sdk.internal.datastore.DataStore` (framing, checksums) and
`wandb.proto.wandb_internal_pb2.Record` (the records), never parsed by hand. The SDK's
reader ships with wandb < 0.30 (0.30 removed it); the files are the same for newer writers
(a 0.31-written log reads back with it), hence the `scaletrack[wandb]` extra's bound.

What a run yields (`WandbRun`): its id, project, entity, display name, tags, notes, start
time (seconds since the epoch), config and summary (the updates replayed in order), exit
code (None while it is still running), and its history: for every logged step (`_step`),
each numeric key's value and `_runtime` (seconds since the start). A log that ends in a
torn record (a run still being written) is read up to that record.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaletrack.errors import ConfigError, DataError
from scaletrack.store.importers import checks

WANDB_EXTRA = ("pip install 'scaletrack[wandb]' (wandb < 0.30: wandb 0.30 removed the SDK's "
               "transaction-log reader, wandb.sdk.internal.datastore)")


@dataclass
class WandbRun:
    """One run read from its transaction log (see the module docstring)."""

    path: Path
    run_id: str = ""
    project: str = ""
    entity: str = ""
    name: str = ""
    tags: tuple[str, ...] = ()
    notes: str = ""
    start_time: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    # history, one entry per logged row: (step, runtime seconds or None, {key: value})
    history: list[tuple[int, float | None, dict[str, Any]]] = field(default_factory=list)
    torn: bool = False  # the log ended in a partial record (still being written)


def _sdk() -> tuple[Any, Any]:
    import importlib

    try:
        datastore = importlib.import_module("wandb.sdk.internal.datastore")
        wandb_internal_pb2 = importlib.import_module("wandb.proto.wandb_internal_pb2")
    except ImportError:
        raise ConfigError(f"importing W&B runs needs the wandb SDK: {WANDB_EXTRA}") from None
    return datastore, wandb_internal_pb2


def find_run_logs(paths: Iterable[str | Path]) -> list[Path]:
    """The `.wandb` transaction logs named by `paths`: a `.wandb` file, a run folder, a
    `wandb/` folder of run folders, or a project folder holding `wandb/`; sorted, each once
    (the `latest-run` link is not a second run)."""
    found: dict[Path, None] = {}
    for item in paths:
        path = Path(item)
        kind = checks.special_kind(path)
        if not path.exists():
            raise DataError(f"W&B path {str(path)!r} does not exist")
        if kind is not None and kind != "a folder":
            raise DataError(f"W&B path {str(path)!r} is {kind}, not a run folder or .wandb file")
        if path.is_file():
            if path.suffix != ".wandb":
                raise DataError(f"{str(path)!r} is not a W&B transaction log (run-<id>.wandb)")
            found[path.resolve()] = None
            continue
        hits = sorted(path.glob("*.wandb")) or sorted(path.glob("*/*.wandb")) or sorted(
            path.glob("wandb/*/*.wandb"))
        hits = [h for h in hits if h.parent.name != "latest-run" and h.is_file()]
        if not hits:
            raise DataError(f"no W&B runs (run folders with a run-<id>.wandb file) in "
                            f"{str(path)!r}")
        for hit in hits:
            found[hit.resolve()] = None
    return sorted(found)


def _open(datastore: Any, path: Path) -> Any:
    """The SDK's DataStore opened for scanning `path` read-only (its own open_for_scan
    opens for writing too, which a read-only archive refuses)."""

    class ReadOnly(datastore.DataStore):  # type: ignore[misc]  # the SDK's class is untyped
        def open_for_scan(self, fname: str) -> None:  # same state as the SDK's, mode "rb"
            self._fname = fname
            self._fp = open(fname, "rb")  # noqa: SIM115 - closed by read_run
            self._index = 0
            self._size_bytes = os.stat(fname).st_size
            self._opened_for_scan = True
            self._read_header()

    store = ReadOnly()
    try:
        store.open_for_scan(str(path))
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    except Exception:  # the SDK asserts / raises on a bad header
        if store._fp is not None:
            store._fp.close()
        raise DataError(f"{path}: not a W&B transaction log (bad header)") from None
    return store


def _records(path: Path) -> Iterator[tuple[Any, bool]]:
    """(record, False) for each record; a final (None, True) when the log ends torn."""
    from google.protobuf.message import DecodeError

    datastore, pb = _sdk()
    store = _open(datastore, path)
    try:
        while True:
            at = store._index
            try:
                data = store.scan_data()
            except Exception as exc:  # AssertionError, struct.error: a partial or bad record
                if store.in_last_block():
                    yield None, True
                    return
                raise DataError(f"{path}: damaged record at byte {at:,} "
                                f"({str(exc).splitlines()[0] if str(exc) else 'bad framing'})"
                                ) from None
            if data is None:
                return
            record = pb.Record()
            try:
                record.ParseFromString(data)
            except DecodeError:
                raise DataError(f"{path}: damaged record at byte {at:,} (not a W&B record)") \
                    from None
            yield record, False
    finally:
        store._fp.close()


def _key(item: Any) -> str:
    return ".".join(item.nested_key) if len(item.nested_key) else item.key


def _keys(item: Any) -> tuple[str, ...]:
    return tuple(item.nested_key) if len(item.nested_key) else (item.key,)


def _apply_updates(raw: dict[tuple[str, ...], str], block: Any) -> None:
    """Replay a config or summary block onto `raw` (key path -> JSON text): decoding waits
    for the end, since W&B rewrites the summary at every logged step."""
    for item in block.update:
        raw[_keys(item)] = item.value_json
    for item in block.remove:
        gone = _keys(item)
        for keys in [k for k in raw if k[:len(gone)] == gone]:
            del raw[keys]


def _tree(raw: dict[tuple[str, ...], str], path: Path, what: str) -> dict[str, Any]:
    """The nested dict of a replayed config or summary, each value decoded and checked."""
    tree: dict[str, Any] = {}
    for keys, text in raw.items():
        value = checks.loads_value(text, f"{path}: {what} {'.'.join(keys)!r}")
        node = tree
        for k in keys[:-1]:
            child = node.get(k)
            if not isinstance(child, dict):
                child = node[k] = {}
            node = child
        node[keys[-1]] = value
    return tree


def read_run(path: str | Path) -> WandbRun:
    """Read one `.wandb` transaction log (see the module docstring); a one-line DataError
    naming the file on a damaged log, a bad value or a step beyond 64 bits."""
    path = checks.regular_file(path, "W&B transaction log")
    run = WandbRun(path=path)
    config: dict[tuple[str, ...], str] = {}
    summary: dict[tuple[str, ...], str] = {}
    seen_run = False
    for record, torn in _records(path):
        if torn:
            run.torn = True
            break
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            seen_run = True
            run.run_id, run.project, run.entity = r.run_id, r.project, r.entity
            run.name = r.display_name or run.name or r.run_id
            run.tags, run.notes = tuple(r.tags), r.notes
            if r.HasField("start_time"):
                run.start_time = r.start_time.seconds + r.start_time.nanos / 1e9
            _apply_updates(config, r.config)
            _apply_updates(summary, r.summary)
        elif kind == "config":
            _apply_updates(config, record.config)
        elif kind == "summary":
            _apply_updates(summary, record.summary)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                key = _key(item)
                row[key] = checks.loads_value(item.value_json, f"{path}: history {key!r}")
            raw_step = row.pop("_step", record.history.step.num)
            where = f"{path}: history _step"
            if isinstance(raw_step, float) and not math.isfinite(raw_step):
                raise DataError(f"{where}: {raw_step!r} is not a step")
            step = checks.whole(raw_step, where, required=True)
            runtime = checks.finite(row.pop("_runtime", None))
            row.pop("_timestamp", None)
            run.history.append((int(step or 0), runtime, row))
        elif kind == "exit":
            run.exit_code = int(record.exit.exit_code)
    if not seen_run:
        raise DataError(f"{path}: no run record (not a W&B run log, or empty)")
    run.config, run.summary = _tree(config, path, "config"), _tree(summary, path, "summary")
    return run
