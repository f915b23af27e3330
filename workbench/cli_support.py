"""The command line's conventions that are not commands: option choices read from the
registries, and output under ``--quiet`` and ``--json``.

Light on purpose (argparse, no torch): :mod:`workbench.cli` imports it before parsing, and
``sde-workbench --help`` must answer at once; each registry is imported when its choices are
first needed.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

__all__ = [
    "Choices",
    "ChoiceParser",
    "PRESET_CHOICES",
    "SAMPLER_CHOICES",
    "FORMAT_CHOICES",
    "DEVICE_CHOICES",
    "JSON_HELP",
    "QUIET_HELP",
    "choice_actions",
    "json_option",
    "wants_json",
    "quiet",
    "info",
    "progress_bar",
    "fraction_progress",
    "plain_json",
    "print_json",
]


# ---------------------------------------------------------------------------------------------
# choices
# ---------------------------------------------------------------------------------------------
class Choices:
    """The valid values of an option, read from the registry that defines them when first
    needed: the registries live beside torch, and ``sde-workbench --help`` should answer at
    once (a command's own ``--help`` lists them, so it loads them).

    ``accepts`` decides membership for values that follow a pattern beyond the listed forms
    (``cuda:N``); argparse only asks ``in`` and iterates for its messages.
    """

    def __init__(
        self, names: Callable[[], Iterable[str]], accepts: Callable[[str], bool] | None = None
    ) -> None:
        self._load = names
        self._accepts = accepts

    def names(self) -> tuple[str, ...]:
        # asked each time, not kept: an entry registered later (a plug-in) is a choice too
        return tuple(self._load())

    def __contains__(self, value: object) -> bool:
        if self._accepts is not None:
            return isinstance(value, str) and self._accepts(value)
        return value in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


def _preset_names() -> list[str]:
    from workbench.presets import preset_names

    return preset_names()


def _sampler_names() -> list[str]:
    from workbench.core.samplers import SAMPLERS

    return SAMPLERS.names()


def _export_formats() -> tuple[str, ...]:
    from workbench.io.export import FORMATS

    return FORMATS


def _device_forms() -> tuple[str, ...]:
    from workbench.config import Device

    return Device.FORMS


def _is_device(text: str) -> bool:
    from workbench.config import Device

    try:
        Device()(text)
    except ValueError:
        return False
    return True


PRESET_CHOICES = Choices(_preset_names)
SAMPLER_CHOICES = Choices(_sampler_names)
FORMAT_CHOICES = Choices(_export_formats)
DEVICE_CHOICES = Choices(_device_forms, accepts=_is_device)


class ChoiceParser(argparse.ArgumentParser):
    """argparse's parser, whose "invalid choice" message also suggests the nearest choice."""

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            from workbench.core.params import did_you_mean

            if not isinstance(value, str) or action.choices is None:
                raise
            hint = did_you_mean(value, [str(c) for c in action.choices])
            if not hint:
                raise
            raise argparse.ArgumentError(action, f"{exc.message}{hint}") from None


def choice_actions(parser: argparse.ArgumentParser) -> Iterator[tuple[list[str], argparse.Action]]:
    """Every option of ``parser`` and of its commands whose values are a closed list, with the
    words before it (``["sample"]`` for ``sample --sampler``; ``[]`` for the command itself)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield [], action
            for name, sub in action.choices.items():
                for words, inner in choice_actions(sub):
                    yield [name, *words], inner
        elif action.choices is not None:
            yield [], action


# ---------------------------------------------------------------------------------------------
# output: --quiet and --json
# ---------------------------------------------------------------------------------------------
QUIET_HELP = (
    "no progress or informational lines; errors, warnings and the output asked for "
    "(nll's figures, inspect, --json) still print"
)


JSON_HELP = (
    "print the result as one JSON object on stdout, progress staying on stderr; on failure "
    'exit 1 with the reason on stderr and {"ok": false, "error": REASON} on stdout'
)


def json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def quiet(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "quiet", False))


def info(args: argparse.Namespace, text: str) -> None:
    """An informational line on stdout (what was written, a note): not with --quiet, and not
    with --json, whose stdout holds the JSON object alone."""
    if not (quiet(args) or wants_json(args)):
        print(text)


def progress_bar(args: argparse.Namespace, label: str) -> Any:
    """The command's progress bar on stderr, silent with --quiet."""
    from workbench.terminal import TerminalProgress

    return TerminalProgress(label, enabled=not quiet(args))


def fraction_progress(bar: Any) -> Callable[[float], None]:
    """A ``progress(fraction)`` callback that drives ``bar`` in thousandths, with a rate."""
    import time

    start = time.perf_counter()

    def progress(fraction: float) -> None:
        done = int(1000 * fraction)
        elapsed = time.perf_counter() - start
        bar.update(done, 1000, done / elapsed if elapsed > 0 else 0.0)

    return progress


def plain_json(value: Any) -> Any:
    """``value`` with JSON's types only: paths as text, arrays and tuples as lists, and a
    non-finite number as null (JSON has no NaN; a strict reader would refuse the file)."""
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return plain_json(value.tolist())
    return str(value)


def print_json(result: Mapping[str, Any]) -> None:
    import json

    print(json.dumps(plain_json(result), indent=2, allow_nan=False))
