"""The Score field tab (placeholder until the full view lands)."""

from __future__ import annotations

from PySide6 import QtWidgets

from workbench.gui.plots.base import PlotTab


class ScoreFieldTab(PlotTab):
    title = "Score field"

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("scoreFieldPlot")
