"""Config forms: expression fields checked as typed, the message under the field, Train off."""

from __future__ import annotations

from PySide6 import QtWidgets

from tests.gui.conftest import custom
from workbench.gui.main_window import MainWindow


def test_custom_drift_is_multiline_and_checked_as_typed(qtbot, window: MainWindow) -> None:
    custom(window, **{"data.name": "8gaussians", "sde.drift": "-x2; x1", "sde.g": "1"})
    window.toolbox.setCurrentWidget(window.toolbox.widget(1))
    form = window.sde_panel.forms["sde"]
    drift = form.fields["drift"]
    assert isinstance(drift.widget, QtWidgets.QPlainTextEdit)
    assert drift.widget.toPlainText() == "-x2\nx1"  # one component per line
    assert drift.widget.minimumHeight() >= 3 * drift.widget.fontMetrics().lineSpacing()
    assert window.train_button.isEnabled()

    # a syntax error in the second component: marked under the field, Train disabled
    drift.widget.clear()
    qtbot.keyClicks(drift.widget, "-x2")
    qtbot.keyClick(drift.widget, "\r")
    qtbot.keyClicks(drift.widget, "x1 +")
    qtbot.waitUntil(lambda: not window.valid, timeout=5000)
    assert drift.error_label.isVisible()
    assert "component 2 of 2" in drift.error_label.text()
    assert not window.train_button.isEnabled() and not window.sample_button.isEnabled()

    # an unknown variable is named
    drift.widget.setPlainText("-x3\nx1")
    qtbot.waitUntil(lambda: "x3" in drift.error_label.text(), timeout=5000)

    # one component for 2-D data: the config says how many are needed
    drift.widget.setPlainText("-x1")
    qtbot.waitUntil(lambda: "2 dimension" in drift.error_label.text(), timeout=5000)

    # fixed: the mark goes, Train comes back, the config holds the joined text
    drift.widget.setPlainText("-x2 - 0.5*x1\nx1\n")
    qtbot.waitUntil(lambda: window.valid, timeout=5000)
    assert not drift.error_label.isVisible() and window.train_button.isEnabled()
    assert window.config.sde.params["drift"] == "-x2 - 0.5*x1; x1"


def test_expression_fields_of_the_linear_sde(qtbot, window: MainWindow) -> None:
    window.set_config(window.config.with_overrides({"sde.kind": "linear"}))
    window.toolbox.setCurrentWidget(window.toolbox.widget(1))
    g = window.sde_panel.forms["sde"].fields["g"]
    g.widget.clear()
    qtbot.keyClicks(g.widget, "sqrt(0.1 + 19.9*t")
    qtbot.waitUntil(lambda: not window.valid, timeout=5000)
    assert g.error_label.isVisible() and g.error_label.text()
    assert not window.train_button.isEnabled()
    qtbot.keyClicks(g.widget, ")")
    qtbot.waitUntil(lambda: window.valid, timeout=5000)
    assert not g.error_label.isVisible() and window.train_button.isEnabled()
    g.widget.setText("sqrt(-1 + t)")
    g.edited.emit()
    qtbot.waitUntil(lambda: not window.valid, timeout=5000)
    assert "must be finite and >= 0" in g.error_label.text()
