"""A fingerprint of the analysis code, for caches of analysis results kept in a store.

A result cached by one version of the fitting or classification code must never be read
back by another: a development checkout between releases keeps the same version string, so
cache keys carry a hash of the analysis package's source files as well.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path


@functools.cache
def analysis_code_version() -> str:
    """32 hex characters: a BLAKE2b hash of every `.py` file under scaletrack.analysis
    (relative path and bytes), computed once per process."""
    import scaletrack.analysis

    h = hashlib.blake2b(digest_size=16)
    for folder in scaletrack.analysis.__path__:
        for path in sorted(Path(folder).rglob("*.py")):
            h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()
