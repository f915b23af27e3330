"""Reading the array of a ``file`` data set: .npy, .npz and .csv here, HDF5 through a reader
``workbench.io`` registers (:func:`register_array_reader`), so that ``core`` never imports h5py.

Every path goes through the same checks before anything is allocated: it must be a regular
file (a FIFO would block, ``/dev/zero`` never ends; :mod:`workbench.guards`), and the array it
declares (an .npy header, an .npz member, an HDF5 dataset's shape) must fit both in the bytes
the file holds and in the memory available, so that a damaged or crafted header claiming
(10**12, 2) values is a one-line DataError, not a 16 TB allocation. numpy reads with
``allow_pickle=False``: a data file never runs code.
"""

from __future__ import annotations

import math
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import DataError
from workbench.guards import available_memory, check_regular_file, format_bytes

__all__ = [
    "ARRAY_READERS",
    "FILE_EXTENSIONS",
    "ArrayReader",
    "check_fits_in_memory",
    "file_error",
    "load_array",
    "register_array_reader",
]

FILE_EXTENSIONS = (".npy", ".npz", ".csv", ".h5", ".hdf5")
_EXPECTED_SHAPES = "expected an array of shape (n,), (n, d), (n, h, w) or (n, h, w, c)"


# Points are drawn in float32 for training; beyond this a value becomes inf. Below it the
# float64 statistics of the normalisation cannot overflow either: sum((x - mean)^2) is at most
# n (2 * 3.4e38)^2 ~ 5e77 n, far from float64's 1.8e308 for any n that fits in memory.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_range(values: np.ndarray, path: Path) -> None:
    """Refuse values that training (float32) or the normalisation cannot represent."""
    if values.dtype != np.float64 or values.size == 0:
        return  # float32 (or converted from integers) cannot exceed the float32 range
    largest = max(float(values.max()), -float(values.min()))
    if largest > _FLOAT32_MAX:
        raise file_error(
            path,
            f"has values as large as {largest:.3g}, beyond the float32 range (3.4e38) training "
            "works in: the standardisation would overflow; rescale the data",
        )


def file_error(path: Path, problem: str) -> DataError:
    """The one-line DataError naming a data file and its problem."""
    return DataError(f"data file {str(path)!r}: {' '.join(problem.split())}")


def load_array(
    path: str | Path, key: str | None = None, *, allow_external: bool = False
) -> np.ndarray:
    """Reads the numeric array of a data file; DataError (one line, naming the file) if not.

    Checks that it is a regular file (a FIFO, a device or a directory is refused before it is
    opened), its format, the key, that the declared array fits in the memory available (before
    anything is allocated), numeric dtype, emptiness and finiteness; the shape is interpreted
    by the ``file`` data set. ``allow_external``: an HDF5 file may refer to data in files
    outside its folder (refused by default).
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    check_regular_file(path, error=lambda problem: file_error(path, problem))
    if suffix not in FILE_EXTENSIONS:
        raise file_error(
            path,
            f"unknown extension {suffix or '(none)'!r}; use one of {', '.join(FILE_EXTENSIONS)}",
        )
    reader = ARRAY_READERS.get(suffix)
    if reader is None:
        # HDF5 belongs to workbench.io, which registers its reader when imported
        raise file_error(
            path, f"reading {suffix} files needs workbench.io (import workbench.io first)"
        )
    try:
        array = reader(path, key, allow_external)
    except MemoryError:
        # the declared size fitted, but the copies of reading it did not
        raise file_error(
            path, "needs more memory than is available to read; use a smaller file"
        ) from None

    if array.dtype == np.bool_:
        array = array.astype(np.float32)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise file_error(path, f"holds {array.dtype} values, not real numbers")
    if array.ndim == 0:
        raise file_error(path, f"holds a single number: {_EXPECTED_SHAPES}")
    if array.size == 0:
        raise file_error(path, f"is empty (shape {array.shape})")
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all():
            n_nan = int(np.isnan(array).sum())
            n_inf = int(array.size - finite.sum()) - n_nan
            row = int(np.argmax(~finite.reshape(array.shape[0], -1).all(axis=1)))
            raise file_error(
                path,
                f"has non-finite values: {n_nan} NaN and {n_inf} inf (first in row {row}, "
                "counting from 0)",
            )
    return array


def check_fits_in_memory(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse an array the file declares to be larger than the memory available, before
    anything of that size is allocated (a damaged or crafted header claims any size)."""
    need = math.prod(int(n) for n in shape) * int(dtype.itemsize)
    have = available_memory()
    if have is not None and need > have:
        raise file_error(
            path,
            f"declares an array of shape {tuple(int(n) for n in shape)} ({format_bytes(need)}), "
            f"more than the {format_bytes(have)} of memory available; not read",
        )


def _npy_header(fh: Any) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the header of an .npy stream, without reading the data."""
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version == (1, 0):
        shape, _fortran, dtype = fmt.read_array_header_1_0(fh)
    else:
        shape, _fortran, dtype = fmt.read_array_header_2_0(fh)
    return tuple(shape), np.dtype(dtype)


def _check_npy_sizes(path: Path, key: str | None) -> None:
    """The declared size of an .npy (or of the .npz member to be read) against the bytes the
    file really holds and the memory available: a header claiming (10**12, 2) is refused
    before numpy allocates 16 TB for it."""
    try:
        with path.open("rb") as fh:
            zipped = fh.read(4) == b"PK\x03\x04"
            fh.seek(0)
            if not zipped:
                shape, dtype = _npy_header(fh)
                data_bytes = path.stat().st_size - fh.tell()
                _check_declared(path, shape, dtype, data_bytes)
                return
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith(".npy")]
            wanted = f"{key}.npy" if key is not None else (names[0] if len(names) == 1 else None)
            if wanted is None or wanted not in names:
                return  # no array or several: np.load's path below names the choice
            info = z.getinfo(wanted)
            with z.open(info) as member:
                shape, dtype = _npy_header(member)
            _check_declared(path, shape, dtype, info.file_size)
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, TypeError):
        return  # not a readable header: np.load below says why, in its words


def _check_declared(path: Path, shape: tuple[int, ...], dtype: np.dtype, held: int) -> None:
    if dtype.hasobject:
        return  # refused by np.load (allow_pickle=False) with its own message
    need = math.prod(int(n) for n in shape) * int(dtype.itemsize)
    if need > held:
        raise file_error(
            path,
            f"declares an array of shape {tuple(int(n) for n in shape)} ({format_bytes(need)}) "
            f"but holds only {format_bytes(held)} of data: it is damaged or truncated",
        )
    check_fits_in_memory(path, shape, dtype)


def _read_numpy(path: Path, key: str | None, allow_external: bool = False) -> np.ndarray:
    _check_npy_sizes(path, key)
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "Object arrays" in str(exc):
            raise file_error(
                path, "holds Python objects, which are never unpickled (that could run code)"
            ) from None
        if "pickled data" in str(exc):
            # np.load falls back to pickle for anything that is neither .npy nor .npz
            raise file_error(
                path, "cannot be read: not a NumPy .npy/.npz file (pickles are never loaded)"
            ) from None
        raise file_error(path, f"cannot be read: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise file_error(path, f"cannot be read: {exc}") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    # an .npz archive (np.load recognises it by content, whatever the extension)
    try:
        with loaded:
            names = list(loaded.files)
            if key is None:
                if not names:
                    raise file_error(path, "holds no arrays")
                if len(names) > 1:
                    raise file_error(
                        path,
                        f"holds several arrays ({', '.join(names)}); choose one with key = "
                        f'"{names[0]}"',
                    )
                key = names[0]
            elif key not in names:
                raise file_error(
                    path, f"has no array {key!r}; it holds: {', '.join(names) or 'nothing'}"
                )
            return loaded[key]
    except DataError:
        raise
    except ValueError as exc:
        if "Object arrays" in str(exc):
            raise file_error(
                path,
                f"array {key!r} holds Python objects, which are never unpickled "
                "(that could run code)",
            ) from None
        raise file_error(path, f"cannot be read: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise file_error(path, f"cannot be read: {exc}") from None


def _read_csv(path: Path) -> np.ndarray:
    # a float64 takes about as many bytes as its text: a file larger than the memory available
    # cannot become an array
    size = path.stat().st_size
    have = available_memory()
    if have is not None and size > have:
        raise file_error(
            path,
            f"is {format_bytes(size)} of text, more than the {format_bytes(have)} of memory "
            "available; not read",
        )
    skip = 0
    try:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                skip += 1
                fields = line.strip()
                if not fields or fields.startswith("#"):
                    continue
                try:
                    [float(f) for f in fields.split(",")]
                except ValueError:
                    break  # a header line of names: skip it
                skip -= 1
                break
    except UnicodeDecodeError:
        raise file_error(path, "cannot be read as CSV: it is not UTF-8 text") from None
    except OSError as exc:
        raise file_error(path, f"cannot be read: {exc}") from None
    try:
        with warnings.catch_warnings():
            # an empty file warns; emptiness is reported below with the file's name
            warnings.simplefilter("ignore", UserWarning)
            return np.loadtxt(
                path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64, encoding="utf-8"
            )
    except (ValueError, OSError) as exc:
        raise file_error(path, f"cannot be read as CSV: {exc}") from None


ArrayReader = Callable[[Path, "str | None", bool], np.ndarray]

# suffix -> reader(path, key, allow_external); HDF5 readers are added by workbench.io (h5py
# stays out of core)
ARRAY_READERS: dict[str, ArrayReader] = {
    ".npy": _read_numpy,
    ".npz": _read_numpy,
    ".csv": lambda path, key, allow_external: _read_csv(path),
}


def register_array_reader(suffixes: tuple[str, ...], reader: ArrayReader) -> None:
    """Let ``file`` data sets read ``suffixes`` with ``reader(path, key, allow_external)``.

    ``path`` is a regular file (checked first). The reader raises :class:`DataError` (see
    :func:`file_error`) for anything wrong with the file, refuses an array larger than memory
    before reading it (:func:`check_fits_in_memory`) and, unless ``allow_external``, data kept
    in other files; :func:`load_array` then checks dtype, emptiness and finiteness for every
    format.
    """
    for suffix in suffixes:
        ARRAY_READERS[suffix.lower()] = reader


def as_samples(array: np.ndarray, path: Path) -> tuple[np.ndarray, bool]:
    """(values shaped (n, *sample_shape), is_image) from a file's array."""
    if array.dtype not in (np.float32, np.float64):
        # small integers (pixel values) are exact in float32 and take half the memory
        array = array.astype(np.float32)
    if array.ndim == 1:
        return np.ascontiguousarray(array[:, None]), False
    if array.ndim == 2:
        return np.ascontiguousarray(array), False
    if array.ndim == 3:
        return np.ascontiguousarray(array[:, None]), True
    if array.ndim == 4:
        channels = (1, 3, 4)
        if array.shape[3] in channels:
            return np.ascontiguousarray(array.transpose(0, 3, 1, 2)), True
        if array.shape[1] in channels:
            return np.ascontiguousarray(array), True
        raise file_error(
            path,
            f"has shape {array.shape}: 4-D data must be images (n, h, w, c) with c in 1, 3, 4",
        )
    raise file_error(
        path,
        f"has shape {array.shape} ({array.ndim}-D): {_EXPECTED_SHAPES}",
    )
