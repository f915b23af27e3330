"""The left dock's panels, one per config section: Data, SDE, Network, Loss & Training, Sampling.

A panel owns the forms of its sections and a few read-outs (the data preview, the parameter
count, the device found). It does not validate: the main window gathers every panel's raw
values, lets the config judge them (:func:`config_errors` asks it for every invalid key, not
only the first), and sends each verdict back to the field it names; :func:`mark_pages` puts a
warning and "(n errors)" on the toolbox page of each panel holding one.
"""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
import torch
from PySide6 import QtCore, QtGui, QtWidgets

from workbench.config import ExperimentConfig, config_from_dict, section_params
from workbench.errors import ConfigError
from workbench.gui.forms import SectionForm

if TYPE_CHECKING:
    from workbench.gui.state import ExperimentState

__all__ = [
    "DataPanel",
    "NetworkPanel",
    "Panel",
    "SDEPanel",
    "SamplingPanel",
    "TrainingPanel",
    "config_errors",
    "describe_devices",
    "mark_pages",
]

MAX_ERRORS = 50  # config_errors asks the config at most this many times


def config_errors(
    tree: dict[str, dict[str, Any]], fallback: dict[str, dict[str, Any]] | None = None
) -> dict[str, str]:
    """Every invalid key of ``tree`` with the config's own message ({"train.lr": "..."}).

    The config stops at its first error, so it is asked again with that key put back to its
    value in ``fallback`` (the last valid config's tree), or left out (its default) where there
    is none, until it accepts the tree: each round finds one more invalid key, by the config's
    own rules (cross-key checks included). An error naming no key, or one met twice, ends it.
    """
    tree = copy.deepcopy(tree)
    errors: dict[str, str] = {}
    for _ in range(MAX_ERRORS):
        try:
            config_from_dict(tree)
            break
        except ConfigError as exc:
            key = exc.key
            if not key or key in errors:
                if not errors:
                    errors[key or ""] = exc.message
                break
            errors[key] = exc.message
            section, _, name = key.partition(".")
            values = tree.get(section)
            if not isinstance(values, dict) or name not in values:
                break
            old = (fallback or {}).get(section, {})
            if name in old and old[name] is not None and old[name] != values[name]:
                values[name] = old[name]
            else:
                del values[name]
    return errors


_SUFFIX = re.compile(r" \(\d+ errors?\)$")


def mark_pages(toolbox: QtWidgets.QToolBox, panels: list[Panel]) -> None:
    """Title each toolbox page by its panel's errors: a warning icon and "(n error[s])" while
    the panel holds an invalid field, the plain title once none is left."""
    warning = toolbox.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_MessageBoxWarning)
    for i in range(toolbox.count()):
        page = toolbox.widget(i)
        panel = page.widget() if isinstance(page, QtWidgets.QScrollArea) else page
        if panel not in panels:
            continue
        base = _SUFFIX.sub("", toolbox.itemText(i))
        n = panel.error_count()
        toolbox.setItemText(i, base if n == 0 else f"{base} ({n} error{'s' * (n != 1)})")
        toolbox.setItemIcon(i, warning if n else QtGui.QIcon())


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
        self.layout_.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop)
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
        return bool(self.mark_all({} if key is None else {key: message or ""}))

    def mark_all(self, errors: dict[str, str]) -> set[str]:
        """Mark every ``section.key`` of ``errors`` here, clear the rest; the keys found."""
        found: set[str] = set()
        for sec, form in self.forms.items():
            mine = {k.partition(".")[2]: m for k, m in errors.items() if k.startswith(sec + ".")}
            found |= {f"{sec}.{name}" for name in form.mark_all(mine)}
        return found

    def error_count(self) -> int:
        return sum(form.error_count() for form in self.forms.values())

    def update_state(self, state: ExperimentState) -> None:
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
    drawRequested = QtCore.Signal()  # "Draw…": the window opens the draw canvas (gui/draw.py)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("dataPanel", parent)
        self.draw_button = QtWidgets.QPushButton("Draw…")
        self.draw_button.setObjectName("drawButton")
        self.draw_button.setToolTip(
            "draw your own 1-D or 2-D data: click to place points or paint with a brush, then "
            "use them as the experiment's data (saved as an .npy file)"
        )
        self.draw_button.clicked.connect(self.drawRequested)
        self.layout_.addWidget(self.draw_button)
        self.preview = pg.PlotWidget(background="w")
        self.preview.setObjectName("dataPreview")
        self.preview.setMinimumHeight(160)
        self.preview.setMaximumHeight(220)
        self.preview.hideButtons()
        self.layout_.addWidget(self.preview)
        self.image = pg.ImageItem()

    def update_state(self, state: ExperimentState) -> None:
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
            blocks = tiles.reshape(4, 4, h + 1, w + 1).transpose(0, 2, 1, 3)
            grid = blocks.reshape(4 * (h + 1), 4 * (w + 1))
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

    def update_state(self, state: ExperimentState) -> None:
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


class SamplingPanel(Panel):
    """Train, Stop and Sample live on the window's Run toolbar, visible whatever panel is open."""

    sections = ("sample",)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("samplingPanel", parent)
        from workbench.gui.guidance_controls import GuidanceControls

        self.guidance = GuidanceControls(self.forms["sample"], self)
        self.layout_.addWidget(self.guidance)

    def update_state(self, state: ExperimentState) -> None:
        self.guidance.update_state(state)
