"""Name -> class registries: how a config's ``kind`` or ``name`` finds its class.

Adding an SDE, a data set, a network, a loss, a sampler, a predictor, a corrector, a time grid
or an ODE integrator is adding one decorated class (or function); nothing else lists them. The
config declares each such key with ``Choice(REGISTRY.names)``, which asks the registry on every
use, so the new name is accepted by the config and offered by the GUI's combo boxes and the
command line at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from workbench.core.params import did_you_mean
from workbench.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered mapping from config names to classes.

    ``key`` is the config key that selects an entry (``"kind"`` or ``"name"``): lookup errors
    name it, so the message reads ``kind: unknown SDE 'vpp' (did you mean 'vp'?) ...``.
    """

    def __init__(self, what: str, key: str = "kind") -> None:
        self.what = what
        self.key = key
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(cls: T) -> T:
            if name in self._entries:
                raise RuntimeError(f"{self.what} {name!r} registered twice")
            self._entries[name] = cls
            cls.config_name = name  # type: ignore[attr-defined]
            return cls

        return add

    def unregister(self, name: str) -> None:
        """Forget ``name`` (a plug-in unloaded, a test's dummy removed); KeyError if absent."""
        del self._entries[name]

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            options = ", ".join(self._entries)
            hint = did_you_mean(name, self._entries) if isinstance(name, str) else ""
            raise ConfigError(
                self.key, f"unknown {self.what} {name!r}{hint}; choose one of: {options}"
            ) from None

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())
