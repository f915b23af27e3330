"""Reading trajectory files: :class:`TrajectoryFile` opens one read-only and lazily, checks
its layout (:func:`.layout.check_layout`) and turns every defect into a one-line
:class:`~workbench.errors.WorkbenchError`; :func:`read_while_written` follows a file another
process is still writing.

The file is opened with locking off and opened again to see new rows
(:meth:`TrajectoryFile.refresh`): without SWMR a reader sees the file as of the writer's last
flush. A read that a writer's flush tore is reported as
:class:`~workbench.io.live.FileBeingWrittenError`, not as a corrupt file.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np
import torch

from workbench.config import ExperimentConfig, parse_config
from workbench.core.data import Normalizer
from workbench.errors import WorkbenchError
from workbench.io.live import SETTLE_S, FileBeingWrittenError, file_signature, writes_paused
from workbench.io.safety import check_external, open_beside
from workbench.io.trajectories.layout import (
    as_text,
    check_declared,
    check_layout,
    reason,
)
from workbench.io.trajectories.overview import nodes, summary

__all__ = ["LIVE_READ_ATTEMPTS", "TrajectoryFile", "read_while_written"]

# Reader's chunk cache: one particle's path over ~2000 rows of 32 KiB chunks stays cached, so
# following neighbouring particles costs no decompression.
_READ_CACHE_BYTES = 64 * 1024 * 1024
_READ_CACHE_SLOTS = 100_003

_T = TypeVar("_T")

# Tries of read_while_written, and the pause after the first failure (doubling, at most 0.5 s).
LIVE_READ_ATTEMPTS = 12
_LIVE_READ_PAUSE_S = 0.02


def read_while_written(
    path: str | os.PathLike[str],
    fn: Callable[[TrajectoryFile], _T],
    *,
    attempts: int = LIVE_READ_ATTEMPTS,
    **options: Any,
) -> _T:
    """``fn(TrajectoryFile(path, **options))``, opened again while another process's writes
    tear the read (FileBeingWrittenError); a damaged file still fails at once.

    After ``attempts`` torn reads in a row the error says the file is being written, never
    that it is corrupt.
    """
    pause = _LIVE_READ_PAUSE_S
    for attempt in range(attempts):
        try:
            with writes_paused(path), TrajectoryFile(path, **options) as tf:
                return fn(tf)
        except FileBeingWrittenError:
            if attempt == attempts - 1:
                break
            time.sleep(pause)
            pause = min(2 * pause, 0.5)
    raise FileBeingWrittenError(
        f"{path} is being written by another process and changed during each of {attempts} "
        "reads; try again, or wait until the writer has finished"
    )


class TrajectoryFile:
    """A trajectory file opened read-only; every defect is a one-line WorkbenchError.

    Opening reads attributes and dataset shapes only; arrays are read on demand. The file is
    never modified. ``foreign_ok=True`` opens any HDF5 file (``is_trajectory_file`` then says
    whether it is one), so a generic inspector can browse it with :meth:`nodes` and
    :meth:`read`; the trajectory accessors of a foreign file raise WorkbenchError.

    A file whose writer died (``complete`` false) may hold x rows whose t/step were never
    written: only the rows present in all three count. In a complete file a length mismatch is
    an error. A file still being written can be followed with :meth:`refresh`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        foreign_ok: bool = False,
        allow_external: bool = False,
    ) -> None:
        self.path = Path(path)
        self.foreign_ok = foreign_ok
        # external links / raw files / virtual sources outside the file's folder are refused
        # unless the user agreed (workbench.io.safety)
        self.allow_external = allow_external
        self._file: h5py.File | None = None
        self._open()

    # opening and checking -------------------------------------------------------------------
    def _fail(self, message: str) -> WorkbenchError:
        return WorkbenchError(f"{self.path}: {message}")

    def _changed(self) -> bool:
        """Whether the file changed on disk since this handle began to open it.

        Asked only after a failure. A flush that was under way when the read began may still
        be landing, so an unchanged file is looked at once more a moment later (a damaged,
        idle file costs that moment, once).
        """
        if file_signature(self.path) != self._opened_as:
            return True
        time.sleep(SETTLE_S)
        return file_signature(self.path) != self._opened_as

    def _torn(self, what: str, exc: BaseException | str) -> WorkbenchError | None:
        """The error for a read that failed while the file was being written, else None."""
        if not self._changed():
            return None
        why = exc if isinstance(exc, str) else reason(exc)
        return FileBeingWrittenError(
            f"{self.path} changed while {what} was read (another process is writing it): {why}"
        )

    def _open(self) -> None:
        path = self.path
        # taken before HDF5 reads anything: a writer's flush after this point shows as a change
        self._opened_as = file_signature(path)
        if not path.exists():
            raise WorkbenchError(f"no such file: {path}")
        if path.is_dir():
            raise WorkbenchError(f"{path} is a directory, not a trajectory file")
        if not path.is_file():  # a FIFO or a device would block or never end on read
            raise WorkbenchError(f"{path} is not a regular file")
        try:
            with open(path, "rb") as fh:
                empty = not fh.read(8)
        except OSError as exc:
            raise WorkbenchError(f"cannot read {path}: {reason(exc)}") from None
        if empty:
            raise WorkbenchError(f"{path} is empty, not an HDF5 file")
        if not h5py.is_hdf5(path):
            raise WorkbenchError(f"{path} is not an HDF5 file")
        try:
            f = h5py.File(
                path,
                "r",
                locking=False,
                rdcc_nbytes=_READ_CACHE_BYTES,
                rdcc_nslots=_READ_CACHE_SLOTS,
            )
        except OSError as exc:
            raise self._torn("its structure", exc) or WorkbenchError(
                f"{path} cannot be opened: the HDF5 file is truncated or corrupt ({reason(exc)})"
            ) from None
        self._file = f
        try:
            check_external(f, path, allow=self.allow_external)
            self._check()
        except FileBeingWrittenError:
            self.close()
            raise
        except WorkbenchError as exc:
            self.close()
            raise self._torn("its layout", str(exc)) or exc from None
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            self.close()
            raise self._torn("its layout", exc) or WorkbenchError(
                f"{path} cannot be read: the HDF5 file is truncated or corrupt ({reason(exc)})"
            ) from None

    def _check(self) -> None:
        self._times: np.ndarray | None = None
        self._steps: np.ndarray | None = None
        layout = check_layout(self._h5, self.path, foreign_ok=self.foreign_ok)
        self._root_attrs = layout.root_attrs
        self.is_trajectory_file = layout.is_trajectory_file
        if not self.is_trajectory_file:
            return
        self.format_version = layout.format_version
        self._group_attrs = layout.group_attrs
        self._x, self._t, self._step = layout.x, layout.t, layout.step
        self._n_saved, self._n_samples, self._dim = layout.n_saved, layout.n_samples, layout.dim
        self._sample_shape = layout.sample_shape
        self._samples_ds, self._logp_ds = layout.samples, layout.logp
        self._normalizer = layout.normalizer

    @property
    def _h5(self) -> h5py.File:
        if self._file is None:
            raise WorkbenchError(f"{self.path} is closed")
        return self._file

    def _need_trajectory(self) -> None:
        self._h5  # noqa: B018 - raises when closed
        if not self.is_trajectory_file:
            raise WorkbenchError(f"{self.path} is not an SDE Workbench trajectory file")

    def _read(self, what: str, fn: Callable[[], _T]) -> _T:
        """Run a read; HDF5 read failures (damaged chunks) become WorkbenchErrors."""
        try:
            return fn()
        except (OSError, RuntimeError, KeyError) as exc:
            raise self._torn(what, exc) or WorkbenchError(
                f"cannot read {what} from {self.path}: the file is truncated or corrupt "
                f"({reason(exc)})"
            ) from None

    def refresh(self) -> None:
        """Re-open the file to see rows (and completion) written since it was opened."""
        self.close()
        self._open()

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None

    def __enter__(self) -> TrajectoryFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._file is None or not self.is_trajectory_file:
            return f"TrajectoryFile({str(self.path)!r})"
        return (
            f"TrajectoryFile({str(self.path)!r}, rows={self.n_saved}, samples={self.n_samples}, "
            f"dim={self.dim}, complete={self.complete})"
        )

    # attributes -----------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        """Whether the writer finished the file (false: still writing, or it died)."""
        return bool(self._root_attrs.get("complete", False))

    @property
    def software(self) -> str | None:
        return as_text(self._root_attrs.get("software"))

    @property
    def created(self) -> str | None:
        return as_text(self._root_attrs.get("created"))

    @property
    def n_saved(self) -> int:
        """Number of recorded rows (time points)."""
        self._need_trajectory()
        return self._n_saved

    @property
    def n_samples(self) -> int:
        self._need_trajectory()
        return self._n_samples

    @property
    def dim(self) -> int:
        """Values per sample: prod(sample_shape)."""
        self._need_trajectory()
        return self._dim

    @property
    def sample_shape(self) -> tuple[int, ...]:
        self._need_trajectory()
        return self._sample_shape

    @property
    def sampler(self) -> str | None:
        self._need_trajectory()
        return as_text(self._group_attrs.get("sampler"))

    @property
    def direction(self) -> str | None:
        self._need_trajectory()
        return as_text(self._group_attrs.get("direction"))

    @property
    def nfe(self) -> int | None:
        """Network evaluations the sampler used (0 until the writer closes the file)."""
        self._need_trajectory()
        value = self._group_attrs.get("nfe")
        return None if value is None else int(value)

    @property
    def normalizer(self) -> Normalizer | None:
        """The map between x's model units and data units (None if the file has none)."""
        self._need_trajectory()
        return self._normalizer

    @property
    def has_logp(self) -> bool:
        self._need_trajectory()
        return self._logp_ds is not None

    @property
    def has_samples(self) -> bool:
        """Whether /samples is present (absent when the writer died before closing)."""
        self._need_trajectory()
        return self._samples_ds is not None

    @property
    def samples_from_last_row(self) -> bool:
        """Whether samples() falls back to the denormalised last row (no /samples)."""
        return self._samples_ds is None and self.n_saved > 0

    @property
    def config_text(self) -> str:
        """The experiment config the file was sampled from, as TOML text."""
        self._need_trajectory()
        group = self._read("/config", lambda: self._h5.get("config"))
        text = None
        if group is not None:  # a damaged attribute is a read error, not a crash
            text = as_text(self._read("/config", lambda: group.attrs.get("experiment")))
        if text is None:
            raise self._fail("it holds no experiment config (/config attribute 'experiment')")
        return text

    def read_config(self) -> ExperimentConfig:
        """The experiment config as an ExperimentConfig; errors are WorkbenchErrors."""
        return parse_config(self.config_text, source=f"{self.path}:/config")

    # arrays -----------------------------------------------------------------------------------
    @property
    def times(self) -> np.ndarray:
        """Diffusion time of each row, float64 (n_saved,)."""
        self._need_trajectory()
        if self._times is None:
            self._times = self._read("t", lambda: self._t[: self._n_saved].astype(np.float64))
        return self._times

    @property
    def steps(self) -> np.ndarray:
        """Solver step of each row, int64 (n_saved,)."""
        self._need_trajectory()
        if self._steps is None:
            self._steps = self._read("step", lambda: self._step[: self._n_saved].astype(np.int64))
        return self._steps

    def _row_index(self, k: int) -> int:
        n = self.n_saved
        if n == 0:
            raise WorkbenchError(f"{self.path} holds no trajectory rows (none were recorded)")
        k = int(k)
        if not -n <= k < n:
            raise WorkbenchError(
                f"row {k} is out of range: {self.path} holds rows 0 to {n - 1} (or -{n} to -1)"
            )
        return k % n

    def _particle_index(self, i: int) -> int:
        n = self.n_samples
        i = int(i)
        if not -n <= i < n:
            raise WorkbenchError(
                f"particle {i} is out of range: {self.path} holds particles 0 to {n - 1}"
            )
        return i % n

    def _to_data(self, x: np.ndarray) -> np.ndarray:
        if self._normalizer is None:
            return x
        y = self._normalizer.to_data(torch.from_numpy(x.astype(np.float64)))
        return y.to(torch.float32).numpy()

    def row(
        self, k: int, *, denormalise: bool = False, particles: slice | None = None
    ) -> np.ndarray:
        """Row k (negative counts from the end): x at one time, float32 (n_samples, dim).

        Model units, or data units with ``denormalise``. ``particles`` (a slice) reads only
        some samples, for reading big rows in blocks.
        """
        k = self._row_index(k)
        sel = slice(None) if particles is None else particles
        x = self._read(f"row {k}", lambda: self._x[k, sel, :])
        return self._to_data(x) if denormalise else x

    def particle_path(self, i: int, *, denormalise: bool = False) -> np.ndarray:
        """Particle i across every row, float32 (n_saved, dim)."""
        i = self._particle_index(i)
        x = self._read(f"particle {i}", lambda: self._x[: self._n_saved, i, :])
        return self._to_data(x) if denormalise else x

    def particles(
        self, idx: Sequence[int] | np.ndarray, *, denormalise: bool = False
    ) -> np.ndarray:
        """Several particles' paths, float32 (n_saved, len(idx), dim), in the order given."""
        wanted = np.array([self._particle_index(i) for i in np.ravel(idx)], dtype=np.int64)
        # h5py reads increasing, distinct indices only: read those, then gather
        unique, inverse = np.unique(wanted, return_inverse=True)
        n = self.n_saved
        x = self._read(
            "particles",
            lambda: (
                self._x[:n, unique, :] if len(unique) else np.zeros((n, 0, self.dim), np.float32)
            ),
        )
        x = x[:, inverse, :]
        return self._to_data(x) if denormalise else x

    def samples(self, *, particles: slice | None = None) -> np.ndarray:
        """The final samples in data units, float32 (n_samples, dim).

        From /samples; a file whose writer died has none, and then the last row mapped back
        through the normaliser stands in (see ``samples_from_last_row``).
        """
        self._need_trajectory()
        sel = slice(None) if particles is None else particles
        if self._samples_ds is not None:
            ds = self._samples_ds
            return self._read("/samples", lambda: ds[sel].astype(np.float32))
        if self._n_saved == 0:
            raise WorkbenchError(f"{self.path} holds neither final samples nor trajectory rows")
        return self.row(-1, denormalise=True, particles=particles)

    def logp(self) -> np.ndarray:
        """Per-sample log-likelihood, float64 (n_samples,)."""
        if not self.has_logp:
            raise WorkbenchError(f"{self.path} holds no log-likelihoods (/logp)")
        ds = self._logp_ds
        return self._read("/logp", lambda: ds[()].astype(np.float64))

    def index_of_step(self, step: int) -> int:
        """The row recorded at solver step ``step`` (it must have been recorded)."""
        steps = self.steps
        if len(steps) == 0:
            raise WorkbenchError(f"{self.path} holds no trajectory rows (none were recorded)")
        hits = np.flatnonzero(steps == int(step))
        if len(hits):
            return int(hits[0])
        lo, hi = int(steps.min()), int(steps.max())
        if not lo <= int(step) <= hi:
            raise WorkbenchError(
                f"step {step} is out of range: {self.path} holds steps {lo} to {hi}"
            )
        near = steps[np.argsort(np.abs(steps - int(step)), kind="stable")[:2]]
        near_text = " and ".join(str(int(s)) for s in sorted(near))
        raise WorkbenchError(
            f"step {step} was not recorded in {self.path}; the nearest recorded steps are "
            f"{near_text} (steps {lo} to {hi}, {len(steps)} rows)"
        )

    def index_of_time(self, t: float) -> int:
        """The row whose time is nearest ``t``, which must lie within the recorded times."""
        times = self.times
        if len(times) == 0:
            raise WorkbenchError(f"{self.path} holds no trajectory rows (none were recorded)")
        lo, hi = float(times.min()), float(times.max())
        slack = 1e-9 * max(1.0, abs(lo), abs(hi))
        if not math.isfinite(float(t)) or not lo - slack <= float(t) <= hi + slack:
            raise WorkbenchError(
                f"time {t:g} is out of range: {self.path} holds times {lo:g} to {hi:g}"
            )
        return int(np.argmin(np.abs(times - float(t))))

    # overview -------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """A JSON-able overview: identity, sizes, time range and final-sample statistics
        (:func:`.overview.summary`)."""
        self._need_trajectory()
        return summary(self)

    # generic browsing -----------------------------------------------------------------------
    def nodes(self) -> list[dict[str, Any]]:
        """Every group and dataset: name, kind, shape, dtype, chunks, compression and
        attributes (plain values).

        Works for foreign HDF5 files too (opened with ``foreign_ok``).
        """
        return nodes(self._h5, lambda fn: self._read("the file's structure", fn))

    def read(self, name: str, index: Any = ()) -> np.ndarray:
        """The dataset ``name`` (or ``dataset[index]``) as a numpy array."""
        obj = open_beside(self._h5, name)  # relative external raw files: beside, as checked
        if not isinstance(obj, h5py.Dataset):
            raise WorkbenchError(f"{self.path} has no dataset {name}")
        if isinstance(index, tuple) and not index:
            check_declared(obj, name.lstrip("/"), self._fail)
        return self._read(name, lambda: np.asarray(obj[index]))
