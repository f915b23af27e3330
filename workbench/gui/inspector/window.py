"""The inspector window: one :class:`FileView` per open file, in closable tabs.

Opening a file walks it with HDF5 in a child process first, then opens it and walks its tree:
half a second or more for a big file, so it runs in a :class:`~workbench.gui.workers.Task`
while the window shows "opening…" and keeps painting; only the widgets are built on the GUI
thread. The views' own long work (statistics, compare) shows its progress and Cancel in the
status bar.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from PySide6 import QtCore, QtGui, QtWidgets

from workbench.errors import WorkbenchError, one_line
from workbench.gui.inspector.common import _RED, _banner
from workbench.gui.inspector.file_view import FileView, open_file
from workbench.gui.workers import Task, TaskContext, TaskProgress


def check_and_open(path: Path, validate: bool, allow: bool | None) -> tuple[str, Any]:
    """The worker's part of opening ``path``: the child-process walk (if ``validate``), then
    open and walk the tree. ``("ask", references)`` when the file refers outside its folder and
    the user was not asked yet (``allow`` None); else ``("opened", open_file(...))``."""
    if validate and allow is None:
        from workbench.io.safety import outside_folder, validate_in_child

        report = validate_in_child(path)
        outside = outside_folder(report["external"], path)
        if outside:
            return "ask", [r.describe() for r in outside]
    try:
        return "opened", open_file(path, bool(allow))
    except WorkbenchError:
        raise
    except Exception as exc:  # a bad file must never take the app down
        raise WorkbenchError(f"{path}: cannot be shown ({type(exc).__name__}: {exc})") from None


class _Opening:
    """One file being opened: its task, and the answer once there is one."""

    def __init__(self, path: Path, generation: int) -> None:
        self.path = path
        self.generation = generation  # the window's, when it began: a shutdown since drops it
        self.result: bool | None = None
        self.loop: QtCore.QEventLoop | None = None

    def finish(self, ok: bool) -> None:
        self.result = ok
        if self.loop is not None:
            self.loop.quit()


class InspectorWindow(QtWidgets.QMainWindow):
    """Trajectory files, one tab each; ``open(path)`` never raises."""

    opened = QtCore.Signal(str)
    failed = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("inspectorWindow")
        self.setWindowTitle("SDE Workbench — Inspector")
        self.confirm_overwrite: Callable[[Path], bool] | None = None
        self.last_error: str | None = None
        self._generation = 0
        # Files are first walked by the HDF5 library in a child process (a crafted file that
        # crashes it costs a banner, not the app); references to files outside the file's
        # folder are followed only if this says yes (tests replace it).
        self.validate_in_child = True
        self.allow_external: Callable[[Path, list[str]], bool] = self._ask_external
        self.banner = _banner("inspectorBanner", _RED)
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setObjectName("inspectorTabs")
        self.tabs.setTabsClosable(True)
        self.tabs.setDocumentMode(True)
        self.tabs.tabCloseRequested.connect(self.close_tab)
        self.placeholder = QtWidgets.QLabel(
            "Open a trajectory file (.h5) with File > Open trajectory file, or drop one on the "
            "main window."
        )
        self.placeholder.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.banner)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.placeholder, 1)
        self.setCentralWidget(central)
        self.tabs.hide()

        menu = self.menuBar().addMenu("&File")
        self.open_action = menu.addAction("&Open…", self._open_dialog)
        self.open_action.setShortcut(QtGui.QKeySequence.StandardKey.Open)
        self.refresh_action = menu.addAction("&Refresh", self.refresh)
        self.refresh_action.setShortcut(QtGui.QKeySequence.StandardKey.Refresh)
        self.refresh_action.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
        self.export_action = menu.addAction("&Export samples…", self._export)
        menu.addSeparator()
        menu.addAction("&Close file", lambda: self.close_tab(self.tabs.currentIndex()))
        self.work = TaskProgress(self.statusBar(), "inspectorWork")
        self.opening: dict[Path, _Opening] = {}
        self.resize(1400, 850)

    def views(self) -> list[FileView]:
        return [
            cast(FileView, self.tabs.widget(i)) for i in range(self.tabs.count())
        ]  # only FileViews are added

    def current(self) -> FileView | None:
        w = self.tabs.currentWidget()
        return w if isinstance(w, FileView) else None

    def open(self, path: str | os.PathLike[str], *, wait: bool = True) -> bool:
        """Open ``path`` in a new tab (or switch to it); False, a banner and ``failed`` if not.

        The file is checked, opened and walked in a worker thread. With ``wait`` this returns
        when that is done, running the event loop meanwhile (the app keeps painting and
        answering); without, it returns True at once and ``opened``/``failed`` tell the end.
        Never raises.
        """
        path = Path(path)
        key = _same_file_key(path)
        for i, view in enumerate(self.views()):
            if _same_file_key(view.path) == key:
                self.tabs.setCurrentIndex(i)
                view.refresh()
                return True
        pending = self.opening.get(key)
        if pending is None:
            pending = self.opening[key] = _Opening(path, self._generation)
            self._start_open(pending, None)
        if not wait:
            return True
        if pending.result is None:
            pending.loop = QtCore.QEventLoop()
            pending.loop.exec()  # quit by finish()
            pending.loop = None
        return bool(pending.result)

    def _start_open(self, pending: _Opening, allow: bool | None) -> None:
        path, validate = pending.path, self.validate_in_child

        def work(_ctx: TaskContext) -> tuple[str, Any]:
            return check_and_open(path, validate, allow)

        task = Task("inspector-open", work, self)
        task.done.connect(lambda result: self._opened(pending, result))
        task.failed.connect(lambda message, _details: self._open_failed(pending, message))
        task.finished.connect(task.deleteLater)
        self.work.track(task, f"opening {path.name}")
        self.placeholder.setText(f"opening {path.name}…")
        task.start()

    def _open_failed(self, pending: _Opening, message: str) -> None:
        if pending.generation != self._generation:
            return
        self.opening.pop(_same_file_key(pending.path), None)
        pending.finish(self._failed(message))

    def _opened(self, pending: _Opening, result: tuple[str, Any]) -> None:
        path = pending.path
        kind, value = result
        if kind == "ask":
            self._start_open(pending, bool(self.allow_external(path, value)))
            return
        if pending.generation != self._generation:
            value[0].close()  # the window was shut while the file opened
            return pending.finish(False)
        self.opening.pop(_same_file_key(path), None)
        try:
            view = FileView(path, opened=value)
        except WorkbenchError as exc:
            value[0].close()
            return pending.finish(self._failed(str(exc)))
        except Exception as exc:  # a bad file must never take the app down
            value[0].close()
            return pending.finish(
                self._failed(f"{path}: cannot be shown ({type(exc).__name__}: {exc})")
            )
        view.confirm_overwrite = self.confirm_overwrite
        view.taskStarted.connect(self.work.track)
        index = self.tabs.addTab(view, path.name)
        self.tabs.setTabToolTip(index, str(path))
        self.tabs.setCurrentIndex(index)
        self.tabs.show()
        self.placeholder.hide()
        self.banner.hide()
        self._peers_changed()
        self.last_error = None
        self.opened.emit(str(path))
        pending.finish(True)

    def _ask_external(self, path: Path, references: list[str]) -> bool:
        shown = "\n".join(references[:10]) + ("\n…" if len(references) > 10 else "")
        answer = QtWidgets.QMessageBox.question(
            self,
            "SDE Workbench — external references",
            f"{path.name} refers to files outside its folder:\n\n{shown}\n\nReading those "
            "parts reads the other files. Follow these references?",
            QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
            QtWidgets.QMessageBox.StandardButton.No,
        )
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    def _failed(self, message: str) -> bool:
        self.last_error = one_line(message)
        self.banner.setText(self.last_error)
        self.banner.show()
        self.failed.emit(self.last_error)
        return False

    def close_tab(self, index: int) -> None:
        view = self.tabs.widget(index)
        if isinstance(view, FileView):
            self.tabs.removeTab(index)
            view.close_file()
            view.deleteLater()
        if self.tabs.count() == 0:
            self.tabs.hide()
            self.placeholder.show()
        self._peers_changed()

    def _peers_changed(self) -> None:
        """Offer every open trajectory file to the others' Compare view."""
        files = [v for v in self.views() if isinstance(v, FileView) and v.is_trajectory]
        for view in files:
            view.set_peers([o.path for o in files if o is not view])

    def shutdown(self) -> None:
        """Close every file, waiting for worker threads (also run by closeEvent)."""
        self._generation += 1  # opens under way are dropped when they end
        for task in self.findChildren(Task):
            task.cancel()
            task.wait()
        for pending in self.opening.values():
            pending.finish(False)
        self.opening.clear()
        while self.tabs.count():
            self.close_tab(0)

    def refresh(self) -> None:
        view = self.current()
        if view is not None:
            view.refresh()

    def _open_dialog(self) -> None:
        name, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open trajectory file", "", "HDF5 files (*.h5 *.hdf5);;All files (*)"
        )
        if name:
            self.open(name, wait=False)

    def _export(self) -> None:
        view = self.current()
        if view is not None and view.is_trajectory:
            view.open_export_dialog()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)


def _same_file_key(path: Path) -> Path:
    """The path with links resolved, to tell one file opened twice; never raises (a symlink
    loop, which ``Path.resolve`` turns into a RuntimeError, stays as it is, and the open then
    reports it in one line)."""
    return Path(os.path.realpath(path))
