"""HDF5 trajectory files, format version 1: the layout docs/format.md specifies.

```
/                attrs format, format_version, software, created, complete,
                 NX_class="NXroot", default="entry", creator, file_time
/config          attr experiment (TOML text)
/entry           NXentry, default="trajectories"; /entry/trajectories a soft link (nexus.py)
/trajectories    NXdata: x (n_saved, n_samples, dim) float32, t (n_saved,), step (n_saved,);
                 attrs signal, axes, t_indices, direction, sampler, nfe, sample_shape,
                 shift, scale, mode
/samples         (n_samples, dim) float32, data units        /logp  (n_samples,) float64
```

:class:`TrajectoryWriter` appends rows from a background thread and flushes after every row,
so a killed writer leaves a file that opens, holds every flushed row and says
``complete = false``. :class:`TrajectoryFile` reads one lazily and checks its layout, turning
every defect into a one-line :class:`~workbench.errors.WorkbenchError`.

Choices a reader of the files may care about:

- Files are written with HDF5 library-version bounds ("earliest", "v110"): the oldest file
  format that can hold the data, readable by HDF5 1.10 tools (h5dump, HDFView, silx). No SWMR:
  SWMR needs the 1.10 superblock, which HDF5 marks "open for writing"; after a crash such a
  file opens only as a SWMR reader or after ``h5clear`` (checked: h5py and h5dump refuse it),
  which breaks the crash state this format promises. A live reader re-opens instead
  (:meth:`TrajectoryFile.refresh`); without SWMR a reader sees the file as of the writer's
  last flush.
- File locking is off on both sides, so an inspector can follow a file while it is written
  (in the same process or another); a second writer is still kept out, because a new file is
  created exclusively and a replacement is written under a temporary name.
  Instead the writer holds an exclusive ``flock`` on the file while it writes and flushes a
  row, and ``inspect`` holds a shared one while it reads (:func:`writes_paused`): without
  SWMR a reader that overlaps a flush can find chunk indexes pointing at re-used space. A
  read torn by some other writer is retried (:func:`read_while_written`), and reported as a
  file being written, not as a corrupt one.
- ``x`` is chunked one row deep, (1, c, dim) with c particles making ~32 KiB: a row is written
  as whole chunks (no chunk is ever re-compressed when the next row arrives), a time slice reads
  a handful of chunks, and one particle's path reads one small chunk per row. Chunks several
  rows deep make paths faster but multiply the writing cost, because every flush re-compresses
  the partly filled chunks. Measured on 1000 rows x 100000 particles x 2 (gzip, 2 busy CPU
  cores): (1, 4000, 2) writes in ~26 s, reads a time slice in ~3 ms and a path in ~170 ms
  (~5 ms for a neighbouring particle, from the chunk cache); (8, 4000, 2) takes ~120 s to write
  for a ~80 ms path and a ~14 ms slice. Tiny rows (a whole row under ~32 KiB) are grouped
  several to a chunk instead.
- Compression is gzip level 4 with the shuffle filter (every HDF5 tool can read it); ``lzf``
  is faster but only h5py (and silx, through hdf5plugin) can decompress it.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np
import torch
from torch import Tensor

from workbench.config import ExperimentConfig, parse_config
from workbench.core.data import Normalizer
from workbench.errors import WorkbenchError
from workbench.io.live import (
    SETTLE_S,
    FileBeingWrittenError,
    fcntl,
    file_signature,
    lock_handle,
    writes_paused,
)
from workbench.io.nexus import creator, write_entry
from workbench.io.paths import check_destination, replace_into
from workbench.io.safety import check_external

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "COMPRESSIONS",
    "DIRECTIONS",
    "MAX_PENDING_BYTES",
    "CHUNK_BYTES",
    "FileBeingWrittenError",
    "TrajectoryFile",
    "TrajectoryWriter",
    "chunk_shape",
    "read_while_written",
    "writes_paused",
]

FORMAT = "sde-workbench/trajectories"
FORMAT_VERSION = 1
COMPRESSIONS = ("gzip", "lzf")
DIRECTIONS = ("reverse", "forward")
GZIP_LEVEL = 4
# Target size of one chunk of x, see the module docstring.
CHUNK_BYTES = 32 * 1024
# Rows grouped into one chunk at most, when a whole row is smaller than CHUNK_BYTES.
MAX_CHUNK_ROWS = 64
# Rows waiting for the writer thread, in bytes: append() blocks only once this much is queued.
# 128 MiB holds 160 rows of 100000 two-dimensional particles, or 10 rows of 3000 CIFAR-sized
# images; a row larger than the bound on its own is still accepted when the queue is empty.
MAX_PENDING_BYTES = 128 * 1024 * 1024
_LIBVER = ("earliest", "v110")
# Reader's chunk cache: one particle's path over ~2000 rows of 32 KiB chunks stays cached, so
# following neighbouring particles costs no decompression.
_READ_CACHE_BYTES = 64 * 1024 * 1024
_READ_CACHE_SLOTS = 100_003
# Bytes of float64 samples per block when a reader scans the samples for statistics.
_STATS_BLOCK_BYTES = 32 * 1024 * 1024

_T = TypeVar("_T")
_OVERWRITE_HINT = "choose another name or allow overwriting it"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _reason(exc: BaseException) -> str:
    """The useful part of an exception's message, on one line."""
    if isinstance(exc, OSError) and exc.strerror:
        text = _one_line(exc.strerror)
    else:
        text = _one_line(exc) or type(exc).__name__
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


def _as_rows(value: Tensor | np.ndarray | Any, shape: tuple[int, int], what: str) -> np.ndarray:
    """A private float32 C-contiguous copy of ``value`` reshaped to ``shape``.

    Always a copy: the caller may overwrite its tensor (samplers update x in place) as soon as
    append() returns. A tensor on a GPU is copied to the host here, which waits for the device.
    """
    if isinstance(value, Tensor):
        arr = value.detach().to(device="cpu", dtype=torch.float32, copy=True).numpy()
    else:
        arr = np.array(value, dtype=np.float32, copy=True, order="C")
    if arr.size != shape[0] * shape[1] or arr.shape[:1] != shape[:1]:
        raise ValueError(
            f"{what} must have {shape[0]} samples of {shape[1]} values, got shape {arr.shape}"
        )
    return np.ascontiguousarray(arr.reshape(shape))


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
class TrajectoryWriter:
    """Writes one trajectory file; rows are appended from a background thread.

    ``append(step, t, x)`` copies the row and queues it; a writer thread appends it to
    ``x``/``t``/``step`` and flushes the file after each row, so the sampler waits on the disk
    only when ``max_pending_bytes`` of rows are already queued. ``close(samples, nfe=...)``
    waits for the queue, writes ``/samples`` (and ``/logp``) and marks the file complete;
    ``abort()`` closes it incomplete. Used as a context manager, leaving the block without
    close() (by an exception or not) aborts: the file keeps its rows with complete = false.

    A new file is written at ``path`` directly, so a crash leaves a partial, readable file.
    With ``overwrite=True`` over an existing file the new one is written under a temporary name
    beside it and renamed over the old one by close(): an abort or a crash never loses the old
    file (a crash leaves a hidden ``.NAME.*.tmp`` beside it). An error in the writer thread
    (a full disk, say) is raised by the next append(), flush() or close() as a WorkbenchError.

    ``x`` rows are in the model's (normalised) units; ``normalizer`` (None: the identity) is
    stored as the ``shift``/``scale``/``mode`` attributes that map them back to data units.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        n_samples: int,
        sample_shape: Sequence[int],
        config_toml: str,
        sampler: str,
        direction: str = "reverse",
        normalizer: Normalizer | None = None,
        overwrite: bool = False,
        compression: str = "gzip",
        chunk_rows: int | None = None,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self.path = Path(path)
        shape = tuple(int(s) for s in sample_shape)
        if not shape or any(s < 1 for s in shape):
            raise ValueError(f"sample_shape must be positive sizes, got {tuple(sample_shape)}")
        if int(n_samples) < 1:
            raise ValueError(f"n_samples must be at least 1, got {n_samples}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        if chunk_rows is not None and int(chunk_rows) < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        if normalizer is None:
            normalizer = Normalizer.identity(shape)
        if tuple(normalizer.sample_shape or ()) != shape:
            raise ValueError(
                f"the normaliser is for samples of shape {normalizer.sample_shape}, not {shape}"
            )
        self.n_samples = int(n_samples)
        self.sample_shape = shape
        self.dim = math.prod(shape)
        self.normalizer = normalizer
        self.max_pending_bytes = int(max_pending_bytes)
        self.chunks = chunk_shape(self.n_samples, self.dim, chunk_rows)

        self._target = self._claim_path(path, overwrite)
        self._file = self._create(
            config_toml=str(config_toml),
            sampler=str(sampler),
            direction=direction,
            compression=compression,
        )
        self._lock_fd = lock_handle(self._target)
        self._x = self._file["trajectories/x"]
        self._t = self._file["trajectories/t"]
        self._step = self._file["trajectories/step"]

        self._written = 0  # rows in the file, flushed (touched by the writer thread only)
        self._appended = 0
        self._last_row: np.ndarray | None = None
        self._error: BaseException | None = None
        self._failed_row = -1
        self._closed = False
        self._queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self._pending_bytes = 0
        self._cond = threading.Condition()
        self._thread = threading.Thread(
            target=self._run, name=f"trajectory writer {self.path.name}", daemon=True
        )
        self._thread.start()

    # creation -------------------------------------------------------------------------------
    def _claim_path(self, given: str | os.PathLike[str], overwrite: bool) -> Path:
        """Where the HDF5 file is written: ``path`` itself, or a temporary beside it.

        Only a regular file is ever replaced (see :mod:`workbench.io.paths`): a directory, a
        symlink, a device, a FIFO or a socket at ``path`` is refused even with ``overwrite``.
        """
        check_destination(given, overwrite, force_hint=_OVERWRITE_HINT)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkbenchError(
                f"cannot create the folder {self.path.parent}: {_reason(exc)}"
            ) from None
        if not os.path.lexists(self.path):
            return self.path  # created exclusively by _create: a symlink appearing there fails
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
            )
        except OSError as exc:
            raise WorkbenchError(f"cannot write in {self.path.parent}: {_reason(exc)}") from None
        os.close(fd)
        return Path(tmp)

    @property
    def _replacing(self) -> bool:
        return self._target != self.path

    def _create(self, *, config_toml: str, sampler: str, direction: str, compression: str):
        # "x" (exclusive create) keeps two writers from racing for a new file; the temporary
        # of a replacement was created by mkstemp and is truncated instead.
        mode = "w" if self._replacing else "x"
        rows, _, _ = self.chunks
        try:
            f = h5py.File(
                self._target,
                mode,
                libver=_LIBVER,
                locking=False,
                # deep chunks are filled over several rows: keep one row of them cached
                rdcc_nbytes=max(1 << 20, min(256 << 20, rows * self.n_samples * self.dim * 4)),
                rdcc_nslots=10_007,
            )
        except FileExistsError:
            raise WorkbenchError(
                f"{self.path} already exists; choose another name or allow overwriting it"
            ) from None
        except OSError as exc:
            self._discard_temporary()
            raise WorkbenchError(f"cannot create {self.path}: {_reason(exc)}") from None
        try:
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
            g.attrs["sample_shape"] = np.asarray(self.sample_shape, dtype=np.int64)
            norm = self.normalizer.to_attrs()
            g.attrs["shift"] = np.asarray(norm["shift"], dtype=np.float64)
            g.attrs["scale"] = np.asarray(norm["scale"], dtype=np.float64)
            g.attrs["mode"] = norm["mode"]
            filters: dict[str, Any] = {"compression": compression, "shuffle": True}
            if compression == "gzip":
                filters["compression_opts"] = GZIP_LEVEL
            x = g.create_dataset(
                "x",
                shape=(0, self.n_samples, self.dim),
                maxshape=(None, self.n_samples, self.dim),
                dtype=np.float32,
                chunks=self.chunks,
                **filters,
            )
            x.attrs["long_name"] = "x (model units)"
            t = g.create_dataset("t", shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(512,))
            t.attrs["long_name"] = "diffusion time t"
            g.create_dataset("step", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(512,))
            f.flush()
        except BaseException as exc:
            f.close()
            if self._replacing:
                self._discard_temporary()
            else:
                self.path.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise WorkbenchError(f"cannot write {self.path}: {_reason(exc)}") from None
            raise
        return f

    def _discard_temporary(self) -> None:
        if self._replacing:
            self._target.unlink(missing_ok=True)

    # the writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                item = self._queue.popleft()
            kind = item[0]
            if kind == "stop":
                return
            if kind == "sync":
                item[1].set()
                continue
            _, step, t, row = item
            try:
                if self._error is None:
                    self._write_row(step, t, row)
            except BaseException as exc:  # reported to the caller by the next call
                self._error = exc
                self._failed_row = self._written
                self._roll_back()
            finally:
                with self._cond:
                    self._pending_bytes -= row.nbytes
                    self._cond.notify_all()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Exclusive while the file is changed: readers holding writes_paused see no tear."""
        fd = self._lock_fd
        locked = False
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                locked = True
            except OSError:
                pass
        try:
            yield
        finally:
            if locked:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _write_row(self, step: int, t: float, row: np.ndarray) -> None:
        with self._writing():
            self._write_row_unlocked(step, t, row)

    def _write_row_unlocked(self, step: int, t: float, row: np.ndarray) -> None:
        """Append one row and flush; x first and step last, so a row with a step is whole."""
        k = self._written
        self._x.resize(k + 1, axis=0)
        self._x[k] = row
        self._t.resize(k + 1, axis=0)
        self._t[k] = t
        self._step.resize(k + 1, axis=0)
        self._step[k] = step
        self._file.flush()
        self._written = k + 1

    def _roll_back(self) -> None:
        """After a failed row, shrink every dataset back to the rows flushed before it."""
        try:
            with self._writing():
                for ds in (self._x, self._t, self._step):
                    if ds.shape[0] > self._written:
                        ds.resize(self._written, axis=0)
                self._file.flush()
        except Exception:
            pass  # the disk is failing: the last good flush stands

    def _raise_if_failed(self) -> None:
        exc = self._error
        if exc is None:
            return
        if not isinstance(exc, (OSError, RuntimeError)):
            raise exc  # not the disk: a bug, which keeps its own type and traceback
        if self._replacing:
            kept = f"{self.path} is unchanged"
        else:
            kept = f"the file stays valid up to the last flushed row ({self._written} rows)"
        raise WorkbenchError(
            f"could not write row {self._failed_row} of {self.path}: {_reason(exc)}; {kept}"
        ) from exc

    def _check_open(self) -> None:
        if self._closed:
            raise WorkbenchError(f"{self.path} is already closed")

    # public API -----------------------------------------------------------------------------
    @property
    def rows_appended(self) -> int:
        """Rows handed to append() so far."""
        return self._appended

    @property
    def rows_written(self) -> int:
        """Rows written and flushed to the file so far (may lag rows_appended)."""
        return self._written

    def append(self, step: int, t: float, x: Tensor | np.ndarray) -> None:
        """Queue one row: the state x (n_samples, *sample_shape) at solver ``step``, time ``t``.

        ``x`` (model units, any float dtype, CPU or GPU) is copied before this returns, so the
        caller may reuse its buffer. Blocks only while ``max_pending_bytes`` are queued.
        """
        self._check_open()
        self._raise_if_failed()
        row = _as_rows(x, (self.n_samples, self.dim), "x")
        item = ("row", int(step), float(t), row)
        with self._cond:
            while (
                self._pending_bytes > 0
                and self._pending_bytes + row.nbytes > self.max_pending_bytes
                and self._error is None
            ):
                self._cond.wait()
            self._raise_if_failed()
            self._queue.append(item)
            self._pending_bytes += row.nbytes
            self._cond.notify_all()
        self._appended += 1
        self._last_row = row

    def flush(self) -> None:
        """Wait until every appended row is in the file and flushed to the OS."""
        self._check_open()
        done = threading.Event()
        with self._cond:
            self._queue.append(("sync", done))
            self._cond.notify_all()
        done.wait()
        self._raise_if_failed()

    def _stop_thread(self, discard: bool = False) -> None:
        with self._cond:
            if discard:
                for item in self._queue:
                    if item[0] == "row":
                        self._pending_bytes -= item[3].nbytes
                    elif item[0] == "sync":
                        item[1].set()
                self._queue.clear()
            self._queue.append(("stop",))
            self._cond.notify_all()
        self._thread.join()

    def close(
        self,
        samples: Tensor | np.ndarray | None = None,
        nfe: int | None = None,
        logp: Tensor | np.ndarray | None = None,
    ) -> Path:
        """Finish the file: write /samples (and /logp), set nfe, mark it complete; its path.

        ``samples`` are the final samples in DATA units, (n_samples, *sample_shape) or
        (n_samples, dim); None stores the last appended row mapped back through the
        normaliser. ``logp`` is an optional per-sample log-likelihood (n_samples,). Arguments
        are checked before anything is written: a ValueError leaves the writer open.
        """
        self._check_open()
        if samples is None:
            if self._last_row is None:
                raise ValueError("no rows were appended: pass the final samples to close()")
            data = self.normalizer.to_data(torch.from_numpy(self._last_row).to(torch.float64))
            final = data.to(torch.float32).numpy()
        else:
            final = _as_rows(samples, (self.n_samples, self.dim), "samples")
        log_p = None
        if logp is not None:
            log_p = (
                logp.detach().to("cpu", torch.float64).numpy()
                if isinstance(logp, Tensor)
                else np.asarray(logp, dtype=np.float64)
            )
            if log_p.shape != (self.n_samples,):
                raise ValueError(f"logp must have shape ({self.n_samples},), got {log_p.shape}")
        self._stop_thread()
        if self._error is not None:
            self._finish(complete=False)
            self._raise_if_failed()
        try:
            with self._writing():
                f = self._file
                f.create_dataset("samples", data=final, dtype=np.float32)
                if log_p is not None:
                    f.create_dataset("logp", data=log_p, dtype=np.float64)
                f["trajectories"].attrs["nfe"] = np.int64(0 if nfe is None else int(nfe))
                f.attrs["complete"] = np.bool_(True)
                f.flush()
        except OSError as exc:
            self._finish(complete=False)
            kept = "is unchanged" if self._replacing else "keeps its rows but is incomplete"
            raise WorkbenchError(
                f"could not finish {self.path}: {_reason(exc)}; it {kept}"
            ) from None
        self._finish(complete=True)
        return self.path

    def _finish(self, complete: bool) -> None:
        """Close the HDF5 file; put a finished replacement in place, or drop an unfinished one."""
        self._closed = True
        try:
            with self._writing():
                self._file.close()
        except Exception:
            complete = False
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
        if not self._replacing:
            return
        if not complete:
            self._discard_temporary()
            return
        try:
            fd = os.open(self._target, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            # mkstemp makes the file private (0600); keep the mode of the file it replaces
            mode = self.path.stat().st_mode & 0o777 if self.path.exists() else 0o644
            os.chmod(self._target, mode)
            # checked again: only a regular file is replaced, even if one appeared meanwhile
            replace_into(self._target, self.path, True, force_hint=_OVERWRITE_HINT)
        except OSError as exc:
            self._discard_temporary()
            raise WorkbenchError(
                f"could not replace {self.path}: {_reason(exc)}; the old file is unchanged"
            ) from None

    def abort(self) -> None:
        """Close without finishing: complete stays false (a replacement is dropped instead).

        Rows already queued are still written (they are what a crash investigation wants),
        unless the file is a replacement that is about to be deleted anyway. Safe to call
        twice and after an error.
        """
        if self._closed:
            return
        self._stop_thread(discard=self._replacing)
        self._finish(complete=False)

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"TrajectoryWriter({str(self.path)!r}, rows={self._appended}, {state})"


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value[()])
    return str(value)


def _plain(value: Any) -> Any:
    """An attribute value as plain JSON-able Python."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.ndim else _plain(value[()])
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# A dataset may declare more bytes than it stores (gzip inflates at most ~1032:1; unwritten
# chunks read as fill values), but not this much more: beyond it the shape is damage or a trap
# set to make a reader allocate terabytes.
_MAX_INFLATION = 1100
_DECLARED_SLACK_BYTES = 64 * 1024 * 1024


def _check_numeric(ds: h5py.Dataset, name: str, fail: Callable[[str], WorkbenchError]) -> None:
    """A dataset the reader turns into numbers: numeric dtype, size backed by stored bytes."""
    if ds.dtype.kind not in "iuf":
        raise fail(f"/{name} must hold numbers, it holds {ds.dtype}")
    _check_declared(ds, name, fail)


def _check_declared(ds: h5py.Dataset, name: str, fail: Callable[[str], WorkbenchError]) -> None:
    declared = math.prod(ds.shape or ()) * ds.dtype.itemsize
    if declared <= _DECLARED_SLACK_BYTES:
        return
    stored = ds.id.get_storage_size()
    if declared > stored * _MAX_INFLATION + _DECLARED_SLACK_BYTES:
        raise fail(
            f"/{name} declares shape {ds.shape} ({declared / 2**30:.3g} GiB) but the file "
            f"stores only {stored} bytes of it; the file is damaged or crafted"
        )


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
        why = exc if isinstance(exc, str) else _reason(exc)
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
            raise WorkbenchError(f"cannot read {path}: {_reason(exc)}") from None
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
                f"{path} cannot be opened: the HDF5 file is truncated or corrupt ({_reason(exc)})"
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
                f"{path} cannot be read: the HDF5 file is truncated or corrupt ({_reason(exc)})"
            ) from None

    def _check(self) -> None:
        f = self._h5
        self._times: np.ndarray | None = None
        self._steps: np.ndarray | None = None
        self._root_attrs = {k: f.attrs[k] for k in f.attrs}
        fmt = _text(self._root_attrs.get("format"))
        self.is_trajectory_file = fmt == FORMAT
        if not self.is_trajectory_file:
            if self.foreign_ok:
                return
            why = "it has no 'format' attribute" if fmt is None else f"its format is {fmt!r}"
            raise WorkbenchError(f"{self.path} is not an SDE Workbench trajectory file ({why})")
        version = self._root_attrs.get("format_version")
        if not isinstance(version, (int, np.integer)) or isinstance(version, (bool, np.bool_)):
            raise self._fail(f"format_version must be an integer, got {_plain(version)!r}")
        if int(version) > FORMAT_VERSION:
            raise WorkbenchError(
                f"{self.path} was written by a newer version of SDE Workbench (trajectory "
                f"format version {int(version)}; this version reads up to {FORMAT_VERSION}); "
                "please update"
            )
        if int(version) < 1:
            raise self._fail(f"unknown trajectory format version {int(version)}")
        self.format_version = int(version)

        group = f.get("trajectories")
        if not isinstance(group, h5py.Group):
            raise self._fail("the group /trajectories is missing")
        self._group_attrs = {k: group.attrs[k] for k in group.attrs}
        datasets = {}
        for name in ("x", "t", "step"):
            ds = group.get(name)
            if not isinstance(ds, h5py.Dataset):
                raise self._fail(f"the dataset /trajectories/{name} is missing")
            datasets[name] = ds
        x, t, step = datasets["x"], datasets["t"], datasets["step"]
        if x.ndim != 3:
            raise self._fail(
                f"/trajectories/x must be 3-D (rows, samples, dim), it has shape {x.shape}"
            )
        for name in ("t", "step"):
            if datasets[name].ndim != 1:
                raise self._fail(
                    f"/trajectories/{name} must be 1-D, it has shape {datasets[name].shape}"
                )
        self._x, self._t, self._step = x, t, step
        rows = (x.shape[0], t.shape[0], step.shape[0])
        if len(set(rows)) > 1 and self.complete:
            raise self._fail(
                f"/trajectories/t has {rows[1]} rows and /trajectories/step {rows[2]}, "
                f"but x has {rows[0]}; they must match"
            )
        self._n_saved = min(rows)
        self._n_samples, self._dim = int(x.shape[1]), int(x.shape[2])

        shape_attr = self._group_attrs.get("sample_shape")
        if shape_attr is None:
            self._sample_shape: tuple[int, ...] = (self._dim,)
        else:
            self._sample_shape = tuple(int(s) for s in np.ravel(shape_attr))
            if math.prod(self._sample_shape) != self._dim:
                raise self._fail(
                    f"sample_shape {self._sample_shape} has {math.prod(self._sample_shape)} "
                    f"values, but x rows have dim {self._dim}"
                )
        samples = f.get("samples")
        if samples is not None and (
            not isinstance(samples, h5py.Dataset) or samples.shape != (self._n_samples, self._dim)
        ):
            raise self._fail(
                f"/samples must have shape ({self._n_samples}, {self._dim}), "
                f"it has {getattr(samples, 'shape', 'no shape')}"
            )
        logp = f.get("logp")
        if logp is not None and (
            not isinstance(logp, h5py.Dataset) or logp.shape != (self._n_samples,)
        ):
            raise self._fail(
                f"/logp must have shape ({self._n_samples},), it has "
                f"{getattr(logp, 'shape', 'no shape')}"
            )
        # damaged or crafted files: text where numbers belong, or shapes declared far beyond
        # what the file stores (reading them would allocate terabytes)
        numeric = [("trajectories/x", x), ("trajectories/t", t), ("trajectories/step", step)]
        numeric += [("samples", samples), ("logp", logp)]
        for name, ds in numeric:
            if ds is not None:
                _check_numeric(ds, name, self._fail)
        if "nfe" in self._group_attrs:
            try:
                int(self._group_attrs["nfe"])
            except (TypeError, ValueError):
                nfe = _plain(self._group_attrs["nfe"])
                raise self._fail(f"the attribute nfe must be an integer, got {nfe!r}") from None
        self._samples_ds = samples
        self._logp_ds = logp
        try:
            self._normalizer = (
                Normalizer.from_attrs(self._group_attrs)
                if "shift" in self._group_attrs and "scale" in self._group_attrs
                else None
            )
        except (ValueError, TypeError, RuntimeError) as exc:
            raise self._fail(f"its normalisation (shift/scale) is invalid: {exc}") from None

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
                f"({_reason(exc)})"
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
        return _text(self._root_attrs.get("software"))

    @property
    def created(self) -> str | None:
        return _text(self._root_attrs.get("created"))

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
        return _text(self._group_attrs.get("sampler"))

    @property
    def direction(self) -> str | None:
        self._need_trajectory()
        return _text(self._group_attrs.get("direction"))

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
            text = _text(self._read("/config", lambda: group.attrs.get("experiment")))
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
    def _sample_stats(self) -> dict[str, Any] | None:
        """Per-dimension mean/std/min/max of the final samples over their finite values.

        Read in blocks of samples (a file may hold more than fits in memory comfortably);
        blocks are combined with Chan's parallel update, so the std does not cancel.
        """
        if self._samples_ds is None and self._n_saved == 0:
            return None
        dim = self._dim
        count = np.zeros(dim)
        mean = np.zeros(dim)
        m2 = np.zeros(dim)
        low = np.full(dim, np.inf)
        high = np.full(dim, -np.inf)
        nonfinite = 0
        step = max(1, _STATS_BLOCK_BYTES // (8 * dim))
        for start in range(0, self._n_samples, step):
            block = self.samples(particles=slice(start, start + step)).astype(np.float64)
            finite = np.isfinite(block)
            nonfinite += int(block.size - finite.sum())
            nb = finite.sum(0)
            safe = np.where(finite, block, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mb = np.where(nb > 0, safe.sum(0) / np.maximum(nb, 1), 0.0)
                m2b = np.where(finite, (block - mb) ** 2, 0.0).sum(0)
            total = count + nb
            delta = mb - mean
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(total > 0, mean + delta * nb / np.maximum(total, 1), 0.0)
                m2 = m2 + m2b + delta**2 * count * nb / np.maximum(total, 1)
            count = total
            low = np.minimum(low, np.where(finite, block, np.inf).min(0))
            high = np.maximum(high, np.where(finite, block, -np.inf).max(0))
        with np.errstate(invalid="ignore", divide="ignore"):
            std = np.sqrt(m2 / count)

        def listed(a: np.ndarray) -> list[float | None]:
            return [float(v) if math.isfinite(v) else None for v in a]

        return {
            "source": "last_row" if self._samples_ds is None else "samples",
            "mean": listed(np.where(count > 0, mean, np.nan)),
            "std": listed(std),
            "min": listed(low),
            "max": listed(high),
            "nonfinite": nonfinite,
        }

    def summary(self) -> dict[str, Any]:
        """A JSON-able overview: identity, sizes, time range and final-sample statistics."""
        self._need_trajectory()
        times, steps = self.times, self.steps
        out: dict[str, Any] = {
            "path": str(self.path),
            "format": FORMAT,
            "format_version": self.format_version,
            "software": self.software,
            "created": self.created,
            "complete": self.complete,
            "sampler": self.sampler,
            "direction": self.direction,
            "nfe": self.nfe,
            "n_saved": self.n_saved,
            "n_samples": self.n_samples,
            "dim": self.dim,
            "sample_shape": list(self.sample_shape),
            "t_range": [float(times[0]), float(times[-1])] if len(times) else None,
            "step_range": [int(steps[0]), int(steps[-1])] if len(steps) else None,
            "normalizer": None if self._normalizer is None else self._normalizer.mode,
            "has_logp": self.has_logp,
            "file_size": self.path.stat().st_size,
        }
        out["samples"] = self._sample_stats()
        if self.has_logp:
            lp = self.logp()
            finite = lp[np.isfinite(lp)]
            out["logp_mean"] = float(finite.mean()) if len(finite) else None
        return out

    # generic browsing -----------------------------------------------------------------------
    def nodes(self) -> list[dict[str, Any]]:
        """Every group and dataset: name, kind, shape, dtype, chunks, compression and
        attributes (plain values).

        Works for foreign HDF5 files too (opened with ``foreign_ok``).
        """
        out: list[dict[str, Any]] = [
            {
                "name": "/",
                "kind": "group",
                "attrs": {_text(k): _plain(v) for k, v in self._h5.attrs.items()},
            }
        ]

        def visit(name: str, obj: Any) -> None:
            entry: dict[str, Any] = {"name": "/" + name}
            if isinstance(obj, h5py.Dataset):
                entry.update(
                    kind="dataset",
                    shape=list(obj.shape),
                    dtype=str(obj.dtype),
                    chunks=list(obj.chunks) if obj.chunks else None,
                    compression=(
                        None
                        if obj.compression is None
                        else f"{obj.compression} ({obj.compression_opts})"
                        if obj.compression_opts is not None
                        else str(obj.compression)
                    ),
                )
            else:
                entry["kind"] = "group"
            try:
                entry["attrs"] = {_text(k): _plain(v) for k, v in obj.attrs.items()}
            except (OSError, TypeError):
                entry["attrs"] = {}
            out.append(entry)

        self._read("the file's structure", lambda: self._h5.visititems(visit))
        return out

    def read(self, name: str, index: Any = ()) -> np.ndarray:
        """The dataset ``name`` (or ``dataset[index]``) as a numpy array."""
        obj = self._h5.get(name)
        if not isinstance(obj, h5py.Dataset):
            raise WorkbenchError(f"{self.path} has no dataset {name}")
        if isinstance(index, tuple) and not index:
            _check_declared(obj, name.lstrip("/"), self._fail)
        return self._read(name, lambda: np.asarray(obj[index]))

    def iter_rows(self, *, denormalise: bool = False) -> Iterator[np.ndarray]:
        """Every row in order (each read when reached)."""
        for k in range(self.n_saved):
            yield self.row(k, denormalise=denormalise)
