"""checkpoint.pt: model, EMA, optimiser, step, RNG state, the experiment config, and what the
model means of its data (``data``: the normaliser and a fingerprint of the training data).

A checkpoint holds only tensors, numbers, strings and containers of them, so it loads with
``torch.load(weights_only=True)``: a file from elsewhere that smuggles pickled objects (which
could run code on load) is refused, never executed. Writes are atomic: the new file is written
beside the old one, flushed to disk, then renamed over it, so a crash leaves either the old
checkpoint or the new one, never a torn one.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from workbench.errors import WorkbenchError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "load_checkpoint",
    "load_weights_only",
    "save_atomically",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "sde-workbench/checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` (plus the format marker) to ``path`` atomically."""
    payload = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, **state}
    return save_atomically(payload, path, "checkpoint")


def save_atomically(payload: dict[str, Any], path: str | os.PathLike[str], what: str) -> Path:
    """``torch.save`` ``payload`` to ``path`` atomically (a temporary beside it, flushed to
    disk, renamed over it); a failed write is a one-line error naming ``what`` and leaves the
    previous file as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        Path(tmp).unlink(missing_ok=True)
        # torch's zip writer turns a failed write (a full disk) into a RuntimeError of its own
        # when it closes; the OSError it hides is in the exception's context
        cause = _os_error_in(exc)
        if cause is None:
            raise
        raise WorkbenchError(
            f"could not write {what} {path}: {cause.strerror or cause}; the previous "
            f"{what}, if any, is unchanged"
        ) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _os_error_in(exc: BaseException | None) -> OSError | None:
    """The first OSError among ``exc`` and the exceptions it was raised from or during."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint safely; every failure is a one-line :class:`WorkbenchError`."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.exists():
        raise WorkbenchError(f"no checkpoint at {path}")
    state = load_versioned(path, "checkpoint", CHECKPOINT_FORMAT, CHECKPOINT_VERSION)
    _check_layout(state, path)
    return state


def load_versioned(path: Path, what: str, fmt: str, newest: int) -> dict[str, Any]:
    """The dict saved at ``path`` (an existing path) as an SDE Workbench ``what`` of format
    ``fmt``, at a format version from 1 to ``newest``: a checkpoint or a snapshot. Every
    failure is one line naming the file: not a regular file, unreadable or pickled code
    (:func:`load_weights_only`), another format, a version that is not a count, or one newer
    than this version of SDE Workbench reads."""
    if not path.is_file():  # a FIFO or a device would block the loader
        raise WorkbenchError(f"{path} is not a regular file")
    state = load_weights_only(path, what)
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise WorkbenchError(f"{path} is not an SDE Workbench {what}")
    version = state.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise WorkbenchError(f"{path} is damaged: its format_version {version!r} is not a count")
    if version > newest:
        raise WorkbenchError(
            f"{path} has {what} format version {version!r}; this version of SDE Workbench "
            f"reads up to {newest}; please update"
        )
    return state


def load_weights_only(path: Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a file that smuggles a pickled
    object, or a damaged one, is a one-line :class:`WorkbenchError` naming ``what``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's weights-only unpickler names the global it blocked; anything else it
        # cannot parse is damage, not an attack.
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found is None:
            raise WorkbenchError(
                f"{path} is not a readable {what} (corrupt or truncated)"
            ) from None
        raise WorkbenchError(
            f"refused to load {path}: it holds a pickled Python object ({found.group(1)}), "
            "which could run code when loaded; only tensors, numbers and strings are accepted"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WorkbenchError(
            f"{path} is not a readable {what} (corrupt or truncated): {reason}"
        ) from None
    except (TypeError, IndexError, KeyError, AttributeError, OverflowError) as exc:
        # the weights-only unpickler meets flipped bits in the pickle stream as a wrong number
        # of arguments or an empty stack (found by the fuzz): damage, not a bug of ours
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        raise WorkbenchError(
            f"{path} is not a readable {what} (corrupt or truncated): {reason}"
        ) from None


def _check_layout(state: dict[str, Any], path: Path) -> None:
    """The parts a trainer restores have the types it expects: a damaged or hand-made file is
    a clear error here rather than a TypeError deep inside torch."""
    for key in ("model", "ema"):
        part = state.get(key)
        if part is None:
            continue
        if not isinstance(part, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in part.items()
        ):
            raise WorkbenchError(f"{path} is damaged: its {key!r} is not a map of named tensors")
    if "data" in state and not isinstance(state["data"], dict):
        raise WorkbenchError(f"{path} is damaged: its stored data description is not a map")
    if "optimizer" in state and not isinstance(state["optimizer"], dict):
        raise WorkbenchError(f"{path} is damaged: its 'optimizer' state is not a map")
    if "generator" in state and not isinstance(state["generator"], torch.Tensor):
        raise WorkbenchError(f"{path} is damaged: its random-generator state is not a tensor")
    step = state.get("step", 0)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise WorkbenchError(f"{path} is damaged: its step {step!r} is not a count")
    wall = state.get("wall_time", 0.0)
    if isinstance(wall, bool) or not isinstance(wall, (int, float)):
        raise WorkbenchError(f"{path} is damaged: its wall_time {wall!r} is not a number")
