"""Checkpoints as one weights-only safetensors file, with sha256 verification.

A file holds tensors under prefixes ``model/`` (the state dict), ``optim/<param index>/<key>``
(optimizer state), and ``rng/<name>`` (generator states as uint8 tensors), plus one JSON
string in the safetensors header metadata (key ``scaletrack``) with the model config,
optimizer hyper-parameters and anything else the training loop needs to resume exactly.
Nothing is pickled, so loading can never run code. Files in PyTorch's format (``.pt``,
``.pth``, ``.bin``) are read only with ``torch.load(weights_only=True)``; a payload that
needs unpickling of arbitrary objects is refused with a DataError.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from scaletrack.errors import DataError
from scaletrack.models.build import build_model
from scaletrack.references import load_callable

if TYPE_CHECKING:
    from scaletrack.store import CheckpointRecord

FORMAT_VERSION = 1
_META_KEY = "scaletrack"
# A safetensors JSON header larger than this is refused unread (a real one is ~100 bytes a
# tensor: 16 MiB is 150,000 tensors; parsing a hostile 100 MB header would take gigabytes).
MAX_HEADER_BYTES = 16 * 2**20
MESSAGE_CHARS = 200  # longest piece of a reader's own error text repeated in a message
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
                "U8": 1, "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def _short(text: object, limit: int = MESSAGE_CHARS) -> str:
    """The first line of `text`, at most `limit` characters (a reader may echo a huge header)."""
    lines = str(text).strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def check_safetensors_header(path: str | Path, memory_budget: float | None = None) -> int:
    """Validate a safetensors file's header before anything is allocated; return the bytes its
    tensors take. The header must fit in the file and under MAX_HEADER_BYTES, every tensor's
    byte range must lie in the file and match its dtype and shape, and the total must fit in
    `memory_budget` bytes (default: the memory available now). Raises DataError (one line)."""
    p = Path(path)
    size = p.stat().st_size
    with open(p, "rb") as fh:
        first = fh.read(8)
        if len(first) < 8:
            raise DataError(f"checkpoint {p} is not a safetensors file: {size} bytes, no header")
        header_len = int.from_bytes(first, "little")
        if header_len > size - 8:
            raise DataError(f"checkpoint {p} is not a readable safetensors file: its header "
                            f"claims {header_len:,} bytes in a file of {size:,} bytes")
        if header_len > MAX_HEADER_BYTES:
            raise DataError(f"checkpoint {p}: its safetensors header claims {header_len:,} "
                            f"bytes, over the {MAX_HEADER_BYTES // 2**20} MiB limit")
        try:
            header = json.loads(fh.read(header_len))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"checkpoint {p} has a malformed safetensors header: "
                            f"{_short(exc)}") from None
    if not isinstance(header, dict):
        raise DataError(f"checkpoint {p} has a malformed safetensors header (not an object)")
    data_bytes = size - 8 - header_len
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = (int(x) for x in info["data_offsets"])
            count = math.prod(int(d) for d in info["shape"])
            width = _DTYPE_BYTES.get(str(info["dtype"]))
        except (KeyError, TypeError, ValueError):
            raise DataError(f"checkpoint {p} has a malformed safetensors entry for tensor "
                            f"{_short(name, 60)!r}") from None
        if not 0 <= begin <= end <= data_bytes or (
                width is not None and (end - begin) != count * width):
            raise DataError(f"checkpoint {p}: tensor {_short(name, 60)!r} claims bytes "
                            f"{begin:,}-{end:,}, outside the file's {data_bytes:,} data bytes "
                            "or not its dtype x shape")
        total += end - begin
    if memory_budget is None:
        import psutil

        memory_budget = float(psutil.virtual_memory().available)
    if total > memory_budget:
        raise DataError(f"checkpoint {p} holds {total / 2**30:.3g} GiB of tensors, more than "
                        f"the {memory_budget / 2**30:.3g} GiB of memory available")
    return total


@dataclass(frozen=True)
class TrainingState:
    """What a checkpoint file holds, split back into its parts."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None  # ready for Optimizer.load_state_dict
    rng: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, or of a directory's files (relative names and bytes, in
    sorted order), so a checkpoint saved as a folder is verified as one thing.

    A file or folder that changes while it is hashed (a file vanishes, appears, grows or is
    rewritten) or cannot be read is a one-line DataError: its hash would name no fixed bytes.
    """
    path = Path(path)
    digest = hashlib.sha256()
    try:
        if path.is_dir():
            files = _folder_files(path)
            for file in files:
                digest.update(file.relative_to(path).as_posix().encode() + b"\0")
                _hash_into(digest, file)
            if _folder_files(path) != files:
                raise _Changed("files were added or removed")
        else:
            _hash_into(digest, path)
    except _Changed as changed:
        raise DataError(f"checkpoint {path} changed while it was hashed ({changed.args[0]}); "
                        "register it once it is complete") from None
    except FileNotFoundError as exc:
        gone = exc.filename or "a file"
        raise DataError(f"checkpoint {path} changed while it was hashed ({gone} vanished); "
                        "register it once it is complete") from None
    except OSError as exc:
        raise DataError(f"checkpoint {path} cannot be read: {exc.filename or path}: "
                        f"{exc.strerror or exc}") from None
    return digest.hexdigest()


class _Changed(Exception):
    """The checkpoint changed while it was hashed (the argument says how)."""


def _folder_files(folder: Path) -> list[Path]:
    """The regular files under `folder`, sorted (symlinks to files followed)."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _hash_into(digest: Any, path: Path) -> None:
    with path.open("rb") as fh:
        before = os.fstat(fh.fileno())
        size = 0
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
        after = os.fstat(fh.fileno())
    if (size != after.st_size or (before.st_size, before.st_mtime_ns)
            != (after.st_size, after.st_mtime_ns)):
        raise _Changed(f"{path} was written")


def verify_sha256(path: str | Path, expected: str | None) -> None:
    """Raise DataError if the file is missing or its sha256 differs from ``expected``."""
    if not Path(path).is_file():
        raise DataError(f"checkpoint file {path} does not exist")
    if expected is not None:
        actual = file_sha256(path)
        if actual != expected:
            raise DataError(
                f"checkpoint {path} is corrupt: sha256 {actual[:12]}... "
                f"!= recorded {expected[:12]}..."
            )


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    rng: Mapping[str, torch.Tensor] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> str:
    """Write the checkpoint atomically (temp file + rename); return its sha256."""
    tensors: dict[str, torch.Tensor] = {}
    for name, t in model.state_dict().items():
        tensors[f"model/{name}"] = t.detach().to("cpu").contiguous().clone()
    header: dict[str, Any] = {"format": FORMAT_VERSION, "meta": dict(meta or {})}
    if optimizer is not None:
        state = optimizer.state_dict()
        for idx, pstate in state["state"].items():
            for key, value in pstate.items():
                if not isinstance(value, torch.Tensor):
                    value = torch.tensor(value)
                tensors[f"optim/{idx}/{key}"] = value.detach().to("cpu").contiguous().clone()
        header["optim_groups"] = state["param_groups"]
    for name, t in (rng or {}).items():
        tensors[f"rng/{name}"] = t.detach().to("cpu").contiguous().clone()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(header)})
    os.replace(tmp, path)
    return file_sha256(path)


def load_checkpoint(path: str | Path, sha256: str | None = None) -> TrainingState:
    """Read a checkpoint written by :func:`save_checkpoint`, verifying ``sha256`` if given."""
    verify_sha256(path, sha256)
    check_safetensors_header(path)
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            header = json.loads((fh.metadata() or {}).get(_META_KEY, "{}"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"checkpoint {path} is not a readable safetensors file: "
                        f"{_short(exc)}") from None
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng/")}
    optimizer = None
    if "optim_groups" in header:
        state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("optim/"):
                _, idx, key = k.split("/", 2)
                state.setdefault(int(idx), {})[key] = v
        optimizer = {"state": state, "param_groups": header["optim_groups"]}
    return TrainingState(model=model, optimizer=optimizer, rng=rng, meta=header.get("meta", {}))


def read_state_dict(path: str | Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Model weights from a safetensors file or a PyTorch file loaded with weights_only=True."""
    verify_sha256(path, sha256)
    p = Path(path)
    if p.suffix == ".safetensors":
        state = load_checkpoint(p).model
        if state:
            return state
        return load_file(str(p))  # a plain safetensors state dict without our prefixes
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise DataError(
            f"refusing checkpoint {p}: it holds a pickled payload that is not plain tensors "
            f"(loaded with weights_only=True)"
        ) from exc
    except (RuntimeError, OSError, EOFError) as exc:
        raise DataError(f"checkpoint {p} is not a readable PyTorch file: {_short(exc)}") from None
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError(f"checkpoint {p} does not hold a state dict of tensors")
    return dict(obj)


def load_checkpoint_model(ckpt: CheckpointRecord, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the module a checkpoint record describes and load its verified weights.

    ``ckpt.loader`` "gpt"/"lstm" rebuilds from ``ckpt.meta["model"]``; "module:function" imports
    the function and returns ``function(ckpt)``. The sha256 is checked before anything is read.
    """
    loader = ckpt.loader
    if loader in ("gpt", "lstm"):
        shape = (ckpt.meta or {}).get("model")
        if not isinstance(shape, Mapping):
            raise DataError(f"checkpoint {ckpt.path} has no model config in its meta")
        state = read_state_dict(ckpt.path, ckpt.sha256)
        model = build_model(loader, shape)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise DataError(
                f"checkpoint {ckpt.path} does not fit its {loader} config: {_short(exc)}"
            ) from None
        return model.to(device).eval()
    if loader and ":" in loader:
        verify_sha256(ckpt.path, ckpt.sha256)
        return load_callable(loader, "checkpoint loader")(ckpt)
    raise DataError(f"checkpoint {ckpt.path} has no usable loader ({loader!r})")
