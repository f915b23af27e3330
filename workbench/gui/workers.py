"""Long work off the GUI thread: a plain function run in a QThread, reporting through signals.

The function receives a :class:`TaskContext` with ``report(obj)`` (queued to the GUI thread as
``progress``) and ``cancelled()`` (the flag Stop sets). What it returns arrives as ``done``; a
:class:`~workbench.errors.WorkbenchError` arrives as ``failed`` with its one-line message; any
other exception as ``failed`` with the traceback text, so the app shows it and keeps running.
Reports are queued, never awaited: the worker never waits on a widget.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore

from workbench.errors import WorkbenchError

__all__ = ["Task", "TaskContext"]


class TaskContext:
    """What the running function sees: report progress, ask whether to stop."""

    def __init__(self, task: Task) -> None:
        self._task = task

    def report(self, payload: Any) -> None:
        self._task.progress.emit(payload)

    def cancelled(self) -> bool:
        return self._task.cancel_event.is_set()


class Task(QtCore.QThread):
    """Runs ``fn(ctx)`` once in its own thread."""

    progress = QtCore.Signal(object)
    done = QtCore.Signal(object)
    failed = QtCore.Signal(str, str)  # one-line message, details (traceback or "")

    def __init__(
        self, name: str, fn: Callable[[TaskContext], Any], parent: QtCore.QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.name = name
        self._fn = fn
        self.cancel_event = threading.Event()
        self.result: Any = None
        self.error: str | None = None

    def cancel(self) -> None:
        self.cancel_event.set()

    def run(self) -> None:  # runs in the worker thread
        try:
            self.result = self._fn(TaskContext(self))
        except WorkbenchError as exc:
            self.error = " ".join(str(exc).split())
            self.failed.emit(self.error, "")
        except Exception as exc:  # a bug: shown with its traceback, never kills the app
            self.error = f"{type(exc).__name__}: {exc}"
            self.failed.emit(" ".join(self.error.split()), traceback.format_exc())
        else:
            self.done.emit(self.result)
