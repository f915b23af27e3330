"""The Data panel's draw mode driven with real mouse events on the real canvas (``drawCanvas``):
points and brush strokes, undo, clear, and "Use as data" through to a trained run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets
from PySide6.QtTest import QTest

from tests.gui.conftest import fast, settle
from workbench.core.data import build_dataset
from workbench.gui.draw import DrawCanvas, DrawDialog
from workbench.gui.main_window import MainWindow

LEFT = QtCore.Qt.MouseButton.LeftButton
NONE = QtCore.Qt.KeyboardModifier.NoModifier


def open_canvas(qtbot, window: MainWindow) -> tuple[DrawDialog, DrawCanvas]:
    qtbot.mouseClick(window.findChild(QtWidgets.QPushButton, "drawButton"), LEFT)
    dialog = window.findChild(QtWidgets.QDialog, "drawDialog")
    canvas = window.findChild(QtWidgets.QWidget, "drawCanvas")
    assert isinstance(dialog, DrawDialog) and isinstance(canvas, DrawCanvas)
    qtbot.waitExposed(dialog)
    return dialog, canvas


def pixel_size(canvas: DrawCanvas) -> float:
    """Data units per pixel along x: how near a click lands to the point aimed at."""
    a, b = canvas.pixel_at(0.0, 0.0), canvas.pixel_at(1.0, 0.0)
    return 1.0 / (b.x() - a.x())


def click(canvas: DrawCanvas, x: float, y: float = 0.0) -> None:
    QTest.mouseClick(canvas.plot.viewport(), LEFT, NONE, canvas.pixel_at(x, y))
    QtWidgets.QApplication.processEvents()


def stroke(canvas: DrawCanvas, path: list[tuple[float, float]]) -> None:
    """Press at the first place, move through the rest, release at the last."""
    viewport = canvas.plot.viewport()
    QTest.mousePress(viewport, LEFT, NONE, canvas.pixel_at(*path[0]))
    for x, y in path[1:]:
        QTest.mouseMove(viewport, canvas.pixel_at(x, y))
    QTest.mouseRelease(viewport, LEFT, NONE, canvas.pixel_at(*path[-1]))
    QtWidgets.QApplication.processEvents()


def test_draw_button_opens_the_canvas_and_clicks_place_points(qtbot, window: MainWindow) -> None:
    _, canvas = open_canvas(qtbot, window)
    assert canvas.dim == 2 and canvas.tool == "points"
    assert canvas.data_range() == ((-4.0, 4.0), (-4.0, 4.0))
    aimed = [(0.0, 0.0), (1.5, -2.0), (-3.0, 3.0)]
    for x, y in aimed:
        click(canvas, x, y)
    px = pixel_size(canvas)
    np.testing.assert_allclose(canvas.points(), np.array(aimed), atol=1.5 * px)
    assert canvas.findChild(QtWidgets.QLabel, "drawCount").text() == "3 points"
    # one unit as long across as up
    vb = canvas.plot.getPlotItem().getViewBox()
    up = canvas.pixel_at(0.0, 0.0).y() - canvas.pixel_at(0.0, 1.0).y()
    assert abs(up * px - 1.0) < 0.02
    assert vb.state["aspectLocked"]


def test_a_brush_stroke_is_one_undo_step_and_does_not_pan(qtbot, window: MainWindow) -> None:
    _, canvas = open_canvas(qtbot, window)
    click(canvas, 2.0, 2.0)
    canvas.findChild(QtWidgets.QToolButton, "drawBrushTool").click()
    canvas.findChild(QtWidgets.QDoubleSpinBox, "drawBrushSize").setValue(0.25)
    canvas.findChild(QtWidgets.QDoubleSpinBox, "drawBrushDensity").setValue(20.0)
    vb = canvas.plot.getPlotItem().getViewBox()
    view_before = vb.viewRange()
    before = canvas.points().copy()
    path = [(-3.0 + 0.1 * k, -1.0) for k in range(41)]  # 4 units to the right
    stroke(canvas, path)
    pts = canvas.points()
    # 20 per unit along about 4 units (pixel rounding moves the ends) plus the first dab
    assert 75 <= len(pts) - 1 <= 87
    new = pts[1:]
    assert abs(new[:, 1].mean() + 1.0) < 5 * 0.25 / np.sqrt(len(new))
    assert vb.viewRange() == view_before  # the drag painted, it did not pan the view
    assert len(canvas.drawing.strokes) == 2
    canvas.findChild(QtWidgets.QPushButton, "drawUndo").click()
    np.testing.assert_array_equal(canvas.points(), before)  # exactly the stroke went
    canvas.findChild(QtWidgets.QPushButton, "drawUndo").click()
    assert len(canvas.points()) == 0
    assert not canvas.findChild(QtWidgets.QPushButton, "drawUndo").isEnabled()


def test_clear_empties_and_undo_brings_everything_back(qtbot, window: MainWindow) -> None:
    _, canvas = open_canvas(qtbot, window)
    for x in (-1.0, 0.0, 1.0):
        click(canvas, x, 0.5)
    before = canvas.points().copy()
    canvas.findChild(QtWidgets.QPushButton, "drawClear").click()
    assert len(canvas.points()) == 0
    assert canvas.findChild(QtWidgets.QLabel, "drawCount").text() == "0 points"
    assert "Undo" in canvas.findChild(QtWidgets.QLabel, "drawMessage").text()
    canvas.findChild(QtWidgets.QPushButton, "drawUndo").click()
    np.testing.assert_array_equal(canvas.points(), before)


def test_use_as_data_saves_the_points_and_trains_from_them(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    dialog, canvas = open_canvas(qtbot, window)
    canvas.set_tool("brush")
    stroke(canvas, [(-2.0 + 0.2 * k, 0.1 * k) for k in range(21)])
    click(canvas, 3.0, -3.0)  # a brush dab: one point sprayed about (3, -3)
    drawn = canvas.points().copy()
    chosen = tmp_path / "mine" / "drawing.npy"
    asked: list[Path] = []
    dialog.ask_path = lambda proposed: asked.append(proposed) or chosen
    canvas.findChild(QtWidgets.QPushButton, "drawUse").click()
    settle(window)  # the experiment's state is built in a worker
    # untitled: the user was asked, with the runs folder proposed
    assert asked == [window.runs_dir / "drawn.npy"]
    assert chosen.is_file()
    assert window.config.data.name == "file"
    assert Path(window.config.data.params["path"]) == chosen.resolve()
    # the same floats, read back through the file data set the experiment now uses
    np.testing.assert_array_equal(window.state.dataset.values.numpy(), drawn)
    again = build_dataset("file", {"path": str(chosen)}).values.numpy()
    np.testing.assert_array_equal(again, drawn)
    assert window.train_button.isEnabled()
    assert str(chosen) in canvas.findChild(QtWidgets.QLabel, "drawMessage").text()

    fast(window, **{"train.steps": 30, "train.batch_size": 32, "data.n": 256})
    assert window.config.data.name == "file"
    with qtbot.waitSignal(window.trainingFinished, timeout=120_000) as done:
        window.train_button.click()
    result = done.args[0]
    assert result is not None and (result.status, result.step) == ("done", 30)
    from workbench.io.runs import RunFolder

    losses = RunFolder.open(window.run_dir).read_metrics()["loss"]
    assert losses and np.isfinite(losses).all()


def test_beside_a_saved_experiment_and_never_over_a_file(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    toml = tmp_path / "exp.toml"
    assert window.save_experiment(toml)
    dialog, canvas = open_canvas(qtbot, window)
    dialog.ask_path = lambda proposed: pytest.fail("a saved experiment needs no question")
    for x, y in [(0.0, 0.0), (1.0, 1.0)]:
        click(canvas, x, y)
    first = dialog.use_as_data()
    assert first == tmp_path / "exp-drawn.npy"
    first_points = np.load(first)
    click(canvas, -2.0, 2.0)
    second = dialog.use_as_data()
    assert second == tmp_path / "exp-drawn-2.npy"
    np.testing.assert_array_equal(np.load(first), first_points)  # the first is untouched
    assert np.load(second).shape == (3, 2)
    assert Path(window.config.data.params["path"]) == second.resolve()
    # saved, the experiment names the drawing and opens with it
    assert window.save_experiment(toml)
    assert str(second.resolve()) in toml.read_text()


def test_too_few_points_is_a_clear_message_and_loses_nothing(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    dialog, canvas = open_canvas(qtbot, window)
    dialog.ask_path = lambda proposed: pytest.fail("nothing to save yet")
    before = window.config
    click(canvas, 1.0, 1.0)
    assert dialog.use_as_data() is None
    message = canvas.findChild(QtWidgets.QLabel, "drawMessage").text()
    assert "at least 2 points" in message and "has 1" in message
    assert window.config == before and len(canvas.points()) == 1
    assert not list(tmp_path.rglob("*.npy"))


def test_cancelling_the_file_dialog_keeps_the_drawing(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    dialog, canvas = open_canvas(qtbot, window)
    dialog.ask_path = lambda proposed: None
    for x in (-1.0, 1.0):
        click(canvas, x, 0.0)
    before = window.config
    assert dialog.use_as_data() is None
    assert "no file chosen" in canvas.findChild(QtWidgets.QLabel, "drawMessage").text()
    assert window.config == before and len(canvas.points()) == 2
    assert not list(tmp_path.rglob("*.npy"))


def test_one_dimensional_drawing_round_trips_and_trains(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    dialog, canvas = open_canvas(qtbot, window)
    click(canvas, 0.0, 0.0)  # a 2-D point, dropped by the switch after asking
    canvas.findChild(QtWidgets.QComboBox, "drawDimension").setCurrentIndex(1)
    assert canvas.dim == 1 and len(canvas.points()) == 0
    assert not canvas.findChild(QtWidgets.QDoubleSpinBox, "drawYMin").isVisible()
    aimed = [-2.0, -1.5, 0.5, 1.0, 1.0, 2.5]
    for x in aimed:
        click(canvas, x, 0.0)
    assert canvas.points().shape == (6, 1)
    np.testing.assert_allclose(canvas.points()[:, 0], aimed, atol=1.5 * pixel_size(canvas))
    _, counts = canvas.histogram.getData()
    assert counts is not None and counts.sum() == 6  # the histogram over the points
    drawn = canvas.points().copy()
    dialog.ask_path = lambda proposed: tmp_path / "line.npy"
    path = dialog.use_as_data()
    settle(window)
    assert path == tmp_path / "line.npy" and np.load(path).shape == (6,)
    assert window.state.dim == 1
    np.testing.assert_array_equal(window.state.dataset.values.numpy(), drawn)
    fast(window, **{"train.steps": 20, "train.batch_size": 16, "data.n": 64})
    with qtbot.waitSignal(window.trainingFinished, timeout=120_000) as done:
        window.train_button.click()
    result = done.args[0]
    assert result is not None and (result.status, result.step) == ("done", 20)


def test_the_dimension_switch_asks_before_dropping_points(qtbot, window: MainWindow) -> None:
    _, canvas = open_canvas(qtbot, window)
    click(canvas, 0.0, 0.0)
    window.confirm = lambda question: False
    canvas.findChild(QtWidgets.QComboBox, "drawDimension").setCurrentIndex(1)
    assert canvas.dim == 2 and len(canvas.points()) == 1
    assert canvas.findChild(QtWidgets.QComboBox, "drawDimension").currentData() == 2


def test_a_canvas_opened_on_1d_data_starts_in_1d(qtbot, window: MainWindow) -> None:
    window.set_config(window.config.with_overrides({"data.name": "gmm1d"}))
    settle(window)
    _, canvas = open_canvas(qtbot, window)
    assert canvas.dim == 1


def test_an_invalid_field_elsewhere_is_neither_lost_nor_overwritten(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    dialog, canvas = open_canvas(qtbot, window)
    dialog.ask_path = lambda proposed: tmp_path / "d.npy"
    for x in (-1.0, 1.0):
        click(canvas, x, 0.0)
    lr = window.training_panel.forms["train"].fields["lr"]
    lr.widget.setText("-1")
    assert dialog.use_as_data() is None
    assert "invalid value" in canvas.findChild(QtWidgets.QLabel, "drawMessage").text()
    assert lr.widget.text() == "-1" and lr.error is not None  # the user's typing is kept
    assert window.config.data.name == "8gaussians" and not (tmp_path / "d.npy").exists()
    lr.widget.setText("0.002")
    assert dialog.use_as_data() == tmp_path / "d.npy"
    assert window.config.train.lr == 0.002 and window.config.data.name == "file"


def test_a_double_click_places_two_points_not_three(qtbot, window: MainWindow) -> None:
    """Qt 6 delivers a double-click as press, release, press, double-click, release."""
    _, canvas = open_canvas(qtbot, window)
    viewport, at = canvas.plot.viewport(), canvas.pixel_at(1.0, 1.0)
    QTest.mouseClick(viewport, LEFT, NONE, at)
    QTest.mousePress(viewport, LEFT, NONE, at)
    QTest.mouseDClick(viewport, LEFT, NONE, at)
    QTest.mouseRelease(viewport, LEFT, NONE, at)
    assert len(canvas.points()) == 2 and len(canvas.drawing.strokes) == 2
