"""User-facing errors.

A :class:`WorkbenchError` carries a one-line message that names what is wrong; the CLI prints it
without a traceback and exits 1, the GUI shows it at the field or in a dialog. Anything else that
escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


def one_line(text: object) -> str:
    """``str(text)`` on one line: its lines, stripped, joined by single spaces.

    Only line breaks (every kind ``str.splitlines`` knows, so a ``\\r`` or a ``\\u2028``
    cannot start a second line either) and the blanks around them are folded; spaces inside a
    line are kept, because a message quotes user values (a path, a key, an expression) that
    must read back exactly.
    """
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


class WorkbenchError(Exception):
    """An error caused by the user's input (config, file, expression), not by a bug."""


class ConfigError(WorkbenchError, ValueError):
    """A bad experiment setting; ``key`` is its dotted path, e.g. ``sde.beta_max``."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)

    def within(self, section: str) -> ConfigError:
        """The same error with ``section.`` put in front of its key."""
        return ConfigError(f"{section}.{self.key}" if self.key else section, self.message)


class ExpressionError(WorkbenchError, ValueError):
    """An expression that does not parse or uses something not allowed."""


class DataError(WorkbenchError):
    """A data set that cannot be loaded: missing, empty, wrong shape, non-finite."""
