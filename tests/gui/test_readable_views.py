"""Views a user can read: the loss of SSM/ESM (negative) on a linear axis with a note, plain
tick values, an empty-plot note, named CSV columns; 1:1 panels; plots in the app's palette.

With SDE_SHOTS=DIR set, each test also saves what it looked at (widget grabs) to DIR.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from workbench.config import default_config, to_toml
from workbench.gui.inspector import InspectorWindow
from workbench.gui.main_window import MainWindow
from workbench.gui.plots.base import locked_view_boxes
from workbench.gui.plots.loss import CSV_HEADER, LINEAR_NOTE, NO_RUN, LossTab
from workbench.io.trajectories import TrajectoryWriter


def shot(widget: QtWidgets.QWidget, name: str) -> None:
    out = os.environ.get("SDE_SHOTS")
    if out:
        QtWidgets.QApplication.processEvents()
        widget.grab().save(str(Path(out) / f"{name}.png"))


def settle(qtbot, ms: int = 100) -> None:
    qtbot.wait(ms)
    QtWidgets.QApplication.processEvents()


def by_name(window: QtWidgets.QWidget, name: str) -> QtWidgets.QWidget:
    widget = window.findChild(QtWidgets.QWidget, name)
    assert widget is not None, name
    return widget


def panels(view: pg.GraphicsView) -> list[pg.PlotItem]:
    """The plots in a view (a colour bar is a PlotItem too, and not a panel)."""
    return [
        i
        for i in view.scene().items()
        if isinstance(i, pg.PlotItem) and not isinstance(i, pg.ColorBarItem)
    ]


def loss_tab(window: MainWindow) -> LossTab:
    tab = by_name(window, "lossPlot")
    window.tab_widget.setCurrentWidget(tab)
    return tab


def note_items(tab: LossTab) -> list[pg.TextItem]:
    return [
        i
        for i in tab.plot.scene().items()
        if isinstance(i, pg.TextItem) and i.toPlainText() == NO_RUN
    ]


# ------------------------------------------------------------------------------------ loss
def test_negative_loss_is_drawn_on_a_linear_axis_with_a_note(qtbot, window: MainWindow) -> None:
    tab = loss_tab(window)
    window.resize(1200, 800)
    settle(qtbot)
    assert tab.log_y.isChecked() and tab.log_axis()
    assert [i.isVisible() for i in note_items(tab)] == [True]  # the empty plot says why
    shot(window, "loss_empty")
    steps = list(range(1, 401))
    losses = list(-0.15 - 0.5 * (1 - np.exp(-np.arange(400) / 80.0)))  # -0.15 ... -0.65
    tab.add_points(steps, [0.01 * s for s in steps], losses)
    tab.flush_redraw()
    settle(qtbot)
    assert note_items(tab) == []  # gone with the first point
    assert not tab.log_axis() and not tab.item.getAxis("left").logMode
    assert tab.axis_note.isVisible() and tab.axis_note.text() == LINEAR_NOTE
    raw, smoothed = tab._curves[-1]
    x, y = raw.getData()
    assert len(x) == 400 and np.allclose(y, losses)  # every point, none dropped for the log
    assert np.isfinite(smoothed.getData()[1]).sum() == 400
    left = tab.item.getAxis("left")
    assert left.autoSIPrefixScale == 1.0 and "x0.001" not in left.labelString()
    lo, hi = tab.item.vb.viewRange()[1]
    assert lo < -0.6 and hi > -0.2  # the range is the losses' own, in plain values
    shot(window, "loss_negative")
    # a positive-only run after clearing the negative one: the log axis comes back
    tab.start_run("positive")
    tab.add_points([1, 2, 3], [0.0, 0.1, 0.2], [1.0, 0.5, 0.25])
    tab.clear_earlier_runs()
    tab.flush_redraw()
    assert tab.log_axis() and not tab.axis_note.isVisible()


def test_loss_csv_has_named_columns(qtbot, window: MainWindow, tmp_path: Path) -> None:
    tab = loss_tab(window)
    tab.add_run("first", [1, 2, 3], [0.5, 1.0, 1.5], [2.0, -1.0, 0.5])
    tab.add_run("second", [1, 2], [0.2, 0.4], [3.0, 1.0])
    out = tab.export(tmp_path / "loss.csv")
    rows = list(csv.reader(out.open()))
    assert tuple(rows[0]) == CSV_HEADER == ("run", "step", "wall_time_s", "loss", "loss_ema")
    assert len(rows) == 1 + 5 and rows[1][:4] == ["first", "1", "0.5", "2.0"]
    assert rows[-1][0] == "second" and float(rows[2][3]) == -1.0


# ------------------------------------------------------------------------------------ aspect
ISOTROPIC = {"data.name": "gmm", "data.means": [[0.0, 0.0]], "data.stds": [1.0]}


def test_two_d_views_keep_one_to_one(qtbot, window: MainWindow) -> None:
    window.resize(1500, 900)
    window.set_config(window.config.with_overrides(ISOTROPIC))
    density = by_name(window, "densityPlot")
    window.tab_widget.setCurrentWidget(density)
    window.time_slider.setValue(300)
    settle(qtbot, 300)
    layout = by_name(window, "densityLayout")
    boxes = locked_view_boxes(layout)
    # the marginals' two line plots under the panels have axes of their own units
    marginal = density.view.marginals.plots
    plots = [plot for plot in panels(layout) if plot not in marginal]
    assert len(marginal) == 2 and not any(p.vb.state["aspectLocked"] for p in marginal)
    assert len(plots) == 3 and len(boxes) == 3  # every panel, none left unlocked
    for box in boxes:
        assert box.state["aspectLocked"] == 1.0
        # the panels use their height: square boxes, no band of empty axis
        assert abs(box.height() - box.width()) <= 0.05 * box.width(), (box.width(), box.height())
    # the exact p_t's 50 % contour of an isotropic Gaussian is a circle on screen
    line = density.view.contours["forward"][0]
    xs, ys = line.getData()
    xs, ys = xs[np.isfinite(xs)], ys[np.isfinite(ys)]
    vb = density.view.plots["forward"].vb
    a = vb.mapViewToScene(QtCore.QPointF(xs.min(), ys.min()))
    b = vb.mapViewToScene(QtCore.QPointF(xs.max(), ys.max()))
    width_px, height_px = abs(b.x() - a.x()), abs(b.y() - a.y())
    assert width_px > 30 and abs(width_px / height_px - 1) < 0.05, (width_px, height_px)
    shot(window, "density_isotropic")

    score = by_name(window, "scoreFieldPlot")
    window.tab_widget.setCurrentWidget(score)
    qtbot.waitUntil(score.is_idle, timeout=20000)
    settle(qtbot, 200)
    boxes = locked_view_boxes(by_name(window, "scoreFieldLayout"))
    plots = panels(by_name(window, "scoreFieldLayout"))
    assert len(boxes) == len(plots) == 2
    shot(window, "score_isotropic")


def two_d_file(path: Path) -> Path:
    toml = to_toml(default_config().with_overrides(ISOTROPIC))
    w = TrajectoryWriter(path, n_samples=2000, sample_shape=(2,), config_toml=toml, sampler="em")
    rng = np.random.default_rng(0)
    for k in range(3):
        w.append(k, 1.0 - k / 2, rng.normal(size=(2000, 2)).astype(np.float32))
    w.close()
    return path


def test_inspector_two_d_views_keep_one_to_one(
    qtbot, inspector: InspectorWindow, tmp_path: Path
) -> None:
    assert inspector.objectName() == "inspectorWindow"
    inspector.resize(1300, 800)
    assert inspector.open(two_d_file(tmp_path / "iso.h5"))
    sv = inspector.current().show_view("Samples")
    settle(qtbot, 200)
    graphics = by_name(inspector, "inspectorSamplesPlot")
    plots = panels(graphics)
    assert len(plots) == 2 and len(locked_view_boxes(graphics)) == 2
    # the histogram's title is whole: wrapped onto lines that fit above the panel
    title = sv.hist_plot.titleLabel
    assert title.item.boundingRect().width() <= sv.hist_plot.width() + 1
    assert title.item.boundingRect().height() <= title.maximumHeight()
    shot(inspector, "inspector_samples")
    cv = inspector.current().show_view("Compare")
    qtbot.waitUntil(lambda: not cv.busy(), timeout=20000)
    settle(qtbot, 200)
    assert cv.plot.getPlotItem().vb.state["aspectLocked"] == 1.0
    shot(inspector, "inspector_compare")


# ------------------------------------------------------------------------------------ palette
def test_dark_palette_gives_dark_plots(qtbot, window: MainWindow, tmp_path: Path) -> None:
    app = QtWidgets.QApplication.instance()
    old = app.palette()
    old_bg, old_fg = pg.getConfigOption("background"), pg.getConfigOption("foreground")
    inspector = InspectorWindow()
    qtbot.addWidget(inspector)
    try:
        inspector.show()
        assert inspector.open(two_d_file(tmp_path / "dark.h5"))
        inspector.current().show_view("Samples")
        window.set_config(window.config.with_overrides(ISOTROPIC))
        window.tab_widget.setCurrentWidget(by_name(window, "densityPlot"))
        dark = QtGui.QPalette(old)
        for role, colour in (
            (QtGui.QPalette.Window, "#2b2b2b"),
            (QtGui.QPalette.WindowText, "#e6e6e6"),
            (QtGui.QPalette.Base, "#1e1e1e"),
            (QtGui.QPalette.Text, "#e6e6e6"),
        ):
            dark.setColor(role, QtGui.QColor(colour))
        app.setPalette(dark)
        settle(qtbot, 200)
        for host, name in (
            (window, "densityLayout"),
            (window, "lossPlotWidget"),
            (inspector, "inspectorSamplesPlot"),
        ):
            view = by_name(host, name)
            assert view.backgroundBrush().color().lightness() < 60, name
            axes = [i for i in view.scene().items() if isinstance(i, pg.AxisItem)]
            assert axes and all(a.textPen().color().lightness() > 180 for a in axes), name
        # a panel built after the change (another data set) is dark too
        window.set_config(window.config.with_overrides({"data.name": "moons"}))
        settle(qtbot, 200)
        axes = [
            i
            for i in by_name(window, "densityLayout").scene().items()
            if isinstance(i, pg.AxisItem)
        ]
        assert axes and all(a.textPen().color().lightness() > 180 for a in axes)
        shot(window, "density_dark")
        shot(inspector, "inspector_dark")
    finally:
        app.setPalette(old)
        pg.setConfigOptions(background=old_bg, foreground=old_fg)
        inspector.close()
    settle(qtbot)
    assert by_name(window, "densityLayout").backgroundBrush().color().lightness() > 200
