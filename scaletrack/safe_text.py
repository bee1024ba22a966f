"""Unsafe characters in text a person reads: one definition for every check and printout.

A character is *unsafe* when its Unicode category is

- Cc: the C0 controls (NUL, tab, newline, CR, ESC — which starts terminal escape sequences
  such as ESC[2J, clear the screen, or OSC 52, write the clipboard), DEL and the C1
  controls (U+0080-U+009F, among them CSI U+009B);
- Cf: invisible formatting — bidirectional overrides and isolates (U+202A-U+202E,
  U+2066-U+2069), zero-width space and joiners (U+200B-U+200D), the byte-order mark;
- Cs: lone surrogates, which no database encodes;
- Zl, Zp: the line and paragraph separators U+2028 and U+2029.

Checks that refuse text (metric and run names, imported text, grid-file strings that reach
a batch script) ask `first_unsafe`; everything printed to a terminal goes through `shown`,
which writes each unsafe character as its Python escape (`\\x1b`, `\\u202e`), so user text is
printed literally and never acts on the terminal.
"""

from __future__ import annotations

import unicodedata

UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
LINE_BREAKS = "\n\t"  # what `shown(..., keep=LINE_BREAKS)` leaves for multi-line text


def is_unsafe(char: str) -> bool:
    """Whether the one character `char` is unsafe (see the module's definition)."""
    return unicodedata.category(char) in UNSAFE_CATEGORIES


def first_unsafe(text: str) -> tuple[int, str] | None:
    """(index, character) of the first unsafe character in `text`, or None when there is
    none."""
    if text.isprintable():  # fast path: printable text holds no unsafe character
        return None
    for index, char in enumerate(text):
        if is_unsafe(char):
            return index, char
    return None


def code_point(char: str) -> str:
    """"U+001B" for ESC: how a refused character is named in a message."""
    return f"U+{ord(char):04X}"


def escaped(char: str) -> str:
    """The Python escape of one character: "\\x1b", "\\u202e", "\\n"."""
    return ascii(char)[1:-1]


def shown(text: object, *, keep: str = "") -> str:
    """`text` as it may be printed: every unsafe character escaped, except those in `keep`
    (pass `LINE_BREAKS` for multi-line text such as a program's stderr)."""
    value = str(text)
    if value.isprintable():
        return value
    return "".join(escaped(c) if c not in keep and is_unsafe(c) else c for c in value)
