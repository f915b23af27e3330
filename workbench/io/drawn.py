"""Writing a drawn data set: an .npy file the ``file`` data set reads back unchanged.

The points are stored as float64, shape (n,) for a 1-D drawing and (n, 2) for a 2-D one
(the shapes :class:`~workbench.core.data.FileData` reads as 1-D and 2-D data), so the values
loaded for training are the very values drawn. The file is written to a temporary beside it
and moved into place (:func:`~workbench.io.paths.replace_into`): a reader sees no file or the
whole file, and an existing file is replaced only when the caller says so.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

from workbench.errors import WorkbenchError
from workbench.io.paths import check_destination, replace_into

__all__ = ["free_name", "write_drawn"]


def free_name(path: str | os.PathLike[str]) -> Path:
    """``path`` if nothing is there, else the first free ``stem-2.suffix``, ``stem-3``, ..."""
    path = Path(path)
    if not os.path.lexists(path):
        return path
    for k in range(2, 100_000):
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
        if not os.path.lexists(candidate):
            return candidate
    raise WorkbenchError(f"no free file name like {path} in {path.parent}")


def write_drawn(
    path: str | os.PathLike[str], points: np.ndarray, *, overwrite: bool = False
) -> Path:
    """Write ``points`` ((n, 1) or (n, 2)) to the .npy file ``path``; the path written.

    WorkbenchError (one line) for a path that is not an .npy, a destination that may not be
    written (an existing file without ``overwrite``, a directory, a link, a device) or a
    failed write; the old file, if any, is then unchanged.
    """
    dest = check_destination(
        path, overwrite, force_hint="choose another name, or agree to replace it"
    )
    if dest.suffix.lower() != ".npy":
        raise WorkbenchError(f"{dest}: a drawing is saved as .npy; give a name ending in .npy")
    values = np.asarray(points, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] not in (1, 2):
        raise WorkbenchError(f"a drawing has shape (n, 1) or (n, 2), not {values.shape}")
    array = values[:, 0].copy() if values.shape[1] == 1 else np.ascontiguousarray(values)
    tmp: Path | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        tmp = Path(name)
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600: a data file is an ordinary document
        replace_into(tmp, dest, overwrite, force_hint="choose another name")
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise WorkbenchError(f"could not write {dest}: {exc.strerror or exc}") from None
    return dest
