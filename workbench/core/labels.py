"""Class labels of a data set: where they come from in a file, and the checks they must pass.

A labelled data set pairs every sample with an integer class in 0 .. K-1 (K = ``num_classes``).
Mixtures label each point with the component it was drawn from, digits with their digit, and a
``file`` data set reads them from the file (``[data] labels``):

- .npz / .h5: the name of a second array (dataset path) in the same file, one label per row;
- .csv: a column of the file, by its 0-based number (negative counts from the end, ``-1`` the
  last) or by its name in the header line; that column is taken out of the points.

Labels must be whole numbers >= 0, one per sample: anything else is one ConfigError naming
the key (``data.labels``) and what is wrong with which row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.errors import ConfigError

__all__ = ["MAX_CLASSES", "check_labels", "csv_label_column", "split_column"]

#: more classes than this is not a labelling but a mistake (a column of values picked)
MAX_CLASSES = 10_000


def _problem(path: Path, message: str) -> ConfigError:
    # read when the data set is built, after the config's own checks: the full key here
    return ConfigError("data.labels", f"data file {str(path)!r}: {message}")


def check_labels(raw: np.ndarray, n: int, path: Path) -> np.ndarray:
    """The labels as int64 (n,), or ConfigError("data.labels", ...) saying what is wrong.

    Accepts shape (n,) or (n, 1), any integer dtype, or floats that are whole numbers (a CSV
    column is read as float64). Refuses another length, fractions, non-finite or negative
    values and more than :data:`MAX_CLASSES` classes.
    """
    a = np.asarray(raw)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise _problem(path, f"labels must be one number per sample, got shape {a.shape}")
    if len(a) != n:
        raise _problem(path, f"has {len(a)} labels for {n} samples; give one label per sample")
    if a.dtype == np.bool_:
        a = a.astype(np.int64)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise _problem(path, f"labels hold {a.dtype} values, not class numbers 0, 1, 2, ...")
    if np.issubdtype(a.dtype, np.floating):
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            row = int(np.argmax(bad))
            raise _problem(
                path, f"label {a[row]!r} in row {row} is not a whole number (classes are 0, 1, ...)"
            )
    if a.size and float(a.min()) < 0:
        row = int(np.argmin(a))
        raise _problem(path, f"label {a[row]:g} in row {row} is negative (classes are 0, 1, ...)")
    if a.size and float(a.max()) >= MAX_CLASSES:
        raise _problem(
            path,
            f"largest label is {a.max():g}: more than {MAX_CLASSES} classes; is this the right "
            "column?",
        )
    return a.astype(np.int64)


def csv_label_column(path: Path, spec: str, n_columns: int) -> int:
    """The 0-based column that ``spec`` names in a CSV file: a number (negative from the end)
    or a name in its header line."""
    try:
        index = int(spec)
    except ValueError:
        names = _csv_header(path)
        if spec not in names:
            shown = ", ".join(names) if names else "none: the file has no header line"
            raise _problem(
                path, f"has no column named {spec!r} (its names: {shown}); or give its number"
            ) from None
        index = names.index(spec)
    if not -n_columns <= index < n_columns:
        raise _problem(
            path, f"has {n_columns} columns, no column {index} (0 .. {n_columns - 1}, or -1)"
        )
    if n_columns < 2:
        raise _problem(path, "has one column: the labels would leave no points")
    return index % n_columns


def _csv_header(path: Path) -> list[str]:
    """The names of a CSV file's header line (empty when its first data line is numbers)."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            fields = line.strip()
            if not fields or fields.startswith("#"):
                continue
            try:
                [float(f) for f in fields.split(",")]
            except ValueError:
                return [f.strip().strip('"') for f in fields.split(",")]
            return []
    return []


def split_column(array: np.ndarray, column: int) -> tuple[np.ndarray, np.ndarray]:
    """(the other columns, that column) of a 2-D array."""
    keep = [i for i in range(array.shape[1]) if i != column]
    return np.ascontiguousarray(array[:, keep]), array[:, column]
