"""A griffe extension for this site: docstrings written for `help()` read right as Markdown.

The code's docstrings are plain text with Markdown code spans. One thing in them reads as
Markdown syntax by accident: an indexing expression such as `SCREEN[0][1]` outside a code span
is a reference link to Markdown (and to mkdocs-autorefs, which then reports a missing
target). This extension puts such expressions in code spans; it changes nothing else, and
nothing in the code (only the copy griffe loaded for this site).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

# a name followed by two or more bracket groups: the shape of a Markdown reference link
_INDEXING = re.compile(r"(?<![\w`])(\w+(?:\[[^\]\s`]*\]){2,})")
_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)


def escape_indexing(text: str) -> str:
    """`text` with indexing expressions outside code spans and fences made code spans."""
    parts = _CODE.split(text)
    return "".join(part if part.startswith("`") else _INDEXING.sub(r"`\1`", part)
                   for part in parts)


class EscapeIndexing(griffe.Extension):
    """Apply `escape_indexing` to every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = escape_indexing(obj.docstring.value)
