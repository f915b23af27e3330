"""The interface every centre tab implements, lazy redrawing (shared with the inspector's
views), and plot export shared by all of them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyqtgraph as pg
import pyqtgraph.exporters as pg_exporters
from PySide6 import QtCore, QtGui, QtSvg, QtWidgets

from workbench.core.reference import process_key
from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.gui.state import ExperimentState

__all__ = ["LazyRedraw", "PlotTab", "ReferencePlotTab", "export_plot_item"]


class LazyRedraw(QtWidgets.QWidget):
    """A widget that draws only while it can be seen, once per burst of changes.

    The contract: a subclass implements ``_redraw()`` (draw what it shows from its current
    state) and calls ``schedule_redraw()`` whenever that state changed. While ``_drawable()``
    (by default: the widget is visible) the redraw runs now or, with ``redraw_interval_ms`` > 0,
    on a timer, at most once per interval however many requests came in between. Out of sight
    a request is only remembered (``redraw_pending``) and runs once, when the widget is shown
    (``showEvent``) or when ``flush_redraw()`` asks for it (before reading what is drawn, for
    an export). ``redraw()`` draws now, whether owed or not.

    Why: a hidden tab redrawing on every slider move or training step costs the visible one
    its frame rate, and a burst of changes (a slider dragged, losses streaming in) needs one
    redraw, not one each.
    """

    redraw_interval_ms = 0  # > 0: redraw at most once per this many ms (a throttle)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._redraw_owed = False
        self._redraw_timer: QtCore.QTimer | None = None

    def _redraw(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _drawable(self) -> bool:
        """Whether a redraw asked for now is seen now (otherwise it waits)."""
        return self.isVisible()

    @property
    def redraw_pending(self) -> bool:
        """A redraw is owed: something changed since the last one."""
        return self._redraw_owed

    def schedule_redraw(self) -> None:
        """What is shown changed: redraw now, on the next throttle tick, or once shown."""
        self._redraw_owed = True
        if not self._drawable():
            return
        if self.redraw_interval_ms <= 0:
            self.redraw()
            return
        if self._redraw_timer is None:
            self._redraw_timer = QtCore.QTimer(self)
            self._redraw_timer.setSingleShot(True)
            self._redraw_timer.setInterval(self.redraw_interval_ms)
            self._redraw_timer.timeout.connect(self.flush_redraw)
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def flush_redraw(self) -> None:
        """Run an owed redraw now, seen or not."""
        if self.redraw_pending:
            self.redraw()

    def redraw(self) -> None:
        """Draw now."""
        self._redraw_owed = False
        self._redraw()

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        self.flush_redraw()


class PlotTab(LazyRedraw):
    """A centre tab. Subclasses override the ``set_*`` hooks they care about; a tab that draws
    lazily implements ``_redraw()`` and calls ``schedule_redraw()`` (:class:`LazyRedraw`)."""

    title = ""

    def set_experiment(self, state: ExperimentState) -> None:
        """A new valid experiment."""

    def set_time(self, t: float) -> None:
        """The time slider moved."""

    def set_model(self, model: Any) -> None:
        """A new (EMA) score model on the CPU, or None."""

    def set_trajectory(self, trajectory: Any) -> None:
        """The last sampling run's ``TrajectoryFile``, or None."""

    def set_reference(self, reference: Any) -> None:
        """The reference p_t and score (``workbench.core.reference.Reference``), or None."""

    def export(self, path: str | Path) -> Path:
        """Write the tab's main plot to PNG, SVG or CSV (by the extension)."""
        item = self.export_item()
        if item is None:
            raise WorkbenchError(f"the {self.title} tab has nothing to export")
        return export_plot_item(item, path)

    def export_item(self) -> pg.PlotItem | None:
        return None

    def _build_canvas(self, prefix: str) -> None:
        """A pyqtgraph layout that a centred message can replace, and a readout line below:
        ``layout_widget``, ``message``, ``stack`` and ``readout`` (object names from prefix)."""
        self.layout_widget = pg.GraphicsLayoutWidget()
        self.layout_widget.setObjectName(f"{prefix}Layout")
        self.layout_widget.setBackground("w")
        self.message = QtWidgets.QLabel()
        self.message.setObjectName(f"{prefix}Message")
        self.message.setAlignment(QtCore.Qt.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.layout_widget)
        self.stack.addWidget(self.message)
        self.readout = QtWidgets.QLabel(" ")
        self.readout.setObjectName(f"{prefix}Readout")
        self.readout.setWordWrap(True)
        self.readout.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.readout.setText(" ")
        self.stack.setCurrentWidget(self.message)


class ReferencePlotTab(PlotTab):
    """A tab that draws a reference (truth) beside what was learned or sampled.

    Subclasses keep ``state`` (the ``ExperimentState``), ``view`` (None until built) and
    implement ``_rebuild()``. A reference computed for other data or another SDE (its ``key``
    differs from the experiment's) is never drawn.
    """

    state: ExperimentState | None = None
    view: Any = None
    reference: Any = None

    def _rebuild(self) -> None:
        raise NotImplementedError

    def _fits(self, reference: Any, state: ExperimentState | None) -> bool:
        return reference is not None and state is not None and reference.key == process_key(state)

    def _drop_stale_reference(self, state: ExperimentState) -> None:
        if self.reference is not None and not self._fits(self.reference, state):
            self.reference = None

    def set_reference(self, reference: Any) -> None:
        """The reference p_t and score to draw (None: none); rebuilds the view."""
        if not self._fits(reference, self.state):
            reference = None
        if reference is self.reference and self.view is not None:
            return
        self.reference = reference
        if self.state is not None:
            self._rebuild()


def export_plot_item(item: pg.PlotItem | pg.GraphicsScene, path: str | Path) -> Path:
    """PNG and CSV through pyqtgraph's exporters; SVG through Qt's own SVG generator."""
    path = Path(path)
    suffix = path.suffix.lower()
    writers = {".png": _export_png, ".svg": _export_svg, ".csv": _export_csv}
    if suffix not in writers:
        raise WorkbenchError(
            f"cannot export a plot as {suffix or 'a file without extension'}: "
            "use .png, .svg or .csv"
        )
    try:
        writers[suffix](item, path)
    except OSError as exc:
        raise WorkbenchError(f"could not write {path}: {exc.strerror or exc}") from exc
    if not path.exists():
        raise WorkbenchError(f"could not write {path}")
    return path


def _export_png(item: pg.PlotItem | pg.GraphicsScene, path: Path) -> None:
    exporter = pg_exporters.ImageExporter(item)
    exporter.parameters()["width"] = max(800, int(_scene_rect(item).width()))
    exporter.export(str(path))


def _export_csv(item: pg.PlotItem | pg.GraphicsScene, path: Path) -> None:
    if not isinstance(item, pg.PlotItem):
        raise WorkbenchError("this view has several plots; export it as PNG or SVG")
    pg_exporters.CSVExporter(item).export(str(path))


def _export_svg(item: pg.PlotItem | pg.GraphicsScene, path: Path) -> None:
    # pyqtgraph's SVGExporter cannot parse the path data Qt 6.12 writes; Qt's generator can.
    scene = item if isinstance(item, QtWidgets.QGraphicsScene) else item.scene()
    rect = _scene_rect(item)
    generator = QtSvg.QSvgGenerator()
    generator.setFileName(str(path))
    generator.setSize(rect.size().toSize())
    generator.setViewBox(QtCore.QRectF(0, 0, rect.width(), rect.height()))
    generator.setTitle("SDE Workbench plot")
    painter = QtGui.QPainter(generator)
    try:
        scene.render(painter, QtCore.QRectF(0, 0, rect.width(), rect.height()), rect)
    finally:
        painter.end()


def _scene_rect(item: pg.PlotItem | pg.GraphicsScene) -> QtCore.QRectF:
    # A scene is sized by the view showing it, not by its items: zoomed-in content outside
    # the view would otherwise make a huge (and slow) image.
    if isinstance(item, QtWidgets.QGraphicsScene):
        views = item.views()
        if views:
            return QtCore.QRectF(views[0].viewport().rect())
        return item.sceneRect()
    return item.sceneBoundingRect()
