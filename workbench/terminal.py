"""Progress on a terminal: a bar that redraws in place on a TTY, plain lines elsewhere.

Logs and CI capture stdout into files, where carriage-return bars become one enormous line;
there a line is printed every ``plain_interval`` seconds (and at the end) instead.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["TerminalProgress", "format_duration"]


def format_duration(seconds: float) -> str:
    """h:mm:ss or m:ss."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = round(max(0.0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class TerminalProgress:
    """Shows ``step/total``, rate, ETA and named values such as the loss."""

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        *,
        width: int = 28,
        plain_interval: float = 5.0,
        tty: bool | None = None,
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.plain_interval = plain_interval
        self.tty = self.stream.isatty() if tty is None else tty
        self._last_plain = -float("inf")
        self._drawn = False

    def update(self, step: int, total: int, rate: float, **values: float) -> None:
        frac = min(1.0, step / total) if total else 1.0
        eta = (total - step) / rate if rate > 0 else float("inf")
        shown = "  ".join(f"{k} {v:.4g}" for k, v in values.items())
        text = (
            f"{self.label} {step}/{total} {100 * frac:5.1f}%  {rate:,.1f} steps/s  "
            f"ETA {format_duration(eta)}  {shown}".rstrip()
        )
        if self.tty:
            filled = round(frac * self.width)
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r[{bar}] {text}\x1b[K")
            self.stream.flush()
            self._drawn = True
            return
        now = time.monotonic()
        if now - self._last_plain >= self.plain_interval or step >= total:
            self._last_plain = now
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
