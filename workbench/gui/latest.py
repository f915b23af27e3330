"""Work whose newest request is the only one wanted, one worker thread at a time.

The main window rebuilds its :class:`~workbench.gui.state.ExperimentState` on every config
change (a data file read, a data set sampled, an SDE made) and loads a run's checkpoint after
every training or new checkpoint of a followed run. Either may take from a millisecond to
seconds, so it runs in a :class:`~workbench.gui.workers.Task`; while one runs, newer requests
replace one another, and when it ends only the newest is started. A result that a newer
request has made stale is dropped here, so the window never acts on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6 import QtCore

from workbench.gui.workers import Task, TaskContext

__all__ = ["LatestWork"]


class LatestWork(QtCore.QObject):
    """``request(tag, fn)`` runs ``fn(ctx)`` in a worker; ``done(tag, result)`` or
    ``failed(tag, message, details)`` follow for the newest request only."""

    done = QtCore.Signal(object, object)
    failed = QtCore.Signal(object, str, str)
    busyChanged = QtCore.Signal(bool)

    def __init__(self, name: str, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.name = name
        self.task: Task | None = None
        self._wanted: tuple[Any, Callable[[TaskContext], Any]] | None = None
        self._serial = 0  # of the newest request: a result of an older one is stale

    def request(self, tag: Any, fn: Callable[[TaskContext], Any]) -> None:
        self._serial += 1
        self._wanted = (tag, fn)
        if self.task is None:
            self._start()
        else:
            self.task.cancel()  # work that checks ctx.cancelled() stops early

    def busy(self) -> bool:
        return self.task is not None

    def _start(self) -> None:
        assert self._wanted is not None
        tag, fn = self._wanted
        self._wanted = None
        serial = self._serial
        task = Task(self.name, fn, self)
        task.done.connect(lambda result: self._done(serial, tag, result))
        task.failed.connect(lambda message, details: self._failed(serial, tag, message, details))
        task.finished.connect(lambda: self._finished(task))
        was_idle = self.task is None
        self.task = task
        task.start()
        if was_idle:
            self.busyChanged.emit(True)

    def _done(self, serial: int, tag: Any, result: Any) -> None:
        if serial == self._serial:
            self.done.emit(tag, result)

    def _failed(self, serial: int, tag: Any, message: str, details: str) -> None:
        if serial == self._serial:
            self.failed.emit(tag, message, details)

    def _finished(self, task: Task) -> None:
        task.wait()
        task.deleteLater()
        if task is not self.task:
            return
        if self._wanted is not None:
            self._start()
        else:
            self.task = None
            self.busyChanged.emit(False)

    def shutdown(self) -> None:
        """Drop what is wanted, cancel and join the running worker (closing the window)."""
        self._wanted = None
        self._serial += 1
        task = self.task
        if task is not None:
            task.cancel()
            task.wait()
