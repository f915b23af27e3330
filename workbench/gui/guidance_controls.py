"""The class picker and guidance slider of the Sampling panel, and what the views draw for them.

:class:`GuidanceControls` edits ``sample.class_label`` and ``sample.guidance`` through the
Sampling form's own fields (so the config judges them as it judges every key) and is shown
only for labelled data. When a class is chosen, the Score field and Densities tabs draw the
guided field and the tilted density (:class:`workbench.core.guidance.GuidedReference`) for it:
:func:`view_reference` and :func:`view_model` give them what to draw, :func:`same_guidance`
says when a tab must rebuild.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6 import QtCore, QtWidgets

from workbench.core.guidance import GuidedReference, GuidedScore

if TYPE_CHECKING:
    from workbench.gui.forms import SectionForm
    from workbench.gui.state import ExperimentState

__all__ = ["GuidanceControls", "no_class_reason", "same_guidance", "view_model", "view_reference"]

#: the slider's range and resolution: w in [0, SLIDER_MAX / SLIDER_STEPS] by 1 / SLIDER_STEPS
SLIDER_STEPS = 10
SLIDER_MAX = 100


def _choice(state: ExperimentState | None) -> tuple[int, float]:
    if state is None:
        return -1, 0.0
    return int(state.config.sample.class_label), float(state.config.sample.guidance)


def same_guidance(old: ExperimentState | None, new: ExperimentState | None) -> bool:
    """Whether two experiments ask the views for the same class and guidance."""
    return _choice(old) == _choice(new)


def view_reference(
    state: ExperimentState | None, reference: Any, choice: tuple[int, float] | None = None
) -> Any:
    """The reference a view draws: ``reference`` itself without a class; with one, the tilted
    density and guided field of the data's mixture (exact truth), or None where there is no
    mixture or the reference is not the analytic one (no exact guided truth to draw).

    The class and w are the window's (``sample.class_label``, ``sample.guidance``), or
    ``choice`` where the samples shown were drawn for another pair (a study's point)."""
    c, w = _choice(state) if choice is None else (int(choice[0]), float(choice[1]))
    if c < 0 or reference is None or state is None:
        return reference
    truth = state.truth
    if truth is None or getattr(reference, "kind", "") != "analytic":
        return None
    if c >= truth.mixture.n_components:
        return None
    return GuidedReference(reference, truth.mixture, state.sde, c, w)


def view_model(state: ExperimentState | None, model: Any) -> Any:
    """The learned field a view draws: the model, or its guided field for the chosen class
    (None when the model has no such class: a network trained without labels)."""
    c, w = _choice(state)
    if c < 0 or model is None:
        return model
    if c >= int(getattr(model, "num_classes", 0) or 0):
        return None
    return GuidedScore(model, c, w)


def no_class_reason(state: ExperimentState | None, model: Any) -> str | None:
    """Why the learned field is missing for the chosen class (a network trained without
    labels, or with fewer classes), or None when it is not missing for that reason."""
    c, _ = _choice(state)
    if c < 0 or model is None:
        return None
    classes = int(getattr(model, "num_classes", 0) or 0)
    if c < classes:
        return None
    if not classes:
        return (
            f"no learned score for class {c}: this network was trained without labels "
            "(set model.conditional = true and train again)"
        )
    return f"no learned score for class {c}: this network knows classes 0 to {classes - 1}"


class GuidanceControls(QtWidgets.QGroupBox):
    """A class combo (``guidanceClass``: "none", then each class) and a guidance slider
    (``guidanceSlider``, w from 0 to 10 by 0.1) that set the Sampling form's keys."""

    def __init__(self, form: SectionForm, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("class and guidance", parent)
        self.setObjectName("guidanceControls")
        self.form = form
        layout = QtWidgets.QFormLayout(self)
        self.combo = QtWidgets.QComboBox()
        self.combo.setObjectName("guidanceClass")
        self.combo.setToolTip(
            "sample this class (mixtures: a component; digits: the digit); the Score field "
            "and Densities tabs show its guided field and tilted density"
        )
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setObjectName("guidanceSlider")
        self.slider.setRange(0, SLIDER_MAX)
        self.slider.setToolTip("classifier-free guidance w: (1+w) ∇log p_t(x|c) − w ∇log p_t(x)")
        self.value_label = QtWidgets.QLabel("w = 0")
        self.value_label.setObjectName("guidanceValue")
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.value_label)
        layout.addRow("class", self.combo)
        layout.addRow("guidance", row)
        self.combo.currentIndexChanged.connect(self._class_chosen)
        self.slider.valueChanged.connect(self._guidance_moved)
        self.setVisible(False)

    # -- from the experiment ------------------------------------------------------------------
    def update_state(self, state: ExperimentState) -> None:
        """Show the controls for labelled data, filled from the config's keys."""
        classes = state.dataset.num_classes
        self.setVisible(classes > 0)
        c, w = _choice(state)
        with QtCore.QSignalBlocker(self.combo), QtCore.QSignalBlocker(self.slider):
            if self.combo.count() != classes + 1:
                self.combo.clear()
                self.combo.addItem("none (unconditional)")
                self.combo.addItems([f"class {k}" for k in range(classes)])
            self.combo.setCurrentIndex(c + 1 if 0 <= c < classes else 0)
            self.slider.setValue(round(min(w, SLIDER_MAX / SLIDER_STEPS) * SLIDER_STEPS))
        self.slider.setEnabled(c >= 0)
        self.value_label.setText(f"w = {w:g}")

    # -- to the form --------------------------------------------------------------------------
    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            field = self.form.fields.get(name)
            if field is not None:
                field.set_value(value)
        self.form.edited.emit()

    def _class_chosen(self, index: int) -> None:
        c = index - 1
        self.slider.setEnabled(c >= 0)
        if c < 0:  # guidance needs a class: none takes it back to 0
            with QtCore.QSignalBlocker(self.slider):
                self.slider.setValue(0)
            self.value_label.setText("w = 0")
            self._set(class_label=-1, guidance=0.0)
        else:
            self._set(class_label=c)

    def _guidance_moved(self, position: int) -> None:
        w = position / SLIDER_STEPS
        self.value_label.setText(f"w = {w:g}")
        self._set(guidance=w)
