"""Recording sampler rows without stalling the sampler.

A row of states lives on the sampling device; writing it means a device-to-host copy and an
HDF5 append. Done inline, the copy waits for the device to finish every queued step (a host
synchronisation that drains the GPU's queue) and the append waits for the disk. The
:class:`RowRecorder` takes both off the sampling loop:

* on CUDA, ``record()`` enqueues a ``non_blocking`` copy of the row into a pinned host buffer
  on a side stream (ordered after the step that produced the row by ``wait_stream``), records
  an event, and hands (row, event) to the recorder thread; the sampling thread goes straight
  on to launch the next step;
* the recorder thread waits for the event (the copy only, not the later steps) and gives the
  row to :class:`~workbench.io.trajectories.TrajectoryWriter`, whose own thread writes HDF5;
* on the CPU the copy is a plain memcpy done in ``record()`` (the state may be overwritten
  by the next step), the rest is the same.

Pinned buffers are reused from a pool of ``depth``: when the disk falls that far behind,
``record()`` waits for a buffer (back-pressure, bounded memory) rather than queueing without
limit. An error in either thread (a full disk) is raised by the next ``record()`` or by
``close()``, as the writer's own WorkbenchError; ``close()`` and ``abort()`` join the thread.
"""

from __future__ import annotations

import math
import queue
import threading
from typing import Any

import torch
from torch import Tensor

from workbench.io.trajectories import TrajectoryWriter

__all__ = ["RowRecorder"]

#: rows in flight between the sampler and the writer; each holds one pinned copy of a row
DEFAULT_DEPTH = 4
_POLL_S = 0.05  # how often a waiting record() looks whether the recorder thread has failed


class RowRecorder:
    """Copies rows of states off the device and feeds ``writer``, from a thread of its own."""

    def __init__(
        self, writer: TrajectoryWriter, device: torch.device | str, depth: int = DEFAULT_DEPTH
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.writer = writer
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.shape = (writer.n_samples, writer.dim)
        self._free: queue.Queue[Tensor] = queue.Queue()
        for _ in range(depth):
            self._free.put(torch.empty(self.shape, dtype=torch.float32, pin_memory=self.cuda))
        self._rows: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._stream = torch.cuda.Stream(self.device) if self.cuda else None
        self._error: BaseException | None = None
        self._closed = False
        self.rows_recorded = 0
        self._thread = threading.Thread(
            target=self._run, name=f"row recorder {writer.path.name}", daemon=True
        )
        self._thread.start()

    # the recorder thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._rows.get()
            if item is None:
                return
            step, t, buf, event, _source = item
            try:
                if self._error is None:
                    if event is not None:
                        event.synchronize()  # this row's copy only, not the later steps
                    self.writer.append(step, t, buf)
            except BaseException as exc:  # raised by the sampling thread's next call
                self._error = exc
            finally:
                item = _source = None  # the device row may be reused once its copy is done
                self._free.put(buf)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _take_buffer(self) -> Tensor:
        while True:
            self._raise_if_failed()
            try:
                return self._free.get(timeout=_POLL_S)
            except queue.Empty:
                continue

    # the sampling thread ----------------------------------------------------------------------
    def record(self, step: int, t: float, x: Tensor) -> None:
        """Queue row (step, t, x); returns without waiting for the device or the disk."""
        if self._closed:
            raise RuntimeError("the recorder is closed")
        rows = x.detach().reshape(self.shape[0], -1)
        if math.prod(rows.shape) != math.prod(self.shape):
            raise ValueError(f"a row must have {self.shape} values, got shape {tuple(x.shape)}")
        buf = self._take_buffer()
        event = None
        source = None
        if self.cuda and rows.is_cuda:
            producer = torch.cuda.current_stream(rows.device)
            self._stream.wait_stream(producer)  # type: ignore[union-attr]
            with torch.cuda.stream(self._stream):
                buf.copy_(rows, non_blocking=True)
                event = torch.cuda.Event()
                event.record(self._stream)
            # keep the caching allocator from handing the row's memory to a later step
            # before the side stream has read it, and order the producer's later kernels
            # (a solver may update its state in place) after the copy: a wait on the
            # device, not on the host
            rows.record_stream(self._stream)  # type: ignore[arg-type]
            producer.wait_event(event)
            source = rows
        else:
            buf.copy_(rows)
        self._rows.put((int(step), float(t), buf, event, source))
        self.rows_recorded += 1

    def _stop(self) -> None:
        if not self._closed:
            self._closed = True
            self._rows.put(None)
            self._thread.join()

    def close(self) -> None:
        """Wait until every row is with the writer; raise the first error of the thread."""
        self._stop()
        self._raise_if_failed()

    def abort(self) -> None:
        """Stop and join the thread; rows already queued still reach the writer. No raise."""
        self._stop()

    def __enter__(self) -> RowRecorder:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
