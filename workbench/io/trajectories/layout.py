"""The trajectory format, version 1, in code: the names, attributes and sizes docs/format.md
specifies, written by :func:`create_layout` and checked by :func:`check_layout`.

Both sides of the format live here so that what the writer puts in a file and what the reader
demands of one cannot drift apart; :mod:`.writer` and :mod:`.reader` add the threading, the
replacement of old files and the lazy reads around them.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from workbench.core.data import Normalizer
from workbench.errors import WorkbenchError, one_line
from workbench.io.nexus import creator, write_entry
from workbench.io.safety import open_beside

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "COMPRESSIONS",
    "DIRECTIONS",
    "GZIP_LEVEL",
    "CHUNK_BYTES",
    "MAX_CHUNK_ROWS",
    "LIBVER",
    "Layout",
    "check_declared",
    "check_layout",
    "chunk_shape",
    "create_layout",
    "as_plain",
    "reason",
    "as_text",
]

FORMAT = "sde-workbench/trajectories"
FORMAT_VERSION = 1
COMPRESSIONS = ("gzip", "lzf")
DIRECTIONS = ("reverse", "forward")
GZIP_LEVEL = 4
# Target size of one chunk of x, see the package docstring.
CHUNK_BYTES = 32 * 1024
# Rows grouped into one chunk at most, when a whole row is smaller than CHUNK_BYTES.
MAX_CHUNK_ROWS = 64
# HDF5 library-version bounds of the files written: readable by HDF5 1.10 tools, no SWMR.
LIBVER = ("earliest", "v110")

# A dataset may declare more bytes than it stores (gzip inflates at most ~1032:1; unwritten
# chunks read as fill values), but not this much more: beyond it the shape is damage or a trap
# set to make a reader allocate terabytes.
_MAX_INFLATION = 1100
_DECLARED_SLACK_BYTES = 64 * 1024 * 1024


def reason(exc: BaseException) -> str:
    """The useful part of an exception's message, on one line."""
    if isinstance(exc, OSError) and exc.strerror:
        text = one_line(exc.strerror)
    else:
        text = one_line(exc) or type(exc).__name__
    # h5py wraps HDF5's reason as "Unable to synchronously open file (truncated file: ...)"
    inner = re.fullmatch(r"Unable to (?:synchronously )?[\w ]+? \((.+)\)", text)
    return inner.group(1) if inner else text


def chunk_shape(
    n_samples: int, dim: int, chunk_rows: int | None = None, target: int | None = None
) -> tuple[int, int, int]:
    """The chunk shape (rows, particles, dim) of ``x`` for rows of n_samples x dim float32.

    Default: one row deep and ``target`` bytes (default CHUNK_BYTES) wide; when a whole row is
    smaller than ``target``, up to MAX_CHUNK_ROWS rows share a chunk. ``chunk_rows`` fixes the
    depth.
    """
    target = CHUNK_BYTES if target is None else int(target)
    per_particle = 4 * dim
    particles = max(1, min(n_samples, target // per_particle))
    # equal chunks across the row: 5000 particles as 2 x 2500 rather than 4096 + 904
    particles = -(-n_samples // -(-n_samples // particles))
    if chunk_rows is not None:
        rows = int(chunk_rows)
    elif particles == n_samples:
        rows = max(1, min(MAX_CHUNK_ROWS, target // (n_samples * per_particle)))
    else:
        rows = 1
    return rows, particles, dim


# ---------------------------------------------------------------------------------------------
# writing the skeleton
# ---------------------------------------------------------------------------------------------
def create_layout(
    f: h5py.File,
    *,
    n_samples: int,
    sample_shape: tuple[int, ...],
    chunks: tuple[int, int, int],
    normalizer: Normalizer,
    config_toml: str,
    sampler: str,
    direction: str,
    compression: str,
) -> None:
    """Write the attributes and the empty, growable datasets of a new file into ``f``.

    The file says ``complete = false`` and holds no rows; the writer appends rows and, when it
    finishes, adds ``/samples`` (and ``/logp``), sets ``nfe`` and marks it complete.
    """
    dim = math.prod(sample_shape)
    created = datetime.now().astimezone().isoformat(timespec="seconds")
    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = np.int64(FORMAT_VERSION)
    f.attrs["software"] = creator()
    f.attrs["created"] = created
    f.attrs["complete"] = np.bool_(False)
    f.create_group("config").attrs["experiment"] = config_toml
    g = f.create_group("trajectories")
    write_entry(f, "trajectories", created)
    g.attrs["NX_class"] = "NXdata"
    g.attrs["signal"] = "x"
    # x is (row, particle, coordinate): only rows have an axis; "." marks the others
    g.attrs["axes"] = ["t", ".", "."]
    g.attrs["t_indices"] = np.int64(0)
    g.attrs["direction"] = direction
    g.attrs["sampler"] = sampler
    g.attrs["nfe"] = np.int64(0)
    g.attrs["sample_shape"] = np.asarray(sample_shape, dtype=np.int64)
    norm = normalizer.to_attrs()
    g.attrs["shift"] = np.asarray(norm["shift"], dtype=np.float64)
    g.attrs["scale"] = np.asarray(norm["scale"], dtype=np.float64)
    g.attrs["mode"] = norm["mode"]
    filters: dict[str, Any] = {"compression": compression, "shuffle": True}
    if compression == "gzip":
        filters["compression_opts"] = GZIP_LEVEL
    x = g.create_dataset(
        "x",
        shape=(0, n_samples, dim),
        maxshape=(None, n_samples, dim),
        dtype=np.float32,
        chunks=chunks,
        **filters,
    )
    x.attrs["long_name"] = "x (model units)"
    t = g.create_dataset("t", shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(512,))
    t.attrs["long_name"] = "diffusion time t"
    g.create_dataset("step", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(512,))


# ---------------------------------------------------------------------------------------------
# checking an opened file
# ---------------------------------------------------------------------------------------------
def as_text(value: Any) -> str | None:
    """An attribute value as text (None stays None)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return as_text(value[()])
    return str(value)


def as_plain(value: Any) -> Any:
    """An attribute value as plain JSON-able Python."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [as_plain(v) for v in value.tolist()] if value.ndim else as_plain(value[()])
    if isinstance(value, np.generic):
        return as_plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [as_plain(v) for v in value]
    return value


def _check_numeric(ds: h5py.Dataset, name: str, fail: Callable[[str], WorkbenchError]) -> None:
    """A dataset the reader turns into numbers: numeric dtype, size backed by stored bytes."""
    if ds.dtype.kind not in "iuf":
        raise fail(f"/{name} must hold numbers, it holds {ds.dtype}")
    check_declared(ds, name, fail)


def check_declared(ds: h5py.Dataset, name: str, fail: Callable[[str], WorkbenchError]) -> None:
    """Refuse a dataset whose declared size is far beyond the bytes the file stores for it."""
    declared = math.prod(ds.shape or ()) * ds.dtype.itemsize
    if declared <= _DECLARED_SLACK_BYTES:
        return
    stored = ds.id.get_storage_size()
    if declared > stored * _MAX_INFLATION + _DECLARED_SLACK_BYTES:
        raise fail(
            f"/{name} declares shape {ds.shape} ({declared / 2**30:.3g} GiB) but the file "
            f"stores only {stored} bytes of it; the file is damaged or crafted"
        )


@dataclass
class Layout:
    """What :func:`check_layout` found in a file; the trajectory fields only when
    ``is_trajectory_file``.

    Datasets are opened so that HDF5 finds relative external raw files beside the file (see
    :func:`workbench.io.safety.open_beside`).
    """

    root_attrs: dict[str, Any]
    is_trajectory_file: bool
    format_version: int = 0
    group_attrs: dict[str, Any] = field(default_factory=dict)
    x: Any = None
    t: Any = None
    step: Any = None
    n_saved: int = 0
    n_samples: int = 0
    dim: int = 0
    sample_shape: tuple[int, ...] = ()
    samples: Any = None
    logp: Any = None
    normalizer: Normalizer | None = None


def check_layout(f: h5py.File, path: str | os.PathLike[str], *, foreign_ok: bool = False) -> Layout:
    """The layout of the opened file ``f``; every defect is a one-line WorkbenchError.

    A file whose writer died (``complete`` false) may hold x rows whose t/step were never
    written: only the rows present in all three count (``n_saved``). In a complete file a
    length mismatch is an error. With ``foreign_ok`` any HDF5 file passes, as a Layout with
    ``is_trajectory_file`` false.
    """
    path = Path(path)

    def fail(message: str) -> WorkbenchError:
        return WorkbenchError(f"{path}: {message}")

    root_attrs = {k: f.attrs[k] for k in f.attrs}
    fmt = as_text(root_attrs.get("format"))
    if fmt != FORMAT:
        if foreign_ok:
            return Layout(root_attrs, is_trajectory_file=False)
        why = "it has no 'format' attribute" if fmt is None else f"its format is {fmt!r}"
        raise WorkbenchError(f"{path} is not an SDE Workbench trajectory file ({why})")
    version = root_attrs.get("format_version")
    if not isinstance(version, (int, np.integer)) or isinstance(version, (bool, np.bool_)):
        raise fail(f"format_version must be an integer, got {as_plain(version)!r}")
    if int(version) > FORMAT_VERSION:
        raise WorkbenchError(
            f"{path} was written by a newer version of SDE Workbench (trajectory "
            f"format version {int(version)}; this version reads up to {FORMAT_VERSION}); "
            "please update"
        )
    if int(version) < 1:
        raise fail(f"unknown trajectory format version {int(version)}")

    group = f.get("trajectories")
    if not isinstance(group, h5py.Group):
        raise fail("the group /trajectories is missing")
    group_attrs = {k: group.attrs[k] for k in group.attrs}
    datasets = {}
    for name in ("x", "t", "step"):
        ds = open_beside(group, name)
        if not isinstance(ds, h5py.Dataset):
            raise fail(f"the dataset /trajectories/{name} is missing")
        datasets[name] = ds
    x, t, step = datasets["x"], datasets["t"], datasets["step"]
    if x.ndim != 3:
        raise fail(f"/trajectories/x must be 3-D (rows, samples, dim), it has shape {x.shape}")
    for name in ("t", "step"):
        if datasets[name].ndim != 1:
            raise fail(f"/trajectories/{name} must be 1-D, it has shape {datasets[name].shape}")
    rows = (x.shape[0], t.shape[0], step.shape[0])
    if len(set(rows)) > 1 and bool(root_attrs.get("complete", False)):
        raise fail(
            f"/trajectories/t has {rows[1]} rows and /trajectories/step {rows[2]}, "
            f"but x has {rows[0]}; they must match"
        )
    n_samples, dim = int(x.shape[1]), int(x.shape[2])

    shape_attr = group_attrs.get("sample_shape")
    if shape_attr is None:
        sample_shape: tuple[int, ...] = (dim,)
    else:
        sample_shape = tuple(int(s) for s in np.ravel(shape_attr))
        if math.prod(sample_shape) != dim:
            raise fail(
                f"sample_shape {sample_shape} has {math.prod(sample_shape)} "
                f"values, but x rows have dim {dim}"
            )
    samples = open_beside(f, "samples")
    if samples is not None and (
        not isinstance(samples, h5py.Dataset) or samples.shape != (n_samples, dim)
    ):
        raise fail(
            f"/samples must have shape ({n_samples}, {dim}), "
            f"it has {getattr(samples, 'shape', 'no shape')}"
        )
    logp = open_beside(f, "logp")
    if logp is not None and (not isinstance(logp, h5py.Dataset) or logp.shape != (n_samples,)):
        raise fail(
            f"/logp must have shape ({n_samples},), it has {getattr(logp, 'shape', 'no shape')}"
        )
    # damaged or crafted files: text where numbers belong, or shapes declared far beyond
    # what the file stores (reading them would allocate terabytes)
    numeric = [("trajectories/x", x), ("trajectories/t", t), ("trajectories/step", step)]
    numeric += [("samples", samples), ("logp", logp)]
    for name, ds in numeric:
        if ds is not None:
            _check_numeric(ds, name, fail)
    if "nfe" in group_attrs:
        try:
            int(group_attrs["nfe"])
        except (TypeError, ValueError):
            nfe = as_plain(group_attrs["nfe"])
            raise fail(f"the attribute nfe must be an integer, got {nfe!r}") from None
    try:
        normalizer = (
            Normalizer.from_attrs(group_attrs)
            if "shift" in group_attrs and "scale" in group_attrs
            else None
        )
    except (ValueError, TypeError, RuntimeError) as exc:
        raise fail(f"its normalisation (shift/scale) is invalid: {exc}") from None
    return Layout(
        root_attrs,
        is_trajectory_file=True,
        format_version=int(version),
        group_attrs=group_attrs,
        x=x,
        t=t,
        step=step,
        n_saved=min(rows),
        n_samples=n_samples,
        dim=dim,
        sample_shape=sample_shape,
        samples=samples,
        logp=logp,
        normalizer=normalizer,
    )
