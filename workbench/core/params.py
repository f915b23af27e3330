"""Declared parameters of registered classes.

Every SDE, data set (and later network, loss, sampler) declares the settings it takes as a tuple
of :class:`Param`. The experiment config validates a TOML section against that declaration, so a
new class brings its own keys, defaults, allowed ranges and messages with it: there is no list of
keys to keep in step elsewhere.

A check is a callable that returns the normalised value or raises ``ValueError`` with a message
saying what is allowed (the caller adds the key).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import ConfigError

__all__ = [
    "Param",
    "Float",
    "Int",
    "Choice",
    "Bool",
    "Text",
    "FloatArray",
    "validate_params",
    "did_you_mean",
]


def _show(value: Any) -> str:
    """repr(value), shortened: a message stays one readable line whatever was typed."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Float:
    """A finite real number in an interval; integers are accepted and widened."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return "a number" + (" " + " and ".join(parts) if parts else "")

    def __call__(self, value: Any) -> float:
        if not _is_number(value):
            raise ValueError(f"must be {self.describe()}, got {_show(value)}")
        try:
            value = float(value)
        except OverflowError:
            raise ValueError(f"must be {self.describe()}, got {_show(value)}") from None
        ok = math.isfinite(value)
        if ok and self.low is not None:
            ok = value > self.low if self.low_open else value >= self.low
        if ok and self.high is not None:
            ok = value < self.high if self.high_open else value <= self.high
        if not ok:
            raise ValueError(f"must be {self.describe()}, got {_show(value)}")
        return value


@dataclass(frozen=True)
class Int:
    """An integer in a closed interval (floats such as 3.0 are refused: a typo is likelier)."""

    low: int | None = None
    high: int | None = None

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"an integer from {self.low} to {self.high}"
        if self.low is not None:
            return f"an integer >= {self.low}"
        if self.high is not None:
            return f"an integer <= {self.high}"
        return "an integer"

    def __call__(self, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"must be {self.describe()}, got {_show(value)}")
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise ValueError(f"must be {self.describe()}, got {_show(value)}")
        return value


@dataclass(frozen=True)
class Choice:
    """One of a set of strings: a fixed tuple, or a callable giving the current names.

    A callable (``Choice(SDES.names)``) is asked on every use, so a class registered after the
    declaration was made (a plug-in, a test's dummy) is a choice in the config, the GUI's combo
    boxes and the command line at once.
    """

    source: tuple[str, ...] | Callable[[], Iterable[str]]

    @property
    def options(self) -> tuple[str, ...]:
        source = self.source
        return tuple(source()) if callable(source) else tuple(source)

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)

    def __call__(self, value: Any) -> str:
        options = self.options
        if not isinstance(value, str) or value not in options:
            hint = did_you_mean(value, options) if isinstance(value, str) else ""
            raise ValueError(f"must be {self.describe()}, got {_show(value)}{hint}")
        return value


@dataclass(frozen=True)
class Bool:
    def describe(self) -> str:
        return "true or false"

    def __call__(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {_show(value)}")
        return value


@dataclass(frozen=True)
class Text:
    """A string; ``nonempty`` refuses "" and blanks."""

    nonempty: bool = True

    def describe(self) -> str:
        return "a non-empty string" if self.nonempty else "a string"

    def __call__(self, value: Any) -> str:
        if not isinstance(value, str) or (self.nonempty and not value.strip()):
            raise ValueError(f"must be {self.describe()}, got {_show(value)}")
        return value


@dataclass(frozen=True)
class FloatArray:
    """A nested list of finite numbers with ``ndim`` levels, stored as nested tuples.

    Tuples keep configs hashable and comparable, so ``load(save(c)) == c`` holds exactly.
    """

    ndim: int
    positive: bool = False

    def describe(self) -> str:
        kind = "positive numbers" if self.positive else "numbers"
        if self.ndim == 1:
            return f"a list of {kind}"
        return f"a {self.ndim}-level nested list of {kind}"

    def __call__(self, value: Any) -> tuple:
        def walk(v: Any, depth: int) -> Any:
            if depth == 0:
                if not _is_number(v) or abs(v) > 1e308 or not math.isfinite(float(v)):
                    raise ValueError
                if self.positive and float(v) <= 0:
                    raise ValueError
                return float(v)
            if not isinstance(v, (list, tuple)) or len(v) == 0:
                raise ValueError
            return tuple(walk(item, depth - 1) for item in v)

        try:
            out = walk(value, self.ndim)
        except ValueError:
            raise ValueError(f"must be {self.describe()}, got {_show(value)}") from None
        if self.ndim >= 2:
            lengths = {len(row) for row in out}
            if len(lengths) != 1:
                raise ValueError(
                    f"rows must all have the same length, got lengths {sorted(lengths)}"
                )
        return out


@dataclass(frozen=True)
class Param:
    """One setting: its key, the check that normalises it, its default and a line of help.

    ``default=None`` means the key is optional and absent unless given.
    """

    name: str
    check: Callable[[Any], Any]
    default: Any = None
    help: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def describe(self) -> str:
        describe = getattr(self.check, "describe", None)
        return describe() if describe else "a valid value"


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close option exists, else ``""``."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def validate_params(
    params: Iterable[Param], given: Mapping[str, Any], *, what: str = ""
) -> dict[str, Any]:
    """Check ``given`` against the declared ``params``; returns every key with its value.

    Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` naming the key.
    Optional keys left out are absent from the result rather than ``None``.
    """
    declared = {p.name: p for p in params}
    for key in given:
        if key not in declared:
            allowed = ", ".join(declared) or "none"
            where = f" for {what}" if what else ""
            raise ConfigError(
                key,
                f"unknown key{where}{did_you_mean(key, declared)}; allowed keys: {allowed}",
            )
    out: dict[str, Any] = {}
    for name, param in declared.items():
        if name in given:
            try:
                out[name] = param.check(given[name])
            except ValueError as exc:
                raise ConfigError(name, str(exc)) from None
        elif param.default is not None:
            out[name] = param.default
    return out
