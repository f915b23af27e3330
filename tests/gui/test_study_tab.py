"""The Study tab: a real sampler study of the analytic gmm1d score, run through the tab's Run in
its worker, drawn as error against NFE (log-log) with the noise-floor band."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtCore, QtWidgets

from tests.gui.conftest import fast
from workbench.gui.main_window import MainWindow
from workbench.gui.plots.study import StudyTab, parse_nfe, set_checked
from workbench.jobs import study as jobs_study


def study_tab(window: MainWindow) -> StudyTab:
    fast(window, **{"data.name": "gmm1d", "model.kind": "analytic"})
    tab = window.findChild(StudyTab, "studyTab")
    assert tab is not None
    window.tab_widget.setCurrentWidget(tab)
    return tab


def choose(window: MainWindow, samplers: list[str], nfe: str, n: int, out: Path) -> None:
    set_checked(window.findChild(QtWidgets.QListWidget, "studySamplers"), samplers)
    window.findChild(QtWidgets.QLineEdit, "studyNfe").setText(nfe)
    window.findChild(QtWidgets.QSpinBox, "studyN").setValue(n)
    window.findChild(QtWidgets.QLineEdit, "studyOut").setText(str(out))


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[threading.Thread]:
    """The threads the real sampler_study ran in (a recording wrapper, the real job runs)."""
    threads: list[threading.Thread] = []
    real = jobs_study.sampler_study

    def recording(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs_study, "sampler_study", recording)
    return threads


def test_sampler_study_runs_off_thread_and_draws_log_log(
    window: MainWindow, qtbot, tmp_path: Path, recorded: list[threading.Thread]
) -> None:
    tab = study_tab(window)
    out = tmp_path / "study.h5"
    choose(window, ["em", "ode"], "5,10", 300, out)
    with qtbot.waitSignal(tab.studyFinished, timeout=120_000) as blocker:
        qtbot.mouseClick(
            window.findChild(QtWidgets.QPushButton, "studyRun"), QtCore.Qt.MouseButton.LeftButton
        )
    result = blocker.args[0]
    assert result is not None and result.status == "done", tab.status.text()
    assert len(recorded) == 1 and recorded[0] is not threading.main_thread()
    assert recorded[0] is not threading.current_thread()
    assert out.exists() and out.with_suffix(".csv").exists()

    plot = window.findChild(pg.PlotWidget, "studyPlot")
    item = plot.getPlotItem()
    assert item.ctrl.logXCheck.isChecked() and item.ctrl.logYCheck.isChecked()
    assert set(tab.curves) == {"em", "ode"}
    with h5py.File(out, "r") as f:
        actual = f["entry/samplers/nfe_actual"][()]
        stored = np.abs(f["entry/samplers/log_density_gap"][0])
    for i, curve in enumerate(tab.curves.values()):
        x, y = curve.getOriginalDataset()
        # x is the score evaluations each run really spent (at most its budget)
        assert len(x) == 2 and list(x) == sorted(actual[i].tolist())
        assert np.all(x <= [5, 10]) and np.all(np.asarray(y) > 0)
    assert [it.text for _, it in tab.legend.items] == ["em", "ode"]
    bands = [it for it in item.items if isinstance(it, pg.FillBetweenItem)]
    assert len(bands) == 1 and bands[0] is tab.band

    # the curves are the file's numbers: |log-density gap| of em at the budgets
    assert np.allclose(tab.curves["em"].getOriginalDataset()[1], stored)

    # another metric redraws from the same study; pathwise has no floor, em no pathwise error
    tab.metric_box.setCurrentIndex(
        tab.metric_box.findText("pathwise error", QtCore.Qt.MatchStartsWith)
    )
    tab.flush_redraw()
    assert set(tab.curves) == {"ode"} and tab.band is None
    tab.metric_box.setCurrentIndex(tab.metric_box.findText("sliced Wasserstein"))
    tab.flush_redraw()
    assert set(tab.curves) == {"em", "ode"} and tab.band is not None

    # the README's picture comes from tools/screenshots.py --studies (a fuller study), not here
    tab.resize(1100, 560)
    assert not tab.grab().isNull()


def test_cancel_stops_the_study(
    window: MainWindow, qtbot, tmp_path: Path, recorded: list[threading.Thread]
) -> None:
    tab = study_tab(window)
    out = tmp_path / "big.h5"
    budgets = "5,10,20,50,100,200,500,1000"
    choose(window, ["em", "ode", "pc"], budgets, 4000, out)
    with qtbot.waitSignal(tab.studyFinished, timeout=120_000) as blocker:
        qtbot.mouseClick(tab.run_button, QtCore.Qt.MouseButton.LeftButton)
        cancel = window.findChild(QtWidgets.QToolButton, "studyWorkCancel")
        assert cancel is not None and cancel.isVisible()
        qtbot.mouseClick(cancel, QtCore.Qt.MouseButton.LeftButton)
    result = blocker.args[0]
    assert result is not None and result.status == "cancelled"
    with h5py.File(out, "r") as f:
        done = f["entry/samplers/done"][()]
    assert done.sum() < done.size
    assert tab.run_button.isEnabled() and not tab.cancel_button.isEnabled()


def test_bad_choices_say_one_line_and_start_nothing(
    window: MainWindow, tmp_path: Path, recorded: list[threading.Thread]
) -> None:
    tab = study_tab(window)
    for nfe, words in (("5,x", "'x'"), ("0", "positive"), ("5,5", "twice"), ("", "at least")):
        choose(window, ["em"], nfe, 300, tmp_path / "s.h5")
        assert tab.run_study() is None
        assert words in tab.status.text() and "\n" not in tab.status.text()
    choose(window, [], "5", 300, tmp_path / "s.h5")
    assert tab.run_study() is None and "at least one sampler" in tab.status.text()
    assert recorded == [] and tab.task is None
    assert not (tmp_path / "s.h5").exists()


def test_parse_nfe_accepts_commas_and_spaces() -> None:
    assert parse_nfe(" 5, 10 20,50 ") == [5, 10, 20, 50]


def test_a_crowded_log_axis_labels_only_1_2_5_times_a_power_of_ten(qtbot):
    """The loss study's t axis spans two decades: every minor tick labelled ran together."""
    import numpy as np

    from workbench.gui.plots.base import LogAxis

    axis = LogAxis("bottom")
    values = list(np.log10([0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.2]))
    strings = axis.logTickStrings(values, 1.0, 1.0)
    labelled = [round(10**v, 3) for v, s in zip(values, strings, strict=True) if s]
    assert labelled == [0.01, 0.02, 0.05, 0.1, 0.2]
    few = list(np.log10([0.01, 0.1, 1.0]))
    assert all(axis.logTickStrings(few, 1.0, 1.0))
