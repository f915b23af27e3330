"""Fokker–Planck solutions on disk: the fpk job (:mod:`workbench.jobs.fpk`) writes them, the
inspector reads them.

Layout (HDF5; docs/format.md is the specification)::

    /                 attrs format="sde-workbench/fpk", format_version=1, created, complete,
                      NX_class="NXroot", default="entry", creator, file_time
    /config           attrs experiment (the experiment as TOML)
    /entry            NXentry, default="fpk"; /entry/fpk a soft link to /fpk
    /fpk              NXdata, signal="p", axes=["times", "x1"(, "x2")], *_indices;
                      attrs sde, dim, grid, mass_error, clipped, warnings, units="model",
                      shift, scale, mode, sample_shape (the normaliser)
    /fpk/x1, /fpk/x2  cell centres of each axis (model units)
    /fpk/times        the times stored
    /fpk/p            p_t on the grid, shape (len(times), *grid), model units

The file is written under a temporary name in the same folder and moved into place with
a link (no clobbering) once complete; an existing file is never overwritten, and a directory,
symlink, device, FIFO or socket at the destination is refused (:mod:`workbench.io.paths`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from workbench.errors import WorkbenchError
from workbench.io.nexus import write_entry
from workbench.io.paths import check_destination, replace_into

if TYPE_CHECKING:
    from workbench.core.data import Normalizer

__all__ = [
    "EXISTS_HINT",
    "FORMAT",
    "FORMAT_VERSION",
    "FPKFileData",
    "fpk_summary",
    "has_fpk",
    "read_fpk",
    "write_fpk",
]

FORMAT = "sde-workbench/fpk"
FORMAT_VERSION = 1
#: how an existing destination is refused (the file is never overwritten)
EXISTS_HINT = "choose another --out or remove it"


def write_fpk(
    path: str | Path,
    solution,
    *,
    sde_kind: str,
    config_toml: str,
    normalizer: Normalizer | None = None,
) -> Path:
    """Write ``solution`` (an :class:`~workbench.core.fpk.FPKSolution`) to a new file.

    The solution is in the model's units; ``normalizer`` (None: the identity) is stored with
    it so that a reader can map the grid and p_t back to data units
    (:meth:`FPKFileData.in_data_units`).
    """
    path = check_destination(path, False, force_hint=EXISTS_HINT)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise WorkbenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = np.int64(FORMAT_VERSION)
            created = datetime.now().astimezone().isoformat(timespec="seconds")
            f.attrs["created"] = created
            f.attrs["complete"] = np.bool_(False)
            f.create_group("config").attrs["experiment"] = config_toml
            g = f.create_group("fpk")
            write_entry(f, "fpk", created)
            g.attrs["sde"] = sde_kind
            g.attrs["dim"] = np.int64(solution.dim)
            g.attrs["grid"] = np.asarray(solution.p.shape[1:], dtype=np.int64)
            g.attrs["mass_error"] = float(np.max(np.abs(solution.mass - 1.0)))
            g.attrs["clipped"] = float(solution.clipped)
            g.attrs["units"] = "model"
            g.attrs["warnings"] = "\n".join(getattr(solution, "warnings", []))
            for i, axis in enumerate(solution.axes, start=1):
                g.create_dataset(f"x{i}", data=np.asarray(axis, dtype=np.float64))
            g.create_dataset("times", data=np.asarray(solution.times, dtype=np.float64))
            g.create_dataset("p", data=solution.p, compression="gzip", compression_opts=4)
            _describe(g, solution.dim, normalizer)
            f.attrs["complete"] = np.bool_(True)
        # linked into place only if the name is still free: nothing is ever replaced
        replace_into(tmp, path, False, force_hint=EXISTS_HINT)
    except OSError as exc:
        raise WorkbenchError(f"could not write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _describe(g: h5py.Group, dim: int, normalizer: Normalizer | None) -> None:
    """Make /fpk an NXdata group (p over times, x1[, x2]) and store the normaliser.

    NeXus: ``signal`` p has one axis per dimension, ``AXISNAME_indices`` says which (p is
    indexed p[time, i1, i2] with x1 along i1, meshgrid "ij"). The normaliser is stored as the
    trajectory files store it (shift, scale, mode, sample_shape; x_data = shift + scale *
    x_model), so p_t reads back in data units as p_model / prod(scale).
    """
    g.attrs["NX_class"] = "NXdata"
    g.attrs["signal"] = "p"
    names = ["times", *(f"x{i}" for i in range(1, dim + 1))]
    g.attrs["axes"] = names
    for k, name in enumerate(names):
        g.attrs[f"{name}_indices"] = np.int64(k)
    g["times"].attrs["long_name"] = "diffusion time t"
    for i in range(1, dim + 1):
        g[f"x{i}"].attrs["long_name"] = f"x{i} (model units)"
    g["p"].attrs["long_name"] = "p_t (model units)"
    if normalizer is None:
        shift, scale, mode, shape = 0.0, 1.0, "none", [dim]
    else:
        norm = normalizer.to_attrs()
        shift, scale, mode, shape = norm["shift"], norm["scale"], norm["mode"], norm["sample_shape"]
    g.attrs["shift"] = np.asarray(shift, dtype=np.float64)
    g.attrs["scale"] = np.asarray(scale, dtype=np.float64)
    g.attrs["mode"] = mode
    g.attrs["sample_shape"] = np.asarray(shape, dtype=np.int64)


@dataclass
class FPKFileData:
    """A /fpk group read back: cell-centre ``axes``, ``times``, ``p`` (times x grid), attrs.

    ``axes`` and ``p`` are in the model's units. ``shift`` and ``scale`` (one entry per
    coordinate) are the normaliser, None in files written before it was stored.
    """

    axes: list[np.ndarray]
    times: np.ndarray
    p: np.ndarray
    attrs: dict[str, object]
    shift: np.ndarray | None = None
    scale: np.ndarray | None = None

    def in_data_units(self) -> tuple[list[np.ndarray], np.ndarray]:
        """The axes and p_t in data units: x_data = shift + scale * x_model per coordinate,
        p_data = p_model / prod(scale) (the Jacobian of that map), so p_data still integrates
        to the same mass over the data-unit grid."""
        if self.shift is None or self.scale is None:
            raise WorkbenchError(
                "this Fokker–Planck file stores no normaliser (written before it was stored); "
                "its p_t is in model units only"
            )
        axes = [s + c * a for a, s, c in zip(self.axes, self.shift, self.scale, strict=True)]
        return axes, self.p / float(np.prod(self.scale))


def _normaliser(
    attrs: dict[str, object], dim: int, path: str | Path
) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """Per-coordinate (shift, scale) from /fpk's attributes, or (None, None) when absent."""
    if "shift" not in attrs or "scale" not in attrs:
        return None, None
    try:
        shape = tuple(int(n) for n in np.asarray(attrs.get("sample_shape", [dim])).ravel())
        shift = np.broadcast_to(np.asarray(attrs["shift"], np.float64), shape).reshape(-1)
        scale = np.broadcast_to(np.asarray(attrs["scale"], np.float64), shape).reshape(-1)
        if len(shift) != dim:
            raise ValueError(f"it is for {len(shift)} coordinates, the grid has {dim}")
        if not (np.isfinite(shift).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("shift and scale must be finite and scale positive")
    except (ValueError, TypeError) as exc:
        raise WorkbenchError(
            f"{path}: the normaliser of /fpk (shift/scale) is invalid: {exc}"
        ) from None
    return shift.copy(), scale.copy()


def _check_version(f: h5py.File, path: str | Path) -> None:
    """Refuse a file of a later format version: its layout may mean something else, and
    guessing could show a wrong density. A file with no version is read as version 1."""
    version = f.attrs.get("format_version", FORMAT_VERSION)
    if not isinstance(version, (int, np.integer)) or isinstance(version, (bool, np.bool_)):
        raise WorkbenchError(f"{path}: format_version must be an integer, got {version!r}")
    if int(version) > FORMAT_VERSION:
        raise WorkbenchError(
            f"{path} was written by a newer version of SDE Workbench (Fokker–Planck format "
            f"version {int(version)}; this version reads up to {FORMAT_VERSION}); please update"
        )


def has_fpk(path: str | Path) -> bool:
    """Whether ``path`` is an HDF5 file with an /fpk group holding ``times`` and ``p``.

    Opened without file locking, as the inspector's reader opens it: HDF5 refuses a second
    handle whose locking differs from the first's."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            g = f.get("fpk")
            return isinstance(g, h5py.Group) and "times" in g and "p" in g
    except OSError:
        return False


def read_fpk(path: str | Path) -> FPKFileData:
    """The /fpk group of ``path`` (written by :func:`write_fpk`), checked for consistent shapes."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            g = f.get("fpk")
            if not isinstance(g, h5py.Group) or "times" not in g or "p" not in g:
                raise WorkbenchError(f"{path} has no /fpk group with times and p")
            _check_version(f, path)
            times = np.asarray(g["times"][()], dtype=np.float64).reshape(-1)
            dim = int(g["p"].ndim) - 1
            axes = [np.asarray(g[f"x{i}"][()], dtype=np.float64) for i in range(1, dim + 1)]
            p = np.asarray(g["p"][()], dtype=np.float64)
            attrs = {k: g.attrs[k] for k in g.attrs}
    except (OSError, KeyError) as exc:
        raise WorkbenchError(f"cannot read the Fokker–Planck solution in {path}: {exc}") from exc
    if dim not in (1, 2) or p.shape != (len(times), *(len(a) for a in axes)):
        raise WorkbenchError(
            f"{path}: /fpk/p has shape {p.shape}, which does not match its times and axes"
        )
    shift, scale = _normaliser(attrs, dim, path)
    return FPKFileData(axes=axes, times=times, p=p, attrs=attrs, shift=shift, scale=scale)


def fpk_summary(path: str | Path) -> dict[str, object]:
    """What ``sde-workbench inspect`` shows of an fpk file: the grid, its extent, the times and
    the solver's figures, read from attributes and axes alone (p itself is not loaded)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            g = f.get("fpk")
            if not isinstance(g, h5py.Group) or "times" not in g or "p" not in g:
                raise WorkbenchError(f"{path} has no /fpk group with times and p")
            _check_version(f, path)
            p = g["p"]
            dim = int(p.ndim) - 1
            times = np.asarray(g["times"][()], dtype=np.float64).reshape(-1)
            axes = [np.asarray(g[f"x{i}"][()], dtype=np.float64) for i in range(1, dim + 1)]
            summary: dict[str, object] = {
                "file": str(path),
                "format": _text(f.attrs.get("format", "")),
                "complete": bool(f.attrs.get("complete", False)),
                "created": _text(f.attrs.get("created", "")),
                "sde": _text(g.attrs.get("sde", "")),
                "dim": dim,
                "grid": "x".join(str(n) for n in p.shape[1:]),
                "extent": {
                    f"x{i}": f"[{a[0]:.4g}, {a[-1]:.4g}]" for i, a in enumerate(axes, start=1)
                },
                "times": ", ".join(f"{t:g}" for t in times),
                "mass_error": float(g.attrs.get("mass_error", float("nan"))),
                "clipped": float(g.attrs.get("clipped", float("nan"))),
            }
            warnings = _text(g.attrs.get("warnings", ""))
            if warnings:
                summary["warnings"] = warnings
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise WorkbenchError(f"cannot read the Fokker–Planck solution in {path}: {exc}") from exc
    if dim not in (1, 2) or len(axes) != dim:
        raise WorkbenchError(f"{path}: /fpk/p has {dim + 1} axes; a 1-D or 2-D solution has 2 or 3")
    return summary


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
