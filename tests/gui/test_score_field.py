"""The Score field tab in the real main window: learned against true scores, off the GUI thread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6 import QtWidgets
from torch import nn

from tests.gui.conftest import settle as settle_state
from workbench.core.score_field import ERROR_GRID
from workbench.gui.main_window import MainWindow
from workbench.gui.plots.score_field import ScoreFieldTab
from workbench.gui.workers import Task


class Shifted(nn.Module):
    """A score model that is off by a constant vector: s(x, t) + c (a test model)."""

    def __init__(self, model: nn.Module, shift: list[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float64))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.model(x, t) + self.shift.to(x.dtype)


def score_tab(window: MainWindow, **overrides: object) -> ScoreFieldTab:
    if overrides:
        window.set_config(window.config.with_overrides(overrides))
        settle_state(window)  # the state is built in a worker
    tab = window.tabs_by_name["score"]
    window.tab_widget.setCurrentWidget(tab)
    return tab


def settle(qtbot, tab: ScoreFieldTab) -> dict:
    qtbot.waitUntil(tab.is_idle, timeout=20000)
    assert tab.error is None, tab.error
    return tab.view.result


def test_analytic_model_matches_the_truth(qtbot, window: MainWindow, tmp_path: Path) -> None:
    tab = score_tab(window, **{"model.kind": "analytic"})
    r = settle(qtbot, tab)
    assert r["learned"] is None and "no learned score yet" in tab.readout.text()
    assert tab.view.error_hint.isVisible()
    with qtbot.waitSignal(tab.fieldUpdated, timeout=20000):
        window.set_model(window._build_model())
    r = settle(qtbot, tab)
    assert r["learned"].shape == r["true"].shape == (25 * 25, 2)
    assert np.allclose(r["learned"], r["true"], rtol=1e-9, atol=1e-9)
    assert r["error"].shape == (ERROR_GRID, ERROR_GRID)
    assert r["mean_error"] < 1e-9
    for a, b in zip(r["learned_segments"], r["true_segments"], strict=True):
        assert np.allclose(a, b)
    assert "mean error over p_t" in tab.readout.text()
    assert not tab.view.error_hint.isVisible()
    out = tab.export(tmp_path / "score.png")
    assert out.exists() and out.stat().st_size > 1000


def test_a_shifted_model_shows_its_error(qtbot, window: MainWindow) -> None:
    tab = score_tab(window, **{"model.kind": "analytic"})
    shift = [0.6, -0.8]  # |c| = 1
    window.set_model(Shifted(window._build_model(), shift))
    window.time_slider.setValue(400)
    r = settle(qtbot, tab)
    # the error is s(t) |c| everywhere, so its p_t-weighted mean is exactly that
    assert r["mean_error"] == pytest.approx(r["s"] * 1.0, rel=1e-9)
    assert r["mean_raw_error"] == pytest.approx(1.0, rel=1e-9)
    assert r["mean_error"] > 0.5
    assert np.allclose(r["learned"] - r["true"], shift)


def test_the_field_follows_the_slider_refreshes_are_throttled_threads_joined(
    qtbot, window: MainWindow
) -> None:
    tab = score_tab(window, **{"model.kind": "analytic"})
    window.set_model(window._build_model())
    settle(qtbot, tab)
    window.time_slider.setValue(100)
    before = settle(qtbot, tab)
    updates = []
    tab.fieldUpdated.connect(lambda: updates.append(tab.view.result["t"]))
    for value in range(200, 700, 50):  # ten moves before the event loop runs once
        window.time_slider.setValue(value)
    after = settle(qtbot, tab)
    # one refresh was running; of the nine requests made meanwhile only the last is computed
    assert len(updates) == 2
    assert after["t"] == pytest.approx(window.current_time())
    assert not np.allclose(before["true"], after["true"])
    assert not np.allclose(before["learned"], after["learned"])

    # closing the window joins the worker thread, running or not
    window.time_slider.setValue(900)
    assert not tab.is_idle()
    window.close()
    assert tab._task is None and tab.is_idle()
    assert all(task.isFinished() for task in tab.findChildren(Task))


def test_one_dimensional_curves(qtbot, window: MainWindow) -> None:
    tab = score_tab(window, **{"data.name": "gmm1d", "model.kind": "analytic"})
    window.set_model(window._build_model())
    window.time_slider.setValue(50)
    r = settle(qtbot, tab)
    assert r["learned"].shape == r["true"].shape == r["x"].shape
    assert np.allclose(r["learned"], r["true"], rtol=1e-9, atol=1e-9)
    assert r["mean_error"] < 1e-9
    # drawn in data units by default: s_data = s_model / scale, x_data = shift + scale x
    shift, scale = window.state.normalizer.flat_affine(1)
    x, y = tab.view.learned_item.getData()
    assert np.allclose(y, r["learned"] / scale[0])
    assert np.allclose(x, shift[0] + scale[0] * r["x"])
    window.findChild(QtWidgets.QCheckBox, "unitsToggle").setChecked(True)
    x, y = tab.view.learned_item.getData()
    assert np.allclose(y, r["learned"]) and np.allclose(x, r["x"])
    assert "model units" in tab.view.density_plot.getAxis("bottom").labelText


def test_data_without_truth_and_images(qtbot, window: MainWindow) -> None:
    tab = score_tab(window, **{"data.name": "checkerboard"})
    r = settle(qtbot, tab)
    assert r["true"] is None and r["background"].sum() > 0
    assert tab.view.error_plot is None and tab.view.hint.isVisible()
    assert "no exact score" in tab.readout.text()
    window.set_config(window.config.with_overrides({"data.name": "digits", "model.kind": "unet"}))
    settle_state(window)  # the state is built in a worker
    assert tab.view is None and tab.stack.currentWidget() is tab.message
    assert "1-D and 2-D" in tab.message.text()
    assert tab.export_item() is None
