"""Following a run folder that another process is writing (``sde-workbench train``, torchrun).

:class:`RunFollower` polls the folder on a QTimer (a poll is a couple of ``stat`` calls; file
system watchers miss the atomic replace by which checkpoints and rewritten metrics arrive, and
do not work on every network file system):

- ``metrics.csv`` is read incrementally from the byte offset where the last read stopped, and
  only up to the last complete line: a row the writer has half flushed is left for the next
  poll. New rows are emitted as columns (``rowsAdded``). If the file shrinks or is replaced
  (a resumed run drops the rows past its checkpoint), ``metricsReset`` is emitted and the whole
  file is read again.
- ``checkpoint.pt`` is loaded when its (inode, size, mtime) changes and emitted with
  ``checkpointChanged`` once it loads cleanly; a checkpoint that does not load yet (torn, or
  mid-replace on a file system without atomic rename) is retried on the next poll. The load
  runs in a worker thread (a checkpoint of a large network takes far longer than a frame), one
  at a time; a change seen while one is under way is picked up by the next poll.

:func:`follow_in_window` wires one to the main window: the loss curve grows, and the model is
reloaded from each new checkpoint.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6 import QtCore

from workbench.errors import WorkbenchError
from workbench.gui.workers import Task
from workbench.io.runs import METRICS_COLUMNS, RunFolder, metrics_rows

__all__ = ["CheckpointInfo", "RunFollower", "follow_in_window"]

# Load threads hold themselves here until their ``finished`` reaches the GUI thread: a QThread
# must not be destroyed while it runs, and a follower may be dropped while its load finishes.
_RUNNING: set[Task] = set()


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint that has just appeared or changed."""

    path: Path
    step: int
    state: dict[str, Any]


class RunFollower(QtCore.QObject):
    """Polls a run folder and emits what is new in it.

    ``RunFollower(path).start()``; ``poll()`` does one check at once (tests and a manual
    refresh). The folder need not exist yet: the follower waits for it.
    """

    rowsAdded = QtCore.Signal(object)  # dict[str, list[float]]: the new rows, by column
    metricsReset = QtCore.Signal()  # metrics.csv was replaced or shrank: start the curve again
    checkpointChanged = QtCore.Signal(object)  # CheckpointInfo
    failed = QtCore.Signal(str)  # a one-line reason; following goes on

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        interval_ms: int = 250,
        load_checkpoints: bool = True,
        parent: QtCore.QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.folder = RunFolder(Path(path))
        self.load_checkpoints = load_checkpoints
        #: every row read so far, by column
        self.columns: dict[str, list[float]] = {name: [] for name in METRICS_COLUMNS}
        self.checkpoint_step: int | None = None
        self._offset = 0
        self._identity: tuple[int, int] | None = None  # (device, inode) of metrics.csv
        self._header_ok = False
        self._checkpoint_key: tuple[int, int, int] | None = None
        self._last_error = ""
        self._loading: Task | None = None  # the checkpoint load under way
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.poll)

    @property
    def path(self) -> Path:
        return self.folder.path

    def start(self) -> None:
        self.poll()
        self._timer.start()

    def stop(self) -> None:
        """Stop polling; a checkpoint load under way is waited for (it is short, and its
        thread must not outlive the follower)."""
        self._timer.stop()
        for task in list(_RUNNING):
            if task.owner is self:
                task.wait()

    # ------------------------------------------------------------------------------- polling
    def poll(self) -> int:
        """One check of the folder; returns the number of new metric rows."""
        new = 0
        try:
            new = self._poll_metrics()
            if self.load_checkpoints:
                self._poll_checkpoint()
        except WorkbenchError as exc:
            self._report(str(exc))
        return new

    def _report(self, message: str) -> None:
        if message != self._last_error:  # once per distinct problem, not every 250 ms
            self._last_error = message
            self.failed.emit(message)

    def _reset(self) -> None:
        self._offset = 0
        self._header_ok = False
        self.columns = {name: [] for name in METRICS_COLUMNS}
        self.metricsReset.emit()

    def _poll_metrics(self) -> int:
        path = self.folder.metrics_path
        try:
            st = path.stat()
        except FileNotFoundError:
            return 0
        identity = (st.st_dev, st.st_ino)
        if self._identity is not None and (identity != self._identity or st.st_size < self._offset):
            self._reset()
        self._identity = identity
        if st.st_size == self._offset:
            return 0
        with open(path, "rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read(st.st_size - self._offset)
        end = chunk.rfind(b"\n")
        if end < 0:
            return 0  # not one complete line yet
        complete = chunk[: end + 1]
        self._offset += len(complete)
        lines = complete.decode("utf-8", errors="replace").splitlines()
        if not self._header_ok:
            header = next(csv.reader([lines.pop(0)]), [])
            if header[: len(METRICS_COLUMNS)] != list(METRICS_COLUMNS):
                raise WorkbenchError(
                    f"{path} does not start with the header {','.join(METRICS_COLUMNS)}"
                )
            self._header_ok = True
        added = metrics_rows(csv.reader(lines))
        n = len(added["step"])
        if n:
            for name in METRICS_COLUMNS:
                self.columns[name].extend(added[name])
            self.rowsAdded.emit(added)
        return n

    def _poll_checkpoint(self) -> None:
        path = self.folder.checkpoint_path
        try:
            st = path.stat()
        except FileNotFoundError:
            return
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key == self._checkpoint_key or self._loading is not None:
            return
        folder = self.folder

        def load(_ctx: Any) -> tuple[str, Any]:
            try:
                return "ok", folder.load_checkpoint()
            except (WorkbenchError, OSError, RuntimeError, EOFError) as exc:
                return "unreadable", str(exc)

        task = Task("checkpoint", load)
        task.owner = self
        task.done.connect(lambda outcome: self._loaded(task, key, path, outcome))
        task.failed.connect(lambda message, _details: self._load_failed(task, message))
        task.finished.connect(lambda: _RUNNING.discard(task))
        _RUNNING.add(task)
        self._loading = task
        task.start()

    def _loaded(self, task: Task, key: tuple[int, int, int], path: Path, outcome: Any) -> None:
        if task is not self._loading:
            return
        self._loading = None
        kind, value = outcome
        if kind != "ok":
            # most likely caught mid-write: the key is not stored, so the next poll retries
            self._report(f"checkpoint {path} is not readable yet: {value}")
            return
        self._checkpoint_key = key
        self._last_error = ""
        self.checkpoint_step = int(value.get("step", 0))
        self.checkpointChanged.emit(CheckpointInfo(path, self.checkpoint_step, value))

    def _load_failed(self, task: Task, message: str) -> None:
        if task is self._loading:
            self._loading = None
            self._report(f"checkpoint {self.folder.checkpoint_path}: {message}")


def follow_in_window(
    window: Any, path: str | os.PathLike[str], *, interval_ms: int = 250
) -> RunFollower:
    """Attach ``window`` (a :class:`~workbench.gui.main_window.MainWindow`) to a run folder:
    its experiment is shown once the folder's config.toml exists, the Loss tab gets a new curve
    that grows with metrics.csv, and the model is reloaded from every new checkpoint.

    The follower is a child of the window (stopped with it); keep the return value to stop it
    earlier.
    """
    path = Path(path)
    follower = RunFollower(path, interval_ms=interval_ms, parent=window)
    state = {"config_shown": False}

    def show_config() -> None:
        if not state["config_shown"] and RunFolder.is_run_folder(path):
            try:
                window.set_config(RunFolder(path).load_config())
            except WorkbenchError as exc:
                window.log(f"following {path}: {exc}")
            state["config_shown"] = True

    def on_rows(rows: dict[str, list[float]]) -> None:
        show_config()
        window.loss_tab.add_points(rows["step"], rows["wall_time"], rows["loss"])

    def on_checkpoint(info: CheckpointInfo) -> None:
        show_config()
        window.run_dir = path
        window.load_run_model(path, info.state)  # read once, by the follower's worker
        window.log(f"following {path}: checkpoint at step {info.step}")

    window.loss_tab.start_run(path.name)
    follower.rowsAdded.connect(on_rows)
    follower.metricsReset.connect(lambda: window.loss_tab.start_run(path.name))
    follower.checkpointChanged.connect(on_checkpoint)
    follower.failed.connect(lambda message: window.log(f"following {path}: {message}"))
    window.log(f"following run folder {path}")
    scrubber = getattr(window, "snapshots", None)
    if scrubber is not None:  # new snapshots extend the training-step slider as they come
        scrubber.set_run(path, follow=True)
    follower.start()
    return follower
