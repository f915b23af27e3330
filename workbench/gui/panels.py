"""The left dock's panels, one per config section: Data, SDE, Network, Loss & Training, Sampling.

A panel owns the forms of its sections and a few read-outs (the data preview, the parameter
count, the device found). It does not validate: the main window gathers every panel's raw
values, lets the config judge them, and sends the verdict back to the field it names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
import torch
from PySide6 import QtCore, QtWidgets

from workbench.config import ExperimentConfig, section_params
from workbench.gui.forms import SectionForm

__all__ = [
    "DataPanel",
    "NetworkPanel",
    "Panel",
    "SDEPanel",
    "SamplingPanel",
    "TrainingPanel",
    "describe_devices",
]


def describe_devices() -> str:
    """What training with device = auto will use: the CUDA device's name, or the CPU."""
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return "CUDA: " + ", ".join(names)
    return f"CPU only ({torch.get_num_threads()} threads; no CUDA device found)"


class Panel(QtWidgets.QWidget):
    """A group of section forms; ``edited`` fires on any change in them."""

    edited = QtCore.Signal()
    sections: tuple[str, ...] = ()

    def __init__(self, object_name: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.forms: dict[str, SectionForm] = {}
        self.layout_ = QtWidgets.QVBoxLayout(self)
        self.layout_.setContentsMargins(2, 2, 2, 2)
        self.layout_.setAlignment(QtCore.Qt.AlignTop)
        for section in self.sections:
            form = SectionForm(section)
            form.edited.connect(self._on_edit)
            if len(self.sections) > 1:
                box = QtWidgets.QGroupBox(f"[{section}]")
                QtWidgets.QVBoxLayout(box).addWidget(form)
                self.layout_.addWidget(box)
            else:
                self.layout_.addWidget(form)
            self.forms[section] = form

    def _on_edit(self) -> None:
        self.edited.emit()

    def load(self, config: ExperimentConfig, tree: dict[str, dict[str, Any]]) -> None:
        """Fill the forms from a config (``tree`` is its ``config_to_dict``)."""
        for section, form in self.forms.items():
            form.set_params(section_params(config, section), tree[section])

    def raw(self) -> dict[str, dict[str, Any]]:
        return {section: form.values() for section, form in self.forms.items()}

    def mark(self, key: str | None, message: str | None) -> bool:
        """Mark ``section.key``; clears every other mark in this panel."""
        section, _, name = (key or "").partition(".")
        found = False
        for sec, form in self.forms.items():
            found = form.mark(name if sec == section else None, message) or found
        return found

    def update_state(self, state: Any) -> None:
        """A new valid experiment (override for read-outs)."""


class _KindSwitchingPanel(Panel):
    """Data and SDE: changing the name/kind rebuilds the fields for the new set's keys."""

    selector = ""

    def __init__(self, object_name: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(object_name, parent)
        self._current = None

    def load(self, config: ExperimentConfig, tree: dict[str, dict[str, Any]]) -> None:
        super().load(config, tree)
        section = self.sections[0]
        self._current = tree[section][self.selector]
        self._connect_selector()

    def _connect_selector(self) -> None:
        form = self.forms[self.sections[0]]
        form.fields[self.selector].edited.connect(self._selector_changed)

    def _selector_changed(self) -> None:
        section = self.sections[0]
        form = self.forms[section]
        chosen = form.fields[self.selector].value()
        if chosen == self._current:
            return
        self._current = chosen
        kept = {k: v for k, v in form.values().items() if k in (self.selector, "n")}
        form.set_params(section_params(chosen, section), kept)
        self._connect_selector()
        self.edited.emit()


class DataPanel(_KindSwitchingPanel):
    sections = ("data",)
    selector = "name"

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("dataPanel", parent)
        self.preview = pg.PlotWidget(background="w")
        self.preview.setObjectName("dataPreview")
        self.preview.setMinimumHeight(160)
        self.preview.setMaximumHeight(220)
        self.preview.hideButtons()
        self.layout_.addWidget(self.preview)
        self.image = pg.ImageItem()

    def update_state(self, state: Any) -> None:
        """A scatter of 2000 points (2-D), a histogram (1-D) or a grid of images."""
        item = self.preview.getPlotItem()
        item.clear()
        gen = torch.Generator().manual_seed(0)
        if state.is_image:
            x = state.dataset.sample(16, gen).numpy()[:, 0]
            _, h, w = state.dataset.sample_shape
            # a 1-pixel gutter between images: 8x8 digits side by side read as stripes
            low, high = float(x.min()), float(x.max())
            tiles = np.full((16, h + 1, w + 1), low - 0.25 * (high - low))
            tiles[:, :h, :w] = x
            grid = tiles.reshape(4, 4, h + 1, w + 1).transpose(0, 2, 1, 3)
            grid = grid.reshape(4 * (h + 1), 4 * (w + 1))
            self.image.setImage(grid.T[:, ::-1])
            item.addItem(self.image)
            item.setAspectLocked(True)
            return
        x = state.dataset.sample(2000, gen).reshape(2000, -1).numpy()
        item.setAspectLocked(False)
        if x.shape[1] == 1:
            hist, edges = np.histogram(x[:, 0], bins=60, density=True)
            item.plot(edges, hist, stepMode="center", fillLevel=0, brush="#1f77b460")
        else:
            item.plot(
                x[:, 0],
                x[:, 1],
                pen=None,
                symbol="o",
                symbolSize=2,
                symbolBrush="#1f77b480",
                symbolPen=None,
            )
            item.setAspectLocked(True)


class SDEPanel(_KindSwitchingPanel):
    sections = ("sde",)
    selector = "kind"

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("sdePanel", parent)
        note = QtWidgets.QLabel("β(t), m(t), s(t) and SNR(t) are drawn in the Schedule tab.")
        note.setWordWrap(True)
        note.setStyleSheet("color: gray")
        self.layout_.addWidget(note)


class NetworkPanel(Panel):
    sections = ("model",)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("networkPanel", parent)
        self.count = QtWidgets.QLabel("parameters: —")
        self.count.setObjectName("parameterCount")
        self.layout_.addWidget(self.count)

    def update_state(self, state: Any) -> None:
        from workbench.core.nets import count_parameters
        from workbench.errors import WorkbenchError

        try:
            model = state.build_model()
        except WorkbenchError as exc:
            self.count.setText(f"parameters: — ({exc})")
            return
        self.count.setText(f"parameters: {count_parameters(model):,}")


class TrainingPanel(Panel):
    sections = ("loss", "train")

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("trainingPanel", parent)
        self.device = QtWidgets.QLabel(f"found: {describe_devices()}")
        self.device.setObjectName("deviceFound")
        self.device.setWordWrap(True)
        self.layout_.addWidget(self.device)
        buttons = QtWidgets.QHBoxLayout()
        self.train_button = QtWidgets.QPushButton("Train")
        self.train_button.setObjectName("trainButton")
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setEnabled(False)
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.stop_button)
        self.layout_.addLayout(buttons)


class SamplingPanel(Panel):
    sections = ("sample",)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("samplingPanel", parent)
        self.sample_button = QtWidgets.QPushButton("Sample")
        self.sample_button.setObjectName("sampleButton")
        self.layout_.addWidget(self.sample_button)
