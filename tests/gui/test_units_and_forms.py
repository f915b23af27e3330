"""Data units by default and one model-units switch; readable trajectory defaults; the
inspector's Paths following its slider; forms that show only the keys of the chosen kind and
mark every invalid field (and its toolbox page) at once. Real windows, by object name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtWidgets

from tests.gui.test_trajectories_tab import trajectory_tab, write_trajectory
from workbench.config import SECTION_PARAMS, section_params
from workbench.core.data import DATASETS
from workbench.core.sde import SDES
from workbench.gui.forms import applies
from workbench.gui.inspector.window import InspectorWindow
from workbench.gui.main_window import MainWindow
from workbench.gui.plots.trajectories import DEFAULT_PATHS, PATH_OPACITY, path_alpha


def toggle(window: MainWindow) -> QtWidgets.QCheckBox:
    box = window.findChild(QtWidgets.QCheckBox, "unitsToggle")
    assert box is not None
    return box


def preview_range(window: MainWindow) -> np.ndarray:
    """(2, 2): [min, max] of x₁ and x₂ of the Data preview's scatter (data units)."""
    item = window.data_panel.preview.getPlotItem().listDataItems()[0]
    x, y = item.getData()
    return np.array([[x.min(), x.max()], [y.min(), y.max()]])


# ------------------------------------------------------------------------------------ units
def test_units_switch_labels_and_density_range(window: MainWindow) -> None:
    window.set_config(window.config.with_overrides({"data.radius": 8.0, "data.std": 0.2}))
    tab = window.tabs_by_name["density"]
    window.tab_widget.setCurrentWidget(tab)
    window.time_slider.setValue(0)
    tab.flush_redraw()
    assert not toggle(window).isChecked()  # data units by default
    view = tab.view
    plot = view.plots["forward"]
    assert plot.getAxis("bottom").labelText == "x₁ (data units)"
    assert plot.getAxis("left").labelText == "x₂ (data units)"
    data_rect = view.images["forward"].mapRectToParent(view.images["forward"].boundingRect())
    pre = preview_range(window)
    # at t = 0 the forward particles are the data: the window holds the preview's points and
    # is of their size (h = 1.1 q + 4 s(t), a little wider than the points' range)
    for lo_hi, (a, b) in zip(
        pre,
        [(data_rect.left(), data_rect.right()), (data_rect.top(), data_rect.bottom())],
        strict=True,
    ):
        assert a <= lo_hi[0] and lo_hi[1] <= b
        assert (b - a) < 1.6 * (lo_hi[1] - lo_hi[0])
    toggle(window).setChecked(True)
    tab.flush_redraw()
    assert plot.getAxis("bottom").labelText == "x₁ (model units)"
    model_rect = view.images["forward"].mapRectToParent(view.images["forward"].boundingRect())
    h = view.half
    assert model_rect.left() == pytest.approx(-h) and model_rect.right() == pytest.approx(h)
    # the data here (radius 8) are several model units wide: the two ranges differ
    assert data_rect.width() > 2 * model_rect.width()
    for name in ("score", "trajectories"):
        assert window.tabs_by_name[name].model_units


def test_units_switch_moves_the_trajectories(window: MainWindow, tmp_path: Path) -> None:
    window.set_config(window.config.with_overrides({"data.radius": 8.0}))
    tab = trajectory_tab(window, model_units=False)
    window.open_trajectory(write_trajectory(window, tmp_path / "walk.h5"))
    tab.flush_redraw()
    norm = window.state.normalizer
    traj = window.trajectory
    k = traj.index_of_time(tab.shown_time())
    model = traj.row(k)[:DEFAULT_PATHS]
    assert np.allclose(tab.dot_positions(), norm.points_to_data(model), atol=1e-5)
    assert tab.view.plot.getAxis("bottom").labelText == "x₁ (data units)"
    toggle(window).setChecked(True)
    tab.flush_redraw()
    assert np.allclose(tab.dot_positions(), model, atol=1e-6)
    assert tab.view.plot.getAxis("left").labelText == "x₂ (model units)"
    toggle(window).setChecked(False)
    tab.flush_redraw()
    assert np.allclose(tab.dot_positions(), norm.points_to_data(model), atol=1e-5)


def test_trajectory_defaults_read(window: MainWindow, tmp_path: Path) -> None:
    tab = trajectory_tab(window, model_units=False)
    window.open_trajectory(write_trajectory(window, tmp_path / "walk.h5"))
    tab.flush_redraw()
    assert tab.subset.value() == DEFAULT_PATHS == 40 and tab.path_count() == 40
    assert tab.view.alpha == path_alpha(40) and abs(tab.view.alpha - 255 * PATH_OPACITY) <= 1
    assert path_alpha(400) < path_alpha(40)  # more paths, fainter
    # the end points (the last row, t = eps) of the drawn paths, as dots
    ends = tab.end_positions()
    last = window.trajectory.row(window.trajectory.n_saved - 1)[:DEFAULT_PATHS]
    assert np.allclose(ends, window.state.normalizer.points_to_data(last), atol=1e-5)
    # and the final samples as a scatter
    assert len(tab.view.final_item.data) == min(600, 5000)


def test_inspector_paths_follow_the_slider(qtbot, window: MainWindow, tmp_path: Path) -> None:
    path = write_trajectory(window, tmp_path / "walk.h5")
    inspector = InspectorWindow()
    qtbot.addWidget(inspector)
    inspector.show()
    assert inspector.open(path)
    view = inspector.current()
    paths = view.show_view("Paths")
    slider = view.slider
    slider.setValue(slider.maximum())
    paths.flush_redraw()
    at_end = paths.segments_drawn
    assert paths.row_shown == slider.maximum() and at_end > 0
    slider.setValue(slider.maximum() // 2)
    paths.flush_redraw()
    assert paths.row_shown == slider.maximum() // 2
    assert 0 < paths.segments_drawn < at_end
    slider.setValue(0)
    paths.flush_redraw()
    assert paths.segments_drawn == 0  # at t = T no path has begun
    inspector.close()


# ------------------------------------------------------------------------------------ forms
def _page(window: MainWindow, panel: QtWidgets.QWidget) -> int:
    for i in range(window.toolbox.count()):
        if window.toolbox.widget(i).widget() is panel:
            return i
    raise AssertionError("panel not in the toolbox")


def _check_visibility(window: MainWindow, panel, section: str) -> int:
    """Every field of the form is shown iff its declaration applies (field and label)."""
    window.toolbox.setCurrentIndex(_page(window, panel))
    QtWidgets.QApplication.processEvents()
    form = panel.forms[section]
    values = {name: field.value() for name, field in form.fields.items()}
    hidden = 0
    for name, field in form.fields.items():
        want = applies(field.param, values)
        assert field.widget.isVisible() == want, (section, values, name)
        assert form.labels[name].isVisible() == want, (section, name)
        hidden += not want
    return hidden


def test_channels_only_for_the_unet(window: MainWindow) -> None:
    panel = window.network_panel
    form = panel.forms["model"]
    window.toolbox.setCurrentIndex(_page(window, panel))
    form.fields["kind"].widget.setCurrentText("mlp")
    QtWidgets.QApplication.processEvents()
    assert not form.fields["channels"].widget.isVisible()
    assert not form.labels["channels"].isVisible()
    assert form.fields["hidden"].widget.isVisible()
    form.fields["kind"].widget.setCurrentText("unet")
    QtWidgets.QApplication.processEvents()
    assert form.fields["channels"].widget.isVisible() and form.labels["channels"].isVisible()
    assert not form.fields["hidden"].widget.isVisible()


def test_every_kind_of_every_section_shows_its_own_keys(window: MainWindow) -> None:
    panels = {
        "model": window.network_panel,
        "loss": window.training_panel,
        "sample": window.sampling_panel,
        "data": window.data_panel,
        "sde": window.sde_panel,
    }
    hidden_somewhere = 0
    # the fixed sections: every option of every Choice that some key's "when" names
    for section in SECTION_PARAMS:
        if section not in panels:
            continue
        params = section_params(None, section)
        selectors = {key for p in params for key in (p.extra.get("when") or {})}
        form = panels[section].forms[section]
        for key in selectors:
            for option in form.fields[key].param.check.options:
                form.fields[key].widget.setCurrentText(option)
                hidden_somewhere += _check_visibility(window, panels[section], section)
    assert hidden_somewhere > 0
    # data sets and SDEs: the form holds exactly the chosen one's declared keys
    for section, selector, registry in (("data", "name", DATASETS), ("sde", "kind", SDES)):
        panel = panels[section]
        for name in registry.names():
            panel.forms[section].fields[selector].widget.setCurrentText(name)
            declared = [p.name for p in section_params(name, section)]
            assert list(panel.forms[section].fields) == declared, name
            _check_visibility(window, panel, section)


def test_every_invalid_field_is_marked_with_its_page(window: MainWindow) -> None:
    train = window.training_panel.forms["train"]
    sample = window.sampling_panel.forms["sample"]
    train.fields["lr"].widget.setText("-1")
    sample.fields["eps"].widget.setText("2")
    assert not window.validate()
    assert train.fields["lr"].error and "> 0" in train.fields["lr"].error
    assert sample.fields["eps"].error and "< T = 1" in sample.fields["eps"].error
    assert train.fields["lr"].error_label.text() == train.fields["lr"].error
    titles = [window.toolbox.itemText(i) for i in range(window.toolbox.count())]
    i_train = _page(window, window.training_panel)
    i_sample = _page(window, window.sampling_panel)
    assert titles[i_train].endswith("(1 error)") and titles[i_sample].endswith("(1 error)")
    assert not window.toolbox.itemIcon(i_train).isNull()
    assert all("error" not in t for i, t in enumerate(titles) if i not in (i_train, i_sample))
    assert not window.train_button.isEnabled()

    sample.fields["eps"].widget.setText("0.001")
    assert not window.validate()
    assert sample.fields["eps"].error is None and train.fields["lr"].error
    assert window.toolbox.itemText(i_sample) == "Sampling"
    assert window.toolbox.itemIcon(i_sample).isNull()
    assert window.toolbox.itemText(i_train).endswith("(1 error)")

    train.fields["lr"].widget.setText("0.002")
    assert window.validate()
    assert train.fields["lr"].error is None
    assert window.toolbox.itemText(i_train) == "Loss && Training"


def test_an_error_on_a_hidden_key_is_shown(window: MainWindow) -> None:
    """rho shows only for the edm grid; a bad rho (loaded, say) with another grid is shown,
    marked, whatever the choice: an error is never hidden."""
    sample = window.sampling_panel.forms["sample"]
    window.toolbox.setCurrentIndex(_page(window, window.sampling_panel))
    assert sample.fields["grid"].value() != "edm" and not sample.shown("rho")
    sample.fields["rho"].widget.setText("-1")
    assert not window.validate()
    assert sample.fields["rho"].error and sample.shown("rho")
    QtWidgets.QApplication.processEvents()
    assert sample.fields["rho"].widget.isVisible()
    sample.fields["rho"].widget.setText("7.0")
    assert window.validate()
    assert not sample.shown("rho")
