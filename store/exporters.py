"""Exports: runs, metrics, evals and fits as CSV, parquet (pyarrow) or JSON lines.

`export_frame` returns the table (the Store's DataFrames, filtered to a sweep and/or a tag);
`write_frame` writes it (format from the extension unless given; atomically: a temporary
file in the target folder renamed over the target). Nested values (a run's config, a fit's
payload) are JSON text in CSV and parquet, and tags a list (joined with ";" in CSV); JSON
lines keep them nested.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pandas as pd

from scaletrack.errors import ConfigError, DataError, one_line
from scaletrack.json_values import plain_json

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

TABLES = ("runs", "metrics", "evals", "fits")
FORMATS = ("csv", "parquet", "jsonl")
_NESTED = ("config", "payload", "meta", "spec")


def export_frame(store: StoreLike, table: str, *, sweep: str | None = None,
                 tag: str | None = None) -> pd.DataFrame:
    """The `table` (runs | metrics | evals | fits) of the runs of `sweep` carrying `tag`."""
    if table not in TABLES:
        raise ConfigError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
    filtered = sweep is not None or tag is not None
    runs = store.runs(sweep=sweep, tag=tag)
    if table == "runs":
        return runs
    keys = list(runs["run_key"])
    if table == "metrics":
        return store.metrics(run_keys=keys) if filtered else store.metrics()
    if table == "evals":
        evals = store.evals()
        return evals[evals["run_key"].isin(keys)].reset_index(drop=True) if filtered else evals
    fits = store.fits()
    if sweep is not None:
        fits = fits[fits["sweep"] == sweep].reset_index(drop=True)
    return fits


def _flat(frame: pd.DataFrame, list_sep: str | None) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if col in _NESTED:
            out[col] = out[col].map(lambda v: None if v is None else json.dumps(v,
                                                                               sort_keys=True))
        elif col == "tags" and list_sep is not None:
            out[col] = out[col].map(lambda v: list_sep.join(v) if v is not None else "")
        elif col == "tags":
            out[col] = out[col].map(lambda v: list(v) if v is not None else [])
    return out


EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
              ".ndjson": "jsonl"}


def infer_format(path: str | Path, fmt: str | None) -> str:
    """The format to write: `fmt` when given (it must agree with a known extension of
    `path`), else the one `path`'s extension names; an unknown extension is a ConfigError."""
    suffix = Path(path).suffix.lower()
    named = EXTENSIONS.get(suffix)
    if fmt is not None:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        if named is not None and named != fmt:
            raise ConfigError(f"--format {fmt} but {Path(path).name!r} names {named}; drop "
                              "--format or change the extension")
        return fmt
    if named is None:
        raise ConfigError(f"cannot tell the format of {Path(path).name!r} from its extension "
                          f"{suffix or '(none)'!r}: use .csv, .parquet or .jsonl, or --format")
    return named


def check_target(path: str | Path) -> Path:
    """Where to write: symlinks followed; an existing target must be a regular file, and its
    folder must exist."""
    from scaletrack.store.importers.checks import special_kind

    path = Path(path)
    real = Path(os.path.realpath(path))
    kind = special_kind(real)
    if kind is not None:
        raise DataError(f"cannot export to {str(path)!r}: it is {kind}")
    if not real.parent.is_dir():
        raise DataError(f"folder {str(path.parent)!r} does not exist")
    return real


def write_frame(frame: pd.DataFrame, path: str | Path, fmt: str | None = None) -> Path:
    """Write `frame` as csv, parquet or jsonl (`fmt`, else from the extension); returns the
    path. The file is written to a temporary file in the same folder, flushed to disk and
    renamed over the target, so a failed export (a full disk, a killed process) leaves any
    previous file as it was. FIFOs, folders and devices are refused."""
    path = Path(path)
    fmt = infer_format(path, fmt)
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError("parquet needs pyarrow: pip install 'scaletrack[parquet]'") \
                from None

    def write(fh: BinaryIO) -> None:
        if fmt == "csv":
            _flat(frame, ";").to_csv(fh, index=False)
        elif fmt == "parquet":
            _flat(frame, None).to_parquet(fh, index=False)
        else:  # json.dumps writes the shortest repr that reads back to the same float64
            for record in frame.to_dict(orient="records"):
                fh.write((json.dumps({k: plain_json(v) for k, v in record.items()},
                                     default=str) + "\n").encode("utf-8"))

    write_atomically(path, write)
    return path


def write_atomically(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call `write(file)` on a temporary file in `path`'s folder, flush it to disk and rename
    it over `path` (symlinks followed): a failure (a full disk, an exception, a kill) leaves
    any previous file as it was and no temporary file behind. A `path` that is a folder, a
    FIFO or a device is refused with a DataError before anything is written."""
    path = Path(path)
    real = check_target(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
    except OSError as exc:
        raise DataError(f"cannot write {str(path)!r}: cannot create a file in "
                        f"{str(real.parent)!r} ({exc.strerror})") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        mode = real.stat().st_mode & 0o777 if real.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot write {str(path)!r}: {exc.strerror or one_line(exc)}; "
                        "any previous file is unchanged") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
