"""Training snapshots: ``RUN/snapshots/step-NNNNNNN.pt``, the EMA weights at chosen steps.

``train.snapshot_every`` > 0 keeps one every that many steps, so that the run's history can be
replayed (the GUI's training-step slider re-samples each one). A snapshot is small: the EMA
weights and the step, without the raw weights, the optimiser's moments (twice the weights
again for Adam) or the random state, so about a quarter of ``checkpoint.pt``. It is not a
point to resume from; ``checkpoint.pt`` is. Written atomically and read with
``torch.load(weights_only=True)``, like the checkpoint (:mod:`workbench.io.checkpoints`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from workbench.errors import WorkbenchError
from workbench.io.checkpoints import load_versioned, save_atomically

__all__ = [
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_VERSION",
    "list_snapshots",
    "load_snapshot",
    "save_snapshot",
    "snapshot_path",
    "snapshots_dir",
]

SNAPSHOT_FORMAT = "sde-workbench/snapshot"
SNAPSHOT_VERSION = 1

# seven digits sort as numbers up to ten million steps; a longer step still parses
_NAME = re.compile(r"^step-(\d+)\.pt$")


def snapshots_dir(run: str | os.PathLike[str]) -> Path:
    return Path(run) / "snapshots"


def snapshot_path(run: str | os.PathLike[str], step: int) -> Path:
    return snapshots_dir(run) / f"step-{int(step):07d}.pt"


def save_snapshot(run: str | os.PathLike[str], step: int, ema: dict[str, torch.Tensor]) -> Path:
    """Write the EMA weights ``ema`` of step ``step`` into ``run``'s snapshots, atomically.

    The tensors are copied to the CPU first, so a file written from a CUDA run loads anywhere.
    """
    payload: dict[str, Any] = {
        "format": SNAPSHOT_FORMAT,
        "format_version": SNAPSHOT_VERSION,
        "step": int(step),
        "ema": {k: v.detach().to("cpu", copy=True) for k, v in ema.items()},
    }
    return save_atomically(payload, snapshot_path(run, step), "snapshot")


def list_snapshots(run: str | os.PathLike[str]) -> list[int]:
    """The steps of the run's snapshots, ascending; [] when it has none. Files whose names
    are not ``step-N.pt`` (temporaries being written, a user's notes) are not snapshots."""
    where = snapshots_dir(run)
    try:
        names = os.listdir(where)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise WorkbenchError(f"cannot list {where}: {exc.strerror or exc}") from None
    steps = set()
    for name in names:
        found = _NAME.match(name)
        if found is not None and (where / name).is_file():
            steps.add(int(found.group(1)))
    return sorted(steps)


def load_snapshot(run: str | os.PathLike[str], step: int) -> dict[str, torch.Tensor]:
    """The EMA weights of the run's snapshot at ``step``; a missing, damaged or foreign file is
    one line naming it (a :class:`WorkbenchError`)."""
    path = snapshot_path(run, step)
    if not path.exists():
        raise WorkbenchError(f"no snapshot at step {step}: {path} does not exist")
    state = load_versioned(path, "snapshot", SNAPSHOT_FORMAT, SNAPSHOT_VERSION)
    if state.get("step") != int(step):
        raise WorkbenchError(
            f"{path} is damaged: it says step {state.get('step')!r}, its name step {step}"
        )
    ema = state.get("ema")
    if not isinstance(ema, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in ema.items()
    ):
        raise WorkbenchError(f"{path} is damaged: its 'ema' is not a map of named tensors")
    return ema
