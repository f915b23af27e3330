"""Draw mode of the Data panel: a canvas (``drawCanvas``) on which clicks place points and a
brush sprays them, and "Use as data", which saves the drawing as an .npy file and makes it
the experiment's ``file`` data set.

The canvas draws in data units on a fixed, editable range ([-4, 4] in each coordinate by
default), with one unit as long across as up in 2-D; in 1-D clicks place points along x and
the plot shows their histogram over a rug of the points. The mouse is read from the plot's
viewport (press, move, release), so the view neither pans nor zooms while one draws. The
points themselves, the brush and undo are :class:`workbench.core.drawing.Drawing`.

Where the file goes: beside the experiment's .toml (``<stem>-drawn.npy``) when it has one,
else where the user chooses in a file dialog (proposed: the runs folder). An automatic name
never replaces a file: the first free ``-2``, ``-3``... is taken; a name chosen in the dialog
replaces a file only after the dialog asked.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from workbench.core.drawing import Drawing, drawing_problem
from workbench.errors import ConfigError, WorkbenchError
from workbench.gui.plots.base import follow_palette

if TYPE_CHECKING:
    from workbench.gui.main_window import MainWindow

__all__ = ["DEFAULT_RANGE", "DrawCanvas", "DrawDialog", "open_draw_dialog", "suggested_path"]

DEFAULT_RANGE = (-4.0, 4.0)
_HIST_BINS = 40
_MOUSE = (
    QtCore.QEvent.Type.MouseButtonPress,
    QtCore.QEvent.Type.MouseMove,
    QtCore.QEvent.Type.MouseButtonRelease,
    QtCore.QEvent.Type.MouseButtonDblClick,
    QtCore.QEvent.Type.Wheel,
)


def _spin(
    value: float, low: float, high: float, step: float, decimals: int = 2
) -> QtWidgets.QDoubleSpinBox:
    box = QtWidgets.QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    box.setKeyboardTracking(False)
    return box


class DrawCanvas(QtWidgets.QWidget):
    """The drawing surface and its tools; ``useRequested`` fires on "Use as data"."""

    pointsChanged = QtCore.Signal(int)
    useRequested = QtCore.Signal()

    def __init__(
        self, dim: int = 2, seed: int = 0, parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("drawCanvas")
        self.drawing = Drawing(dim, seed)
        self.confirm: Callable[[str], bool] = self._ask
        self._pressed = False

        self.dim_combo = QtWidgets.QComboBox()
        self.dim_combo.setObjectName("drawDimension")
        self.dim_combo.addItem("2-D", 2)
        self.dim_combo.addItem("1-D", 1)
        self.dim_combo.setCurrentIndex(0 if dim == 2 else 1)
        self.dim_combo.setToolTip("draw 2-D points, or 1-D points along x (clears the drawing)")
        self.dim_combo.currentIndexChanged.connect(self._dim_changed)

        self.points_tool = QtWidgets.QToolButton()
        self.points_tool.setObjectName("drawPointsTool")
        self.points_tool.setText("Points")
        self.points_tool.setToolTip("each click places one point")
        self.brush_tool = QtWidgets.QToolButton()
        self.brush_tool.setObjectName("drawBrushTool")
        self.brush_tool.setText("Brush")
        self.brush_tool.setToolTip(
            "drag to spray points: a Gaussian of the brush size around the path, at a steady "
            "number of points per unit of path"
        )
        tools = QtWidgets.QButtonGroup(self)
        for button in (self.points_tool, self.brush_tool):
            button.setCheckable(True)
            tools.addButton(button)
        self.points_tool.setChecked(True)

        self.brush_size = _spin(0.3, 0.0, 100.0, 0.05)
        self.brush_size.setObjectName("drawBrushSize")
        self.brush_size.setToolTip("brush size: the standard deviation of the spray, data units")
        self.brush_density = _spin(20.0, 0.1, 10_000.0, 5.0, 1)
        self.brush_density.setObjectName("drawBrushDensity")
        self.brush_density.setToolTip("points the brush lays per data unit of path")

        low, high = DEFAULT_RANGE
        self.range_boxes = {}
        for name in ("x_min", "x_max", "y_min", "y_max"):
            box = _spin(low if name.endswith("min") else high, -1e6, 1e6, 0.5)
            box.setObjectName("draw" + "".join(p.capitalize() for p in name.split("_")))
            box.valueChanged.connect(self._range_changed)
            self.range_boxes[name] = box

        self.undo_button = QtWidgets.QPushButton("Undo")
        self.undo_button.setObjectName("drawUndo")
        self.undo_button.setToolTip("take back the last stroke or Clear (Ctrl+Z)")
        self.undo_button.clicked.connect(self.undo)
        undo_shortcut = QtGui.QShortcut(QtGui.QKeySequence.StandardKey.Undo, self)
        undo_shortcut.setContext(QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut)
        undo_shortcut.activated.connect(self.undo)
        self.clear_button = QtWidgets.QPushButton("Clear")
        self.clear_button.setObjectName("drawClear")
        self.clear_button.clicked.connect(self.clear)
        self.count_label = QtWidgets.QLabel()
        self.count_label.setObjectName("drawCount")
        self.use_button = QtWidgets.QPushButton("Use as data")
        self.use_button.setObjectName("drawUse")
        self.use_button.setToolTip(
            "save the points as an .npy data file and make it the experiment's data"
        )
        self.use_button.clicked.connect(self.useRequested)
        self.message = QtWidgets.QLabel()
        self.message.setObjectName("drawMessage")
        self.message.setWordWrap(True)

        self.plot = pg.PlotWidget()
        self.plot.setObjectName("drawPlot")
        self.plot.setMinimumSize(360, 300)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.plot.getPlotItem().getViewBox().setMouseEnabled(False, False)
        self.plot.viewport().installEventFilter(self)
        self.plot.viewport().setCursor(QtCore.Qt.CursorShape.CrossCursor)
        self.scatter = pg.ScatterPlotItem(size=5, pen=None, brush=pg.mkBrush(31, 119, 180, 170))
        self.histogram = pg.PlotDataItem(
            stepMode="center", fillLevel=0, brush=pg.mkBrush(31, 119, 180, 90)
        )

        tools_row = QtWidgets.QHBoxLayout()
        tools_row.addWidget(self.dim_combo)
        tools_row.addWidget(self.points_tool)
        tools_row.addWidget(self.brush_tool)
        tools_row.addWidget(QtWidgets.QLabel("size"))
        tools_row.addWidget(self.brush_size)
        tools_row.addWidget(QtWidgets.QLabel("per unit"))
        tools_row.addWidget(self.brush_density)
        tools_row.addStretch(1)
        range_row = QtWidgets.QHBoxLayout()
        self._y_widgets: list[QtWidgets.QWidget] = []
        for axis in ("x", "y"):
            label = QtWidgets.QLabel(f"{axis} from")
            to = QtWidgets.QLabel("to")
            range_row.addWidget(label)
            range_row.addWidget(self.range_boxes[f"{axis}_min"])
            range_row.addWidget(to)
            range_row.addWidget(self.range_boxes[f"{axis}_max"])
            if axis == "y":
                self._y_widgets = [label, to, self.range_boxes["y_min"], self.range_boxes["y_max"]]
        range_row.addStretch(1)
        action_row = QtWidgets.QHBoxLayout()
        action_row.addWidget(self.undo_button)
        action_row.addWidget(self.clear_button)
        action_row.addWidget(self.count_label, 1)
        action_row.addWidget(self.use_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(tools_row)
        layout.addLayout(range_row)
        layout.addWidget(self.plot, 1)
        layout.addLayout(action_row)
        layout.addWidget(self.message)
        follow_palette(self)
        self._setup_plot()

    # ---------------------------------------------------------------------------- state
    @property
    def dim(self) -> int:
        return self.drawing.dim

    @property
    def tool(self) -> str:
        return "brush" if self.brush_tool.isChecked() else "points"

    def set_tool(self, tool: str) -> None:
        (self.brush_tool if tool == "brush" else self.points_tool).setChecked(True)

    def points(self) -> np.ndarray:
        """The drawn points, float64 (n, dim), in data units."""
        return self.drawing.points()

    def set_message(self, text: str) -> None:
        self.message.setText(text)

    def data_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((x_min, x_max), (y_min, y_max)) of the canvas, each ordered and non-empty."""

        def ordered(a: float, b: float) -> tuple[float, float]:
            lo, hi = min(a, b), max(a, b)
            return (lo, hi) if hi > lo else (lo - 1.0, lo + 1.0)

        b = {k: box.value() for k, box in self.range_boxes.items()}
        return ordered(b["x_min"], b["x_max"]), ordered(b["y_min"], b["y_max"])

    # ---------------------------------------------------------------------------- plot
    def _setup_plot(self) -> None:
        item = self.plot.getPlotItem()
        item.clear()
        item.addItem(self.scatter)
        item.showGrid(x=True, y=True, alpha=0.25)
        # a fixed width: tick labels of another length (the 1-D counts growing) would otherwise
        # shift the plot sideways under the pointer between two clicks
        item.getAxis("left").setWidth(48)
        item.setLabel("bottom", "x₁" if self.dim == 2 else "x", units=None)
        if self.dim == 2:
            item.setLabel("left", "x₂")
            item.setAspectLocked(True, 1.0)
        else:
            item.addItem(self.histogram)
            item.setLabel("left", "points per bin")
            item.setAspectLocked(False)
        for widget in self._y_widgets:
            widget.setVisible(self.dim == 2)
        self._range_changed()

    def _range_changed(self) -> None:
        (x0, x1), (y0, y1) = self.data_range()
        vb = self.plot.getPlotItem().getViewBox()
        vb.disableAutoRange()
        if self.dim == 2:
            vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        else:
            vb.setXRange(x0, x1, padding=0)
        self._redraw()

    def _redraw(self) -> None:
        pts = self.points()
        n = pts.shape[0]
        if self.dim == 2:
            self.scatter.setData(pts[:, 0], pts[:, 1]) if n else self.scatter.clear()
        else:
            (x0, x1), _ = self.data_range()
            counts, edges = np.histogram(pts[:, 0], bins=_HIST_BINS, range=(x0, x1))
            self.histogram.setData(edges, counts)
            top = max(1.0, float(counts.max()) if n else 1.0)
            rug = -0.06 * top
            if n:
                self.scatter.setData(pts[:, 0], np.full(n, rug), symbol="|", size=10)
            else:
                self.scatter.clear()
            vb = self.plot.getPlotItem().getViewBox()
            vb.setYRange(2 * rug, 1.1 * top, padding=0)
        self.count_label.setText(f"{n} point{'s' * (n != 1)}")
        self.undo_button.setEnabled(self.drawing.can_undo())
        self.clear_button.setEnabled(n > 0)
        self.pointsChanged.emit(n)

    # ---------------------------------------------------------------------------- mouse
    def data_at(self, pos: QtCore.QPointF | QtCore.QPoint) -> np.ndarray:
        """The data coordinates under viewport position ``pos`` (x, y); in 1-D only x counts."""
        vb = self.plot.getPlotItem().getViewBox()
        p = vb.mapSceneToView(self.plot.mapToScene(QtCore.QPointF(pos).toPoint()))
        return np.array([p.x(), p.y()], dtype=np.float64)

    def pixel_at(self, x: float, y: float = 0.0) -> QtCore.QPoint:
        """The viewport position showing data point (x, y): where to click to place it."""
        vb = self.plot.getPlotItem().getViewBox()
        return self.plot.mapFromScene(vb.mapViewToScene(QtCore.QPointF(x, y)))

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:
        if watched is not self.plot.viewport() or event.type() not in _MOUSE:
            return super().eventFilter(watched, event)
        kind = event.type()
        if kind == QtCore.QEvent.Type.Wheel:
            return True  # the range is set in the boxes, not by zooming
        assert isinstance(event, QtGui.QMouseEvent)
        left = event.button() == QtCore.Qt.MouseButton.LeftButton
        if kind == QtCore.QEvent.Type.MouseButtonPress and left:
            self._pressed = True
            self._press(self.data_at(event.position()))
        elif kind == QtCore.QEvent.Type.MouseMove and self._pressed:
            if self.drawing.painting:
                self.drawing.brush_to(self.data_at(event.position()))
                self._redraw()
        elif kind == QtCore.QEvent.Type.MouseButtonRelease and left and self._pressed:
            self._pressed = False
            if self.drawing.painting:
                self.drawing.brush_to(self.data_at(event.position()))
                self.drawing.end_stroke()
                self._redraw()
        # swallowed too: a double-click (Qt 6 sends it after the second press, which placed
        # the second point), panning, zooming, the context menu
        return True

    def _press(self, at: np.ndarray) -> None:
        self.set_message("")
        if self.tool == "brush":
            self.drawing.begin_brush(at, self.brush_size.value(), self.brush_density.value())
        else:
            self.drawing.place(at)
        self._redraw()

    # ---------------------------------------------------------------------------- edits
    def undo(self) -> None:
        self._pressed = False
        if self.drawing.undo():
            self._redraw()

    def clear(self) -> None:
        self._pressed = False
        if self.drawing.clear():
            self.set_message("cleared; Undo brings the points back")
            self._redraw()

    def set_dim(self, dim: int) -> None:
        """Switch between 1-D and 2-D; the points of the other dimension are dropped (after
        asking, when there are some)."""
        if dim == self.dim:
            return
        if len(self.drawing) and not self.confirm(
            f"Switching to {dim}-D drops the {len(self.drawing)} drawn points. Switch?"
        ):
            self.dim_combo.blockSignals(True)
            self.dim_combo.setCurrentIndex(0 if self.dim == 2 else 1)
            self.dim_combo.blockSignals(False)
            return
        self.drawing = Drawing(dim, self.drawing.seed)
        self.dim_combo.blockSignals(True)
        self.dim_combo.setCurrentIndex(0 if dim == 2 else 1)
        self.dim_combo.blockSignals(False)
        self._setup_plot()

    def _dim_changed(self) -> None:
        self.set_dim(int(self.dim_combo.currentData()))

    def _ask(self, question: str) -> bool:
        answer = QtWidgets.QMessageBox.question(self, "Draw data", question)
        return answer == QtWidgets.QMessageBox.StandardButton.Yes


def suggested_path(experiment_path: Path | None, runs_dir: Path) -> tuple[Path, bool]:
    """(where to save a drawing, whether to ask the user first): ``<stem>-drawn.npy`` beside
    the experiment's .toml, else ``drawn.npy`` in the runs folder, offered in a dialog; in
    either case the first name not yet taken."""
    from workbench.io.drawn import free_name

    if experiment_path is not None:
        return free_name(experiment_path.with_name(f"{experiment_path.stem}-drawn.npy")), False
    return free_name(runs_dir / "drawn.npy"), True


class DrawDialog(QtWidgets.QDialog):
    """The canvas in a window of its own, working on ``window``'s experiment."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.setObjectName("drawDialog")
        self.setWindowTitle("Draw data — SDE Workbench")
        self.window_ = window
        dim = 1 if window.state is not None and window.state.dim == 1 else 2
        self.canvas = DrawCanvas(dim, parent=self)
        self.canvas.confirm = lambda question: window.confirm(question)
        self.canvas.useRequested.connect(self.use_as_data)
        # Answers "where should the drawing go?" for an untitled experiment; tests replace it.
        self.ask_path: Callable[[Path], Path | None] = self._ask_path
        QtWidgets.QVBoxLayout(self).addWidget(self.canvas)
        self.resize(620, 640)

    def _ask_path(self, proposed: Path) -> Path | None:
        proposed.parent.mkdir(parents=True, exist_ok=True)
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Save the drawing as", str(proposed), "NumPy (*.npy)"
        )
        if not path:
            return None
        return Path(path) if Path(path).suffix else Path(path + ".npy")

    def use_as_data(self) -> Path | None:
        """Save the points and make them the experiment's data; the file, or None (with the
        reason under the canvas) when nothing was saved. The drawing is kept either way."""
        window, canvas = self.window_, self.canvas
        points = canvas.points()
        problem = drawing_problem(points)
        if problem is None and window.is_busy():
            problem = "the experiment is training or sampling; use the drawing once it ends"
        # judge the panels' pending edits first: the new config is built on them, and an
        # invalid field would otherwise be silently put back to its last valid value
        if problem is None and not window.validate():
            problem = "the experiment has an invalid value; fix the marked field first"
        if problem is not None:
            canvas.set_message(problem)
            return None
        target, ask = suggested_path(window.experiment_path, window.runs_dir)
        overwrite = False
        if ask:
            chosen = self.ask_path(target)
            if chosen is None:
                canvas.set_message("not saved (no file chosen); the drawing is kept")
                return None
            # the file dialog has asked before naming an existing file
            target, overwrite = chosen, os.path.lexists(chosen)
        from workbench.io.drawn import write_drawn

        try:
            path = write_drawn(target, points, overwrite=overwrite)
            config = window.config.with_overrides(
                {"data.name": "file", "data.path": str(path.resolve())}
            )
        except (WorkbenchError, ConfigError) as exc:
            canvas.set_message(f"not used: {exc}; the drawing is kept")
            return None
        # the same path may now hold other points: build the data set again even if the
        # config reads the same
        window.state = None
        window.set_config(config)
        n = points.shape[0]
        window.log(f"drew {n} points in {canvas.dim}-D; saved to {path} and using them as data")
        canvas.set_message(f"saved {n} points to {path}; the experiment uses them as data")
        return path


def open_draw_dialog(window: MainWindow) -> DrawDialog:
    """Show the window's draw dialog (made once, so a drawing survives closing it)."""
    dialog = getattr(window, "draw_dialog", None)
    if dialog is None:
        dialog = DrawDialog(window)
        window.draw_dialog = dialog
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog
