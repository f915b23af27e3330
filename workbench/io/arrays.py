"""Reading data arrays from HDF5 files for the ``file`` data set (``[data] path = "x.h5"``).

Registered with :func:`workbench.core.data.register_array_reader` when ``workbench.io`` is
imported, so the data sets in ``core`` read HDF5 without ``core`` importing h5py.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from workbench.core.data import file_error, register_array_reader
from workbench.errors import DataError

__all__ = ["read_hdf5_array"]


def read_hdf5_array(path: Path, key: str | None) -> np.ndarray:
    """The dataset ``key`` of an HDF5 file (or its only dataset), for ``file`` data sets."""
    try:
        with h5py.File(path, "r") as f:
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
            obj = f.get(key)
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
            return np.asarray(obj[()])
    except DataError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise file_error(path, f"cannot be read as HDF5: {exc}") from None


register_array_reader((".h5", ".hdf5"), read_hdf5_array)
