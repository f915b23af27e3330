"""The interface every centre tab implements, lazy redrawing (shared with the inspector's
views), and plot export shared by all of them."""

from __future__ import annotations

import html
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyqtgraph as pg
import pyqtgraph.exporters as pg_exporters
from PySide6 import QtCore, QtGui, QtSvg, QtWidgets

from workbench.core.reference import process_key
from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.gui.state import ExperimentState

__all__ = [
    "LazyRedraw",
    "LogAxis",
    "PlotTab",
    "ReferencePlotTab",
    "export_plot_item",
    "apply_palette",
    "follow_palette",
    "plot_colours",
    "locked_view_boxes",
    "set_title",
]


class LogAxis(pg.AxisItem):
    """A log axis that labels only 1, 2 and 5 times a power of ten once the ticks crowd.

    pyqtgraph labels every minor tick of a log axis spanning under about two decades, and the
    labels of 0.05 ... 0.9 then run into one another; the ticks and grid lines stay.
    """

    _KEEP = ("1", "2", "5")

    def logTickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        strings: list[str] = super().logTickStrings(values, scale, spacing)
        if len(values) <= 6:
            return strings
        kept = []
        for value, text in zip(values, strings, strict=True):
            mantissa = f"{10 ** float(value) * scale:.1e}"[0]
            kept.append(text if mantissa in self._KEEP else "")
        return kept


TITLE_CHARS = 34  # a narrow panel's width in characters (three panels side by side)

_PALETTE_EVENTS = (QtCore.QEvent.Type.PaletteChange, QtCore.QEvent.Type.ApplicationPaletteChange)


def plot_colours(palette: QtGui.QPalette | None = None) -> tuple[QtGui.QColor, QtGui.QColor]:
    """(background, foreground) of a plot: the palette's Base and Text, the colours of a
    content area (a list, a text field), so a plot looks like the rest of the application's
    content in a light or a dark theme."""
    pal = palette if palette is not None else QtWidgets.QApplication.palette()
    return pal.color(QtGui.QPalette.ColorRole.Base), pal.color(QtGui.QPalette.ColorRole.Text)


def apply_palette(root: QtWidgets.QWidget) -> None:
    """Colour every pyqtgraph view in ``root`` (itself included) from the application palette.

    Items made later (a tab rebuilding its panels) take pyqtgraph's configured foreground and
    background, which are set here too; existing ones are restyled: the views' backgrounds,
    axes (lines, ticks, labels), titles and legends.
    """
    bg, fg = plot_colours()
    pg.setConfigOptions(background=bg, foreground=fg)
    views = root.findChildren(pg.GraphicsView)
    if isinstance(root, pg.GraphicsView):
        views.append(root)
    legend_bg = QtGui.QColor(bg)
    legend_bg.setAlpha(200)
    for view in views:
        view.setBackground(bg)
        for item in view.scene().items():
            if isinstance(item, pg.AxisItem):
                item.setPen(fg)
                item.setTextPen(fg)
            elif isinstance(item, pg.LabelItem):
                item.setAttr("color", fg.name())
                item.setText(item.text)
            elif isinstance(item, pg.LegendItem):
                item.setBrush(legend_bg)
                item.setLabelTextColor(fg)


def follow_palette(root: QtWidgets.QWidget) -> None:
    """:func:`apply_palette` now and whenever the palette changes (a dark theme switched on)."""
    apply_palette(root)
    if root.property("followsPalette"):
        return
    root.setProperty("followsPalette", True)
    root.installEventFilter(_PaletteFollower(root))


class _PaletteFollower(QtCore.QObject):
    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:
        if event.type() in _PALETTE_EVENTS and isinstance(watched, QtWidgets.QWidget):
            apply_palette(watched)
        return False


def set_title(plot: pg.PlotItem, text: str, width: int = TITLE_CHARS) -> None:
    """A plot's title on at most two lines of about ``width`` characters (the rest elided with
    an ellipsis), with the title row as tall as the text: a long title over a narrow panel is
    wrapped, never cut off at the panel's edges (pyqtgraph gives a title one fixed 30 px row).

    Where the panel is narrower than ``width`` characters the lines are as wide as the panel
    (and :func:`fit_titles` re-wraps them as the panel is resized): pyqtgraph makes a title's
    text width the panel's minimum, and three long titles overlapped their panels in a narrow
    window.
    """
    label = plot.titleLabel
    label.setProperty("fullTitle", text)
    label.setProperty("titleWanted", int(width))
    _fit_title(plot, text, int(width))


def _fit_title(plot: pg.PlotItem, text: str, width: int) -> None:
    """Wrap ``text`` at ``width`` characters, or fewer (>= 8) until its lines fit the panel's
    width once the panel is laid out: measured on the rendered text, whose font the HTML sets."""
    chars = width
    # the panel width this was fitted to: fit_titles re-fits only when it changes (a fit
    # requests a layout, and a layout request calls fit_titles)
    plot.titleLabel.setProperty("titleRoom", float(plot.width()))
    for _ in range(4):
        _wrap_title(plot, text, chars)
        room, used = plot.width(), plot.titleLabel.item.boundingRect().width()
        if room <= 0 or used <= room or chars <= 8:
            return
        chars = max(8, min(chars - 1, int(chars * room / used)))


def _wrap_title(plot: pg.PlotItem, text: str, width: int) -> None:
    lines = textwrap.wrap(text, width) or [""]
    if len(lines) > 2:
        lines = [lines[0], textwrap.shorten(" ".join(lines[1:]), width, placeholder=" …")]
    plot.setTitle("<br>".join(html.escape(line) for line in lines))
    label = plot.titleLabel
    height = _title_height(plot)
    label.setMaximumHeight(height)
    plot.layout.setRowFixedHeight(0, height)
    label.setProperty("titleRowHeight", height)
    label.setToolTip(text)
    label.setMinimumWidth(0)  # the layout, not the text, sets the panel's width


def fit_titles(view: pg.GraphicsView) -> None:
    """Re-wrap every title set by :func:`set_title` in ``view``'s scene to its panel's width,
    then give the panels side by side one title height (the tallest of their titles): a
    two-line title no longer pushes its panel below its neighbours'."""
    rows: dict[tuple[int, int], list[pg.PlotItem]] = {}
    for item in view.scene().items():
        if not isinstance(item, pg.PlotItem):
            continue
        label = item.titleLabel
        text, wanted = label.property("fullTitle"), label.property("titleWanted")
        if text is None or wanted is None:
            continue
        if abs(float(label.property("titleRoom") or 0.0) - item.width()) > 1.0:
            _fit_title(item, str(text), int(wanted))
        key = (id(item.parentLayoutItem()), round(item.pos().y()))
        rows.setdefault(key, []).append(item)
    for plots in rows.values():
        height = max(_title_height(plot) for plot in plots)
        for plot in plots:
            # only a change: setting a row's height requests a layout, which calls this again
            if plot.titleLabel.property("titleRowHeight") != height:
                plot.titleLabel.setProperty("titleRowHeight", height)
                plot.titleLabel.setMaximumHeight(height)
                plot.layout.setRowFixedHeight(0, height)


def _title_height(plot: pg.PlotItem) -> float:
    return max(30.0, plot.titleLabel.item.boundingRect().height() + 4)


def locked_view_boxes(view: pg.GraphicsView) -> list[pg.ViewBox]:
    """The view boxes in ``view``'s scene whose aspect is locked (the 2-D panels)."""
    return [
        item
        for item in view.scene().items()
        if isinstance(item, pg.ViewBox) and item.state.get("aspectLocked")
    ]


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
        self._palette_followed = False

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
        if not self._palette_followed:
            # every plot widget (tabs, inspector views) wears the application's palette
            self._palette_followed = True
            follow_palette(self)
        self.flush_redraw()


_UNBOUNDED = 16777215  # QWIDGETSIZE_MAX


class PlotTab(LazyRedraw):
    """A centre tab. Subclasses override the ``set_*`` hooks they care about; a tab that draws
    lazily implements ``_redraw()`` and calls ``schedule_redraw()`` (:class:`LazyRedraw`)."""

    title = ""
    # the canvas's height is cut to what its 1:1 panels use (:meth:`fit_square_panels`)
    square_panels = False

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
        self.layout_widget.installEventFilter(self)
        self.message = QtWidgets.QLabel()
        self.message.setObjectName(f"{prefix}Message")
        self.message.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.layout_widget)
        self.stack.addWidget(self.message)
        self.readout = QtWidgets.QLabel(" ")
        self.readout.setObjectName(f"{prefix}Readout")
        self.readout.setWordWrap(True)
        self.readout.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        # the readout stays under the plots when square panels leave height to spare
        self.readout.setAlignment(
            QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignTop
        )
        follow_palette(self.layout_widget)

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.readout.setText(" ")
        self.stack.setCurrentWidget(self.message)
        self.stack.setMaximumHeight(_UNBOUNDED)

    def redraw(self) -> None:
        super().redraw()
        if getattr(self, "layout_widget", None) is not None:
            QtCore.QTimer.singleShot(0, self.fit_square_panels)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:
        if watched is getattr(self, "layout_widget", None) and event.type() in (
            QtCore.QEvent.Type.Resize,
            QtCore.QEvent.Type.LayoutRequest,
        ):
            QtCore.QTimer.singleShot(0, self.fit_square_panels)
            QtCore.QTimer.singleShot(0, self._fit_titles)
        return super().eventFilter(watched, event)

    def _fit_titles(self) -> None:
        view = getattr(self, "layout_widget", None)
        if view is not None:
            fit_titles(view)

    def fit_square_panels(self) -> None:
        """Give the plots the height that makes their 1:1 panels square, no more.

        A panel of locked aspect that is taller than wide shows its square window with empty
        axis above and below; the height it cannot use goes below the readout instead. The
        panels' widths fix their side, so one correction settles it (titles and axes keep their
        sizes); a wider window raises the cap again.
        """
        stack = getattr(self, "stack", None)
        if (
            not self.square_panels
            or stack is None
            or stack.currentWidget() is not self.layout_widget
        ):
            return
        boxes = locked_view_boxes(self.layout_widget)
        if not boxes:
            stack.setMaximumHeight(_UNBOUNDED)
            return
        excess = min(box.height() - box.width() for box in boxes)
        if abs(excess) <= 2:
            return
        if excess < 0 and stack.maximumHeight() >= _UNBOUNDED:
            return  # too short for square panels: the window decides
        stack.setMaximumHeight(max(160, int(stack.height() - excess)))


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
