"""``sde-workbench --version``: the workbench's version and those of the libraries it runs on,
each said (never raised) when missing or broken, since a broken install is what the report is
for. Built only when asked, so the heavy imports stay lazy.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from workbench import __version__
from workbench.errors import one_line

__all__ = ["VersionAction", "version_report"]

PROG = "sde-workbench"


def _library_version(name: str, detail: Callable[[Any], str] | None = None) -> tuple[Any, str]:
    """The module ``name`` (None if it cannot be imported) and its version as a report line's
    text, with ``detail(module)`` in brackets; a missing or broken library is said, not raised."""
    import importlib

    try:
        module = importlib.import_module(name)
    except ImportError:
        return None, "not installed"
    except Exception as exc:  # a broken install is what the report is for: say how it breaks
        return None, f"cannot be imported ({type(exc).__name__}: {one_line(exc)})"
    text = str(getattr(module, "__version__", "(version unknown)"))
    if detail is not None:
        try:
            text += f" ({detail(module)})"
        except Exception as exc:
            text += f" ({type(exc).__name__}: {one_line(exc)})"
    return module, text


def _qt_version(_pyside: Any) -> str:
    # QtCore answers without a QApplication, so this needs no display
    from PySide6 import QtCore

    return f"Qt {QtCore.qVersion()}"


def _cuda_version(torch: Any) -> str:
    """The CUDA torch was built with and the devices it sees now."""
    built = torch.version.cuda
    if built is None:
        return "none (this torch is a CPU build)"
    if not torch.cuda.is_available():
        return f"{built}, no device available"
    n = torch.cuda.device_count()
    return f"{built}, {n} device{'s' if n != 1 else ''} available: {torch.cuda.get_device_name(0)}"


def version_report() -> str:
    """``sde-workbench --version``: the workbench's version on the first line, then one line per
    library it runs on (Python, torch, PySide6 and Qt, numpy, h5py and HDF5, CUDA): what a bug
    report needs."""
    import platform

    torch, torch_text = _library_version("torch")
    pyside, pyside_text = _library_version("PySide6", _qt_version)
    if pyside is None:
        pyside_text += " (the GUI needs it; the command line runs without)"
    lines = [
        f"{PROG} {__version__}",
        f"Python {platform.python_version()}",
        f"torch {torch_text}",
        f"PySide6 {pyside_text}",
        f"numpy {_library_version('numpy')[1]}",
        f"h5py {_library_version('h5py', lambda h5py: f'HDF5 {h5py.version.hdf5_version}')[1]}",
    ]
    if torch is None:
        lines.append("CUDA unknown (no torch)")
    else:
        try:
            lines.append(f"CUDA {_cuda_version(torch)}")
        except Exception as exc:
            lines.append(f"CUDA unknown ({type(exc).__name__}: {one_line(exc)})")
    return "\n".join(lines)


class VersionAction(argparse.Action):
    """``--version``: the report is built only when asked, so the heavy imports stay lazy."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        report = version_report()
        try:
            print(report, flush=True)
        except BrokenPipeError:  # ``--version | true``: nobody reads it, which is no error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        parser.exit()
