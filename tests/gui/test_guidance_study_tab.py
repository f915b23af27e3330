"""The Study tab's guidance study: a real study of the analytic gmm1d score, chosen and run
through the tab's widgets by object name in its worker, drawn as distance against w (linear x,
log y) to the tilted density and to p(x|c) with their floor bands; a clicked point opens its
samples in Densities; bad weights say one line and start nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import h5py
import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from tests.gui.conftest import fast, settle
from tests.gui.test_study_click import click_point
from workbench.core.guidance import GuidedReference
from workbench.gui.main_window import MainWindow
from workbench.gui.plots.density import DensityTab, SampleSet
from workbench.gui.plots.study import StudyTab
from workbench.gui.plots.study_guidance import parse_weights

N = 400


def guidance_tab(window: MainWindow, weights: str, out: Path) -> StudyTab:
    fast(window, **{"data.name": "gmm1d", "model.kind": "analytic"})
    tab = window.findChild(StudyTab, "studyTab")
    assert tab is not None
    window.tab_widget.setCurrentWidget(tab)
    kind = window.findChild(QtWidgets.QComboBox, "studyKind")
    kind.setCurrentIndex(kind.findText("guidance"))
    page = tab.findChild(QtWidgets.QWidget, "studyGuidance").parentWidget()
    assert page.isVisible()
    window.findChild(QtWidgets.QSpinBox, "studyClass").setValue(1)
    window.findChild(QtWidgets.QLineEdit, "studyGuidance").setText(weights)
    window.findChild(QtWidgets.QComboBox, "studyGuidanceSampler").setCurrentText("ode")
    window.findChild(QtWidgets.QSpinBox, "studyGuidanceNfe").setValue(40)
    window.findChild(QtWidgets.QSpinBox, "studyGuidanceN").setValue(N)
    window.findChild(QtWidgets.QLineEdit, "studyOut").setText(str(out))
    return tab


def test_guidance_study_runs_from_the_tab_and_draws_against_w(
    window: MainWindow, qtbot, tmp_path: Path
) -> None:
    out = tmp_path / "guided.h5"
    tab = guidance_tab(window, "0, 1, 3", out)
    # the class spin box offers the data's classes only (gmm1d: three components)
    assert window.findChild(QtWidgets.QSpinBox, "studyClass").maximum() == 2
    with qtbot.waitSignal(tab.studyFinished, timeout=120_000) as blocker:
        qtbot.mouseClick(
            window.findChild(QtWidgets.QPushButton, "studyRun"), QtCore.Qt.MouseButton.LeftButton
        )
    result = blocker.args[0]
    assert result is not None and result.status == "done", tab.status.text()
    assert result.kind == "guidance" and result.ran == 3
    assert tab.worker_threads and tab.worker_threads[0] is not threading.main_thread()

    tab.flush_redraw()
    item = window.findChild(pg.PlotWidget, "studyPlot").getPlotItem()
    assert not item.ctrl.logXCheck.isChecked() and item.ctrl.logYCheck.isChecked()
    assert set(tab.curves) == {"ode → tilted q_w", "ode → p(x|c)"}
    with h5py.File(out, "r") as f:
        g = f["entry/guidance"]
        gap = np.abs(g["log_density_gap"][0])
        sw = g["sw"][0]
    x, y = tab.curves["ode → tilted q_w"].getOriginalDataset()
    assert list(x) == [0.0, 1.0, 3.0] and np.allclose(y, gap)
    bands = [it for it in item.items if isinstance(it, pg.FillBetweenItem)]
    assert len(bands) == 2 and "noise floor" in tab.readout.text()

    # the other distance redraws from the same file
    tab.guidance.measure.setCurrentIndex(tab.guidance.measure.findText("sliced Wasserstein"))
    tab.flush_redraw()
    assert np.allclose(tab.curves["ode → tilted q_w"].getOriginalDataset()[1], sw)
    # the picture: guidance lands above the band at w = 3 (the README's numbers are fuller)
    assert sw[2] > 3 * np.nanmax(f_floor(out))

    # a point opens its samples in Densities, titled by class and w, and drawn against the
    # truth they were sampled for (class 1 at w = 3), not the window's own class and w
    window.set_config(
        window.config.with_overrides({"sample.class_label": 2, "sample.guidance": 1.0})
    )
    settle(window)
    density = window.findChild(DensityTab, "densityPlot")
    with qtbot.waitSignal(tab.samplesOpened, timeout=30_000) as opened:
        click_point(qtbot, tab, "ode → tilted q_w", 2)
    shown = opened.args[0]
    assert isinstance(shown, SampleSet) and shown.points.shape == (N, 1)
    assert window.tab_widget.currentWidget() is density
    assert "class 1 at w = 3" in (density.shown_title() or "")
    assert truth_of(density) == (1, 3.0)
    # the window's class and w changing again leaves the shown samples' truth as it is
    window.set_config(window.config.with_overrides({"sample.class_label": 0}))
    settle(window)
    assert truth_of(density) == (1, 3.0)
    # the window's next own samples are drawn against the window's choice again
    density.set_trajectory(None)
    assert truth_of(density) == (0, 1.0)
    tab.resize(1100, 560)
    assert not tab.grab().isNull()


def truth_of(density: DensityTab) -> tuple[int, float] | None:
    """The (class, w) of the guided truth the Densities view draws (None: unguided)."""
    density.flush_redraw()
    assert density.view is not None
    truth = density.view.truth
    if not isinstance(truth, GuidedReference):
        return None
    return truth.class_label, truth.guidance


def f_floor(out: Path) -> np.ndarray:
    with h5py.File(out, "r") as f:
        g = f["entry/guidance"]
        return g["sw_floor"][0] + 2 * g["sw_floor_std"][0]


def test_bad_weights_say_one_line_and_start_nothing(window: MainWindow, tmp_path: Path) -> None:
    out = tmp_path / "bad.h5"
    tab = guidance_tab(window, "0,1", out)
    for text, words in (("0,x", "'x'"), ("-1", "not a weight"), ("1,1", "twice"), ("", "least")):
        tab.guidance.weights.setText(text)
        assert tab.run_study() is None
        assert words in tab.status.text() and "\n" not in tab.status.text()
    assert tab.task is None and not out.exists()


def test_parse_weights_accepts_commas_and_spaces() -> None:
    assert parse_weights(" 0, 0.5 2,4 ") == [0.0, 0.5, 2.0, 4.0]
