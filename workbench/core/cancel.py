"""The cancel flag that long work in core polls between steps.

A flag is None (never cancelled), a callable returning True once the work should stop (what
the CLI and the GUI's workers pass), or an object with ``is_set()`` (a ``threading.Event``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_cancelled"]


def is_cancelled(cancel: Any) -> bool:
    """Whether ``cancel`` asks the work to stop now."""
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())
