"""A point of the Study tab's error-vs-NFE plot opens the samples it measures in Densities: a real
study (analytic 8 Gaussians, 2 samplers x 2 budgets) through Run, a mouse click on a point's
place on screen, and the Densities view's reverse panel then holds exactly those samples."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pyqtgraph as pg
import pytest
import torch
from PySide6 import QtCore, QtWidgets

from tests.gui.conftest import fast, settle
from workbench.core.grids import histogram
from workbench.core.guidance import GuidedReference
from workbench.gui.main_window import MainWindow
from workbench.gui.plots.density import DensityTab, SampleSet
from workbench.gui.plots.study import StudyTab, set_checked
from workbench.io.study_file import read_samples

N = 400


def run_study(window: MainWindow, qtbot, out: Path) -> StudyTab:
    fast(window, **{"data.name": "8gaussians", "model.kind": "analytic"})
    tab = window.findChild(StudyTab, "studyTab")
    assert tab is not None
    window.tab_widget.setCurrentWidget(tab)
    set_checked(window.findChild(QtWidgets.QListWidget, "studySamplers"), ["em", "dpmpp_2m"])
    window.findChild(QtWidgets.QLineEdit, "studyNfe").setText("5,10")
    window.findChild(QtWidgets.QSpinBox, "studyN").setValue(N)
    window.findChild(QtWidgets.QLineEdit, "studyOut").setText(str(out))
    with qtbot.waitSignal(tab.studyFinished, timeout=120_000) as blocker:
        qtbot.mouseClick(
            window.findChild(QtWidgets.QPushButton, "studyRun"), QtCore.Qt.MouseButton.LeftButton
        )
    assert blocker.args[0] is not None and blocker.args[0].status == "done", tab.status.text()
    return tab


def click_point(qtbot, tab: StudyTab, name: str, k: int) -> None:
    """A left click on the viewport where the k-th point of ``name``'s curve is drawn."""
    plot = tab.findChild(pg.PlotWidget, "studyPlot")
    tab.flush_redraw()
    plot.grab()  # a paint: the view box fits its range to the curves, as on screen
    spot = tab.curves[name].scatter.points()[k]
    scene = tab.curves[name].scatter.mapToScene(spot.pos())
    where = plot.mapFromScene(scene)
    assert plot.viewport().rect().contains(where), (name, k, where)
    qtbot.mouseClick(plot.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=where)


@pytest.mark.parametrize(("name", "k"), [("dpmpp_2m", 1), ("em", 0)])
def test_clicking_a_point_shows_its_samples_in_densities(
    window: MainWindow, qtbot, tmp_path: Path, name: str, k: int
) -> None:
    out = tmp_path / "study.h5"
    tab = run_study(window, qtbot, out)
    with h5py.File(out, "r") as f:
        g = f["entry/samplers"]
        assert g["samples"].dtype == np.float32 and g["samples"].shape == (2, 2, N, 2)
        names = [s.decode() for s in g["sampler"][()]]
        nfe_actual = g["nfe_actual"][()]
    i = names.index(name)
    # the curve's points are sorted by NFE; both budgets' entries are finite here
    j = int(np.argsort(nfe_actual[i])[k])
    stored = read_samples(out, i, j)

    density = window.findChild(DensityTab, "densityPlot")
    with qtbot.waitSignal(tab.samplesOpened, timeout=30_000) as blocker:
        click_point(qtbot, tab, name, k)
    shown = blocker.args[0]
    assert isinstance(shown, SampleSet)
    assert window.tab_widget.currentWidget() is density
    assert density.trajectory is shown
    title = density.shown_title()
    assert title is not None and name in title and f"{nfe_actual[i, j]} NFE" in title
    np.testing.assert_array_equal(shown.points, stored.points.astype(np.float64))

    # the view draws exactly those samples: its reverse histogram is theirs, in model units
    density.flush_redraw()
    view = density.view
    assert view is not None and view.reverse_density is not None
    assert window.state is not None
    model = window.state.normalizer.to_model(torch.from_numpy(shown.points)).numpy()
    h, bins = view.half, view.reverse_density.shape[0]
    area = (2.0 * h / bins) ** 2
    expected = histogram(model, h, bins) / (N * area)
    np.testing.assert_allclose(view.reverse_density, expected)
    assert title in density.readout.text()
    # a sampler study samples unguided: its points are drawn against p_0, not against the
    # class the window may have chosen
    window.set_config(window.config.with_overrides({"sample.class_label": 3}))
    settle(window)
    density.set_trajectory(None)
    density.flush_redraw()
    assert isinstance(density.view.truth, GuidedReference)
    with qtbot.waitSignal(tab.samplesOpened, timeout=30_000):
        click_point(qtbot, tab, name, k)
    density.flush_redraw()
    assert density.view is not None and not isinstance(density.view.truth, GuidedReference)


def test_an_old_study_file_without_samples_says_so(
    window: MainWindow, qtbot, tmp_path: Path
) -> None:
    """A study written before samples were kept still plots; its points say, in one line, why
    they cannot be opened, and the Densities view keeps what it showed."""
    out = tmp_path / "study.h5"
    tab = run_study(window, qtbot, out)
    with h5py.File(out, "a") as f:
        del f["entry/samplers/samples"]
    density = window.findChild(DensityTab, "densityPlot")
    before = density.trajectory
    task = tab.open_point(0, 0)
    assert task is not None
    qtbot.waitUntil(lambda: tab.loader is None, timeout=30_000)
    assert "before studies kept their samples" in tab.status.text()
    assert "\n" not in tab.status.text()
    assert density.trajectory is before
