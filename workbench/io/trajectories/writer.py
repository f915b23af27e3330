"""Writing trajectory files: :class:`TrajectoryWriter` appends rows from a background thread.

The thread flushes after every row, so a killed writer leaves a file that opens, holds every
flushed row and says ``complete = false``; what the file holds is :mod:`.layout`'s. While it
writes and flushes a row the writer holds an exclusive ``flock`` on the file
(:mod:`workbench.io.live`), so a reader holding ``writes_paused`` never sees a torn row.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from workbench.core.data import Normalizer
from workbench.errors import WorkbenchError
from workbench.io.live import fcntl, lock_handle
from workbench.io.paths import check_destination, replace_into
from workbench.io.trajectories.layout import (
    COMPRESSIONS,
    DIRECTIONS,
    LIBVER,
    chunk_shape,
    create_layout,
    reason,
)

__all__ = ["MAX_PENDING_BYTES", "TrajectoryWriter"]

# Rows waiting for the writer thread, in bytes: append() blocks only once this much is queued.
# 128 MiB holds 160 rows of 100000 two-dimensional particles, or 10 rows of 3000 CIFAR-sized
# images; a row larger than the bound on its own is still accepted when the queue is empty.
MAX_PENDING_BYTES = 128 * 1024 * 1024
_OVERWRITE_HINT = "choose another name or allow overwriting it"


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
        extra_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        # written on /trajectories beside sampler and nfe (e.g. class_label and guidance)
        self._extra_attrs = dict(extra_attrs or {})
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
                f"cannot create the folder {self.path.parent}: {reason(exc)}"
            ) from None
        if not os.path.lexists(self.path):
            return self.path  # created exclusively by _create: a symlink appearing there fails
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
            )
        except OSError as exc:
            raise WorkbenchError(f"cannot write in {self.path.parent}: {reason(exc)}") from None
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
                libver=LIBVER,
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
            raise WorkbenchError(f"cannot create {self.path}: {reason(exc)}") from None
        try:
            create_layout(
                f,
                n_samples=self.n_samples,
                sample_shape=self.sample_shape,
                chunks=self.chunks,
                normalizer=self.normalizer,
                config_toml=config_toml,
                sampler=sampler,
                direction=direction,
                compression=compression,
            )
            for name, value in self._extra_attrs.items():
                f["trajectories"].attrs[name] = value
            f.flush()
        except BaseException as exc:
            f.close()
            if self._replacing:
                self._discard_temporary()
            else:
                self.path.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise WorkbenchError(f"cannot write {self.path}: {reason(exc)}") from None
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
            if locked and fd is not None:  # locked implies fd
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
            f"could not write row {self._failed_row} of {self.path}: {reason(exc)}; {kept}"
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
                f"could not finish {self.path}: {reason(exc)}; it {kept}"
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
                f"could not replace {self.path}: {reason(exc)}; the old file is unchanged"
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
