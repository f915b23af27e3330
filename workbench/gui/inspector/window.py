"""The inspector window: one :class:`FileView` per open file, in closable tabs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from workbench.errors import WorkbenchError
from workbench.gui.inspector.common import _RED, _banner, _one_line
from workbench.gui.inspector.file_view import FileView


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
        self.placeholder.setAlignment(QtCore.Qt.AlignCenter)
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
        self.open_action.setShortcut(QtGui.QKeySequence.Open)
        self.refresh_action = menu.addAction("&Refresh", self.refresh)
        self.refresh_action.setShortcut(QtGui.QKeySequence.Refresh)
        self.refresh_action.setShortcutContext(QtCore.Qt.WindowShortcut)
        self.export_action = menu.addAction("&Export samples…", self._export)
        menu.addSeparator()
        menu.addAction("&Close file", lambda: self.close_tab(self.tabs.currentIndex()))
        self.resize(1400, 850)

    def views(self) -> list[FileView]:
        return [self.tabs.widget(i) for i in range(self.tabs.count())]

    def current(self) -> FileView | None:
        w = self.tabs.currentWidget()
        return w if isinstance(w, FileView) else None

    def open(self, path: str | os.PathLike[str]) -> bool:
        """Open ``path`` in a new tab (or switch to it); False, a banner and ``failed`` if not."""
        path = Path(path)
        for i, view in enumerate(self.views()):
            if view.path.resolve() == path.resolve():
                self.tabs.setCurrentIndex(i)
                view.refresh()
                return True
        try:
            allow = self._check_in_child(path)
            view = FileView(path, allow_external=allow)
        except WorkbenchError as exc:
            return self._failed(str(exc))
        except Exception as exc:  # a bad file must never take the app down
            return self._failed(f"{path}: cannot be shown ({type(exc).__name__}: {exc})")
        view.confirm_overwrite = self.confirm_overwrite
        index = self.tabs.addTab(view, path.name)
        self.tabs.setTabToolTip(index, str(path))
        self.tabs.setCurrentIndex(index)
        self.tabs.show()
        self.placeholder.hide()
        self.banner.hide()
        self._peers_changed()
        self.last_error = None
        self.opened.emit(str(path))
        return True

    def _check_in_child(self, path: Path) -> bool:
        """Walk ``path`` with HDF5 in a child process first (WorkbenchError if that crashes,
        hangs or runs out of memory); whether the user allows its references outside its
        folder (False when it has none)."""
        if not self.validate_in_child:
            return False
        from workbench.io.safety import outside_folder, validate_in_child

        report = validate_in_child(path)
        outside = outside_folder(report["external"], path)
        if not outside:
            return False
        return bool(self.allow_external(path, [r.describe() for r in outside]))

    def _ask_external(self, path: Path, references: list[str]) -> bool:
        shown = "\n".join(references[:10]) + ("\n…" if len(references) > 10 else "")
        answer = QtWidgets.QMessageBox.question(
            self,
            "SDE Workbench — external references",
            f"{path.name} refers to files outside its folder:\n\n{shown}\n\nReading those "
            "parts reads the other files. Follow these references?",
            QtWidgets.QMessageBox.Yes | QtWidgets.QMessageBox.No,
            QtWidgets.QMessageBox.No,
        )
        return answer == QtWidgets.QMessageBox.Yes

    def _failed(self, message: str) -> bool:
        self.last_error = _one_line(message)
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
            view.compare_view.set_peers([o.path for o in files if o is not view])

    def shutdown(self) -> None:
        """Close every file, waiting for worker threads (also run by closeEvent)."""
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
            self.open(name)

    def _export(self) -> None:
        view = self.current()
        if view is not None and view.is_trajectory:
            view.open_export_dialog()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
