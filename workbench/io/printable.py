"""Text from files made safe to show: control characters escaped, huge values shortened.

An HDF5 attribute (or a name) is whatever its writer put there: ``"\\x1b[2J"`` would clear the
terminal of whoever runs ``sde-workbench inspect``, a U+202E would reverse the text after it,
and a megabyte-long value would bury the rest. Everything the inspector shows of a file's
strings goes through :func:`printable` first.
"""

from __future__ import annotations

import unicodedata
from typing import Any

__all__ = ["MAX_SHOWN", "printable", "printable_tree"]

# Characters of a value shown before it is shortened.
MAX_SHOWN = 200

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Cc control, Cf format (bidi overrides, zero-width), Zl/Zp separators, Cs lone surrogates,
# Co private use, Cn unassigned: none prints as itself on every terminal.
_ESCAPED_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    if ch == "\\":
        return ch
    if unicodedata.category(ch) not in _ESCAPED_CATEGORIES:
        return ch
    code = ord(ch)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def printable(text: object, limit: int | None = MAX_SHOWN, *, keep_lines: bool = False) -> str:
    """``text`` with control and format characters written as escapes (``\\x1b``, ``\\n``,
    ``\\u202e``) and, beyond ``limit`` characters, cut to its start plus
    ``"… (N characters)"``, N the full length. ``keep_lines`` leaves newlines and tabs as they
    are (for a multi-line view such as a tooltip)."""
    text = str(text)
    shortened = limit is not None and len(text) > limit
    head = text[:limit] if shortened else text
    kept = ("\n", "\t") if keep_lines else ()
    out = "".join(ch if ch in kept else _escape(ch) for ch in head)
    return f"{out}… ({len(text):,} characters)" if shortened else out


def printable_tree(value: Any, limit: int | None = MAX_SHOWN) -> Any:
    """Every string in nested dicts and lists (keys too) through :func:`printable`."""
    if isinstance(value, str):
        return printable(value, limit)
    if isinstance(value, dict):
        return {printable_tree(k, limit): printable_tree(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable_tree(v, limit) for v in value]
    return value
