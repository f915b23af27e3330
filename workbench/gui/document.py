"""The main window's experiment as a document: the title that names it, the ``[*]`` of unsaved
edits, Open recent, and what a drop on the window opens.

The document is the .toml or run folder the experiment was opened from or saved to (none:
"untitled"). Its config is kept as the saved state, and an edit counts as unsaved while the
panels' config differs from it, so an edit put back is no longer one; an invalid value always
is. New, Open and Save make the current config the saved state.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from workbench.config import ExperimentConfig

__all__ = ["DocumentWindow", "droppable"]

_MAX_RECENT = 10


def droppable(url: QtCore.QUrl) -> bool:
    """Whether a dropped URL is something File > Open takes: a local experiment .toml, a run
    folder (any folder: one that is not a run is refused with its reason) or an .h5/.hdf5."""
    if not url.isLocalFile():
        return False
    path = Path(url.toLocalFile())
    return path.is_dir() or path.suffix.lower() in (".toml", ".h5", ".hdf5")


def _is_experiment(path: Path) -> bool:
    """A .toml or a run folder replaces the experiment; a trajectory file only adds a view."""
    return path.is_dir() or path.suffix.lower() not in (".h5", ".hdf5")


class DocumentWindow(QtWidgets.QMainWindow):
    """The document half of :class:`~workbench.gui.main_window.MainWindow`."""

    settings: QtCore.QSettings
    config: ExperimentConfig
    valid: bool
    confirm: Callable[[str], bool]
    recent_menu: QtWidgets.QMenu
    _debounce: QtCore.QTimer
    document: Path | None = None
    _clean_config: ExperimentConfig | None = None

    def open_path(self, path: str | os.PathLike[str]) -> bool:
        raise NotImplementedError

    def new_experiment(self) -> None:
        raise NotImplementedError

    # the title and the unsaved mark ------------------------------------------------------
    def _edited(self) -> None:
        self.setWindowModified(True)  # judged again against the saved config once validated
        self._debounce.start()

    def _set_document(self, path: Path | None) -> None:
        """Name ``path`` (None: untitled) in the title; the current config is its saved state."""
        self.document = path
        self._clean_config = self.config
        self.setWindowTitle(f"{path.name if path is not None else 'untitled'}[*] — SDE Workbench")
        self.setWindowModified(not self.valid)

    def _judge_modified(self, config: ExperimentConfig | None) -> None:
        """A new verdict on the panels: ``config`` is their valid config, None if invalid."""
        self.setWindowModified(config is None or config != self._clean_config)

    def _may_discard(self) -> bool:
        """Before New, or opening another experiment from a menu or a drop: unsaved edits are
        lost only if the user says so."""
        return not self.isWindowModified() or self.confirm(
            "The experiment has unsaved changes. Discard them?"
        )

    def _new_from_user(self) -> None:
        if self._may_discard():
            self.new_experiment()

    def open_from_user(self, path: str | os.PathLike[str]) -> bool:
        """open_path for a menu or a drop: an experiment or run replacing unsaved edits asks."""
        path = Path(path)
        if _is_experiment(path) and not self._may_discard():
            return False
        return self.open_path(path)

    def _opened(self, path: Path) -> None:
        """``path`` was opened: an experiment or run becomes the document; recent files."""
        if _is_experiment(path):
            self._set_document(path)
        self._add_recent(path)

    # drops -------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        if any(droppable(u) for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if droppable(u)]
        for path in paths:
            self.open_from_user(path)
        if paths:
            event.acceptProposedAction()

    # recent files ------------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        value = self.settings.value("recentFiles", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in value] if isinstance(value, list) else []

    def _add_recent(self, path: Path) -> None:
        entry = os.path.realpath(path)  # never raises, a symlink loop included
        recent = [p for p in self.recent_files() if p != entry]
        self.settings.setValue("recentFiles", [entry, *recent][:_MAX_RECENT])
        self._refresh_recent_menu()

    def _refresh_recent_menu(self) -> None:
        """Rebuild Open recent (each time it is shown), forgetting files deleted since."""
        recent = self.recent_files()
        kept = [p for p in recent if Path(p).exists()]
        if kept != recent:
            self.settings.setValue("recentFiles", kept)
        self.recent_menu.clear()
        for entry in kept:
            action = self.recent_menu.addAction(entry)
            action.triggered.connect(lambda _=False, p=entry: self.open_from_user(p))
        self.recent_menu.setEnabled(bool(kept))
