"""Reading data arrays from HDF5 files for the ``file`` data set (``[data] path = "x.h5"``).

Registered with :func:`workbench.core.data.register_array_reader` when ``workbench.io`` is
imported, so the data sets in ``core`` read HDF5 without ``core`` importing h5py.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from workbench.core.data import check_fits_in_memory, file_error, register_array_reader
from workbench.errors import DataError
from workbench.io.safety import external_references, open_beside, outside_folder

__all__ = ["read_hdf5_array"]


def read_hdf5_array(path: Path, key: str | None, allow_external: bool = False) -> np.ndarray:
    """The dataset ``key`` of an HDF5 file (or its only dataset), for ``file`` data sets.

    As for trajectory files, a file whose data lie outside its folder (an external link,
    external raw storage such as ``/etc/passwd``, a virtual dataset) is refused before
    anything is read, unless ``allow_external`` (``data.allow_external = true``); and the
    dataset's declared size must fit in the memory available before it is read.
    """
    try:
        with h5py.File(path, "r", locking=False) as f:
            if not allow_external:
                outside = outside_folder(external_references(f), path)
                if outside:
                    more = f" and {len(outside) - 1} more" if len(outside) > 1 else ""
                    raise file_error(
                        path,
                        f"refers to files outside its folder: {outside[0].describe()}{more}; "
                        "not read (set data.allow_external = true if you trust it)",
                    )
            datasets: list[str] = []
            f.visititems(
                lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None
            )
            if key is None:
                if not datasets:
                    raise file_error(path, "holds no datasets")
                if len(datasets) > 1:
                    raise file_error(
                        path,
                        f"holds several datasets ({', '.join(datasets)}); choose one with key = "
                        f'"{datasets[0]}"',
                    )
                key = datasets[0]
            # relative external raw files are read from beside the file, where the check looked
            obj = open_beside(f, key)
            if obj is None:
                raise file_error(
                    path,
                    f"has no dataset {key!r}; it holds: {', '.join(datasets) or 'nothing'}",
                )
            if not isinstance(obj, h5py.Dataset):
                raise file_error(
                    path,
                    f"{key!r} is a group, not a dataset; datasets: {', '.join(datasets) or 'none'}",
                )
            if obj.shape is None or obj.dtype.kind not in "biuf":
                raise file_error(
                    path, f"dataset {key!r} holds {obj.dtype} values, not real numbers"
                )
            check_fits_in_memory(path, obj.shape, obj.dtype)
            return np.asarray(obj[()])
    except (DataError, MemoryError):
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise file_error(path, f"cannot be read as HDF5: {exc}") from None


register_array_reader((".h5", ".hdf5"), read_hdf5_array)
