"""Progress on a terminal: a bar that redraws in place on a TTY, plain lines elsewhere.

Logs and CI capture the output into files, where carriage-return bars become one enormous
line, and ``TERM=dumb`` terminals (Emacs shells, some IDE consoles) show the control codes
literally; there a plain line is printed every ``plain_interval`` seconds instead. On a real
terminal the bar is redrawn at most every ``min_interval`` seconds: a fast loop reporting
every step would otherwise spend its time writing to the terminal.

Whatever the rate limit skipped, the last state is shown by :meth:`TerminalProgress.close`,
and a state already shown is never printed again as a new line, so the final line (``train
500/500 ...``) appears exactly once however often the loop reports it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["TerminalProgress", "format_duration", "fancy_terminal"]


def format_duration(seconds: float) -> str:
    """h:mm:ss or m:ss."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = round(max(0.0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fancy_terminal(stream: TextIO) -> bool:
    """True where a bar may redraw in place: ``stream`` is a terminal that understands ``\\r``
    and ANSI codes (``TERM`` set and not ``dumb``)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False
    return tty and os.environ.get("TERM", "") not in ("", "dumb")


class TerminalProgress:
    """Shows ``step/total``, rate, ETA and named values such as the loss.

    ``enabled=False`` shows nothing (``--quiet``). ``clock`` is the time source of the rate
    limits (seconds, monotonic).
    """

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        *,
        width: int = 28,
        plain_interval: float = 5.0,
        min_interval: float = 0.1,
        tty: bool | None = None,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.plain_interval = plain_interval
        self.min_interval = min_interval
        self.tty = fancy_terminal(self.stream) if tty is None else tty
        self.enabled = enabled
        self._clock = clock
        self._last_draw = -float("inf")
        self._shown: tuple[int, int] | None = None  # (step, total) of the line last written
        self._pending: tuple[tuple[int, int], str] | None = None  # skipped by the rate limit
        self._drawn = False  # a TTY bar is on the line, waiting for its newline
        self._closed = False

    def _text(self, step: int, total: int, rate: float, values: dict[str, float]) -> str:
        frac = min(1.0, step / total) if total else 1.0
        eta = (total - step) / rate if rate > 0 else float("inf")
        shown = "  ".join(f"{k} {v:.4g}" for k, v in values.items())
        text = (
            f"{self.label} {step}/{total} {100 * frac:5.1f}%  {rate:,.1f} steps/s  "
            f"ETA {format_duration(eta)}  {shown}".rstrip()
        )
        if not self.tty:
            return text
        filled = round(frac * self.width)
        return f"[{'#' * filled}{'.' * (self.width - filled)}] {text}"

    def _draw(self, key: tuple[int, int], text: str) -> None:
        if self.tty:
            self.stream.write(f"\r{text}\x1b[K")
            self._drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._shown = key
        self._pending = None
        self._last_draw = self._clock()

    def update(self, step: int, total: int, rate: float, **values: float) -> None:
        if not self.enabled or self._closed:
            return
        key = (step, total)
        if key == self._shown:  # a report repeated (the last step, then "done")
            return
        text = self._text(step, total, rate, values)
        interval = self.min_interval if self.tty else self.plain_interval
        if step >= total or self._clock() - self._last_draw >= interval:
            self._draw(key, text)
        else:
            self._pending = (key, text)

    def close(self) -> None:
        """Show the last state if the rate limit held it back, end a TTY bar's line, and
        ignore later updates (a Ctrl-C message may follow, which a redraw would overwrite)."""
        if self._closed:
            return
        if self.enabled and self._pending is not None:
            self._draw(*self._pending)
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
        self._closed = True
