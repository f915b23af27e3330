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

from PySide6 import QtCore, QtWidgets

from workbench.errors import WorkbenchError

__all__ = ["Task", "TaskContext", "TaskProgress"]


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
        #: whoever started it, where that is not its Qt parent (see gui/follow.py)
        self.owner: Any = None

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


class TaskProgress(QtCore.QObject):
    """A status bar's view of the running tasks: "<label>… done/total" with a bar and Cancel.

    ``track(task, label)`` shows the task until its thread ends; a task reporting
    ``(done, total)`` fills the bar, any other report leaves it busy (an indefinite bar). Of
    several tracked tasks the latest still running is shown; Cancel cancels that one.
    """

    def __init__(self, bar: QtWidgets.QStatusBar, name: str) -> None:
        super().__init__(bar)
        self.label = QtWidgets.QLabel()
        self.label.setObjectName(f"{name}Label")
        self.bar = QtWidgets.QProgressBar()
        self.bar.setObjectName(f"{name}Progress")
        self.bar.setMaximumWidth(200)
        self.cancel_button = QtWidgets.QToolButton()
        self.cancel_button.setObjectName(f"{name}Cancel")
        self.cancel_button.setText("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        for widget in (self.label, self.bar, self.cancel_button):
            bar.addPermanentWidget(widget)
        self.tracked: list[tuple[Task, str]] = []
        self._show()

    def track(self, task: Task, label: str) -> None:
        self.tracked.append((task, label))
        task.progress.connect(lambda payload, t=task: self._progress(t, payload))
        task.finished.connect(lambda t=task: self._forget(t))
        self._show()

    def current(self) -> Task | None:
        return self.tracked[-1][0] if self.tracked else None

    def cancel(self) -> None:
        task = self.current()
        if task is not None:
            task.cancel()
            self.label.setText(f"{self.tracked[-1][1]}: stopping…")

    def _progress(self, task: Task, payload: Any) -> None:
        if task is not self.current():
            return
        if (
            isinstance(payload, tuple)
            and len(payload) == 2
            and all(isinstance(v, int) for v in payload)
        ):
            done, total = payload
            self.bar.setRange(0, max(1, total))
            self.bar.setValue(done)
            self.label.setText(f"{self.tracked[-1][1]}… {done}/{total}")

    def _forget(self, task: Task) -> None:
        self.tracked = [(t, label) for t, label in self.tracked if t is not task]
        self._show()

    def _show(self) -> None:
        busy = bool(self.tracked)
        for widget in (self.label, self.bar, self.cancel_button):
            widget.setVisible(busy)
        if busy:
            self.label.setText(f"{self.tracked[-1][1]}…")
            self.bar.setRange(0, 0)  # busy until the task reports (done, total)
