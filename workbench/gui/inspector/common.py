"""What the inspector's views share: the banners, one-line messages, and the lazy view."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6 import QtCore, QtWidgets

from workbench.errors import WorkbenchError
from workbench.gui.plots.base import LazyRedraw
from workbench.io.printable import printable

if TYPE_CHECKING:
    from workbench.gui.inspector.file_view import FileView

HIST_BINS = 120  # most bins per axis (fewer for few samples: about sqrt(n) / 1.5)

_YELLOW = "background:#fff3bf; color:#5c4400; border:1px solid #e0c060; padding:6px;"
_RED = "background:#ffe3e3; color:#8a1010; border:1px solid #e08080; padding:6px;"


def _banner(name: str, style: str) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel()
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setStyleSheet(style)
    label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


def _attr_text(value: Any) -> str:
    """A value for the tooltip: lines kept, other control codes escaped, at most 2000 chars."""
    return printable(value, 2000, keep_lines=True)


class _View(LazyRedraw):
    """One lazy view of a file: ``draw()`` runs only while the view is its file's current tab,
    once per change (a new row, a refresh). Nothing is read from the file before that.

    The laziness is :class:`~workbench.gui.plots.base.LazyRedraw`'s, with "is the current tab"
    for "is seen": a file is opened, and its views drawn, before its window is shown.
    """

    title = ""
    follows_slider = False  # the slider's row changes what it shows

    def __init__(self, fv: FileView) -> None:
        super().__init__()
        self.fv = fv
        self.draws = 0
        self._redraw_owed = True  # not drawn yet

    def draw(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _drawable(self) -> bool:
        return self.fv.current_view() is self

    def _redraw(self) -> None:
        self.draws += 1
        try:
            self.draw()
        except WorkbenchError as exc:
            self.fv.show_read_error(str(exc))
