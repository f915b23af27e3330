"""The class picker and guidance slider in the real main window, and what the Score field and
Densities tabs draw for them: the guided field against its exact truth, guided samples against
the tilted density."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PySide6 import QtCore

from tests.gui.conftest import settle
from workbench.core.grids import grid_centres
from workbench.core.guidance import guided_field
from workbench.core.score_field import ARROWS
from workbench.gui.main_window import MainWindow

OVERLAP = {"data.means": [-1.0, 1.0], "data.stds": [1.0, 1.0], "data.weights": [0.5, 0.5]}


def controls(window: MainWindow):
    box = window.findChild(QtCore.QObject, "guidanceControls")
    assert box is not None
    return box


def choose(qtbot, window: MainWindow, c: int, slider: int | None = None) -> None:
    box = controls(window)
    box.combo.setCurrentIndex(c + 1)
    if slider is not None:
        box.slider.setValue(slider)
    window.validate()
    settle(window)
    qtbot.waitUntil(lambda: window.state.config.sample.class_label == c)


def test_controls_show_for_labelled_data_and_set_the_keys(qtbot, window: MainWindow) -> None:
    window.set_config(window.config.with_overrides({"data.name": "moons"}))
    settle(window)
    assert controls(window).isHidden()
    window.set_config(window.config.with_overrides({"data.name": "8gaussians"}))
    settle(window)
    box = controls(window)
    assert not box.isHidden() and box.combo.count() == 9  # none + 8 components
    assert not box.slider.isEnabled()  # no class, no guidance
    choose(qtbot, window, 3, slider=25)
    assert window.state.config.sample.class_label == 3
    assert window.state.config.sample.guidance == 2.5
    assert box.value_label.text() == "w = 2.5"
    form = window.findChild(QtCore.QObject, "sampleForm")
    assert form.fields["class_label"].value() == 3
    # back to none: guidance goes back to 0 (it needs a class), the config stays valid
    box.combo.setCurrentIndex(0)
    window.validate()
    settle(window)
    assert window.valid
    assert window.state.config.sample.class_label == -1
    assert window.state.config.sample.guidance == 0.0
    # a config loaded with a class shows it in the controls
    window.set_config(window.config.with_overrides({"sample.class_label": 5}))
    settle(window)
    assert box.combo.currentIndex() == 6 and box.slider.isEnabled()


def test_score_tab_draws_the_guided_field_learned_beside_exact(qtbot, window: MainWindow) -> None:
    window.set_config(window.config.with_overrides({"model.kind": "analytic"}))
    settle(window)
    window.set_model(window._build_model())
    choose(qtbot, window, 2, slider=20)
    tab = window.tabs_by_name["score"]
    window.tab_widget.setCurrentWidget(tab)
    qtbot.waitUntil(
        lambda: tab.is_idle() and tab.view is not None and tab.view.result is not None,
        timeout=30000,
    )
    qtbot.waitUntil(lambda: tab.view.result["reference"] is tab.shown_reference, timeout=30000)
    r = tab.view.result
    assert tab.shown_reference.kind == "guided"
    # the truth drawn is the closed-form guided field of the model-units mixture at t
    state = window.state
    m, s = state.sde.marginal_coeffs(torch.tensor(r["t"], dtype=torch.float64))
    c = grid_centres(r["half"], ARROWS)
    origins = np.stack([a.ravel() for a in np.meshgrid(c, c, indexing="ij")], axis=1)
    expected = guided_field(state.truth.mixture, torch.from_numpy(origins), 2, 2.0, m, s).numpy()
    assert np.allclose(r["true"], expected, atol=1e-9)
    # the analytic model guided by the same class and w matches it: zero error
    assert np.allclose(r["learned"], r["true"], atol=1e-9)
    assert r["mean_error"] < 1e-9
    assert "tilted" in tab.view.field.titleLabel.text or "tilted" in tab.readout.text()


def test_densities_show_how_far_guided_samples_land_from_the_tilted_density(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    window.set_config(
        window.config.with_overrides(
            {
                "data.name": "gmm1d",
                **OVERLAP,
                "model.kind": "analytic",
                "sample.n": 4000,
                "sample.steps": 200,
                "sample.record_every": 50,
            }
        )
    )
    settle(window)
    tab = window.tabs_by_name["density"]
    window.tab_widget.setCurrentWidget(tab)
    distances = {}
    for w_slider in (0, 40):
        choose(qtbot, window, 1, slider=w_slider)
        qtbot.waitUntil(lambda w=w_slider: window.state.config.sample.guidance == w / 10)
        with qtbot.waitSignal(window.samplingFinished, timeout=120_000) as done:
            window.start_sampling()
        assert done.args[0] is not None
        assert tab.view is not None and "tilted" in tab.view.truth.label
        window.time_slider.setValue(0)
        tab.flush_redraw()
        d, noise = tab.view.distances["reverse"]
        distances[w_slider] = (d, noise)
        assert "reverse vs tilted" in tab.readout.text()
    d0, noise0 = distances[0]
    d4, noise4 = distances[40]
    # w = 0 samples p(x|c) = the tilted density at w = 0; w = 4 lands far from its tilt
    assert d0 < 3 * noise0
    assert d4 > 5 * noise4 and d4 > 2 * d0


def test_a_class_chosen_for_a_network_without_labels_says_why_it_has_no_field(
    qtbot, window: MainWindow
) -> None:
    """An unconditional network has no class score: the Score tab names that, not the
    generic "no learned score yet"."""
    settle(window)
    model = window._build_model()  # the default MLP, trained without labels
    window.set_model(model)
    choose(qtbot, window, 1)
    tab = window.tabs_by_name["score"]
    window.tab_widget.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: "trained without labels" in tab.readout.text(), timeout=30000)
    assert "model.conditional" in tab.readout.text()
