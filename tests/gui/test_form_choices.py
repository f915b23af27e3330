"""The forms' combo boxes offer what the registries hold: a class registered is a choice in the
GUI too, with nothing listed in the GUI itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6 import QtCore, QtWidgets

from tests.registry_dummies import DUMMIES, registered
from workbench.config import config_to_dict, default_config, section_params
from workbench.gui.main_window import MainWindow
from workbench.gui.panels import (
    DataPanel,
    NetworkPanel,
    Panel,
    SamplingPanel,
    SDEPanel,
    TrainingPanel,
)

_PANELS: dict[str, type[Panel]] = {
    "data": DataPanel,
    "sde": SDEPanel,
    "model": NetworkPanel,
    "loss": TrainingPanel,
    "train": TrainingPanel,
    "sample": SamplingPanel,
}


def _combo(root: QtWidgets.QWidget, key: str) -> QtWidgets.QComboBox:
    section, _, name = key.partition(".")
    form = root.findChild(QtWidgets.QWidget, f"{section}Form")
    assert form is not None, section
    combo = form.findChild(QtWidgets.QComboBox, f"field_{name}")
    assert combo is not None, key
    return combo


def _items(combo: QtWidgets.QComboBox) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


@pytest.fixture(params=sorted(DUMMIES))
def dummy(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    with registered(request.param) as (name, _):
        yield request.param, name


def test_a_registered_entry_is_offered_by_its_combo_box(qtbot, dummy: tuple[str, str]) -> None:
    key, name = dummy
    panel = _PANELS[key.partition(".")[0]]()
    qtbot.addWidget(panel)
    cfg = default_config()
    panel.load(cfg, config_to_dict(cfg))
    items = _items(_combo(panel, key))
    assert name in items
    # exactly the config's choices, in its order: the form keeps no list of its own
    section, _, field = key.partition(".")
    param = next(p for p in section_params(None, section) if p.name == field)
    assert items == list(param.check.options) and len(items) == len(set(items))


def test_without_the_entry_the_combo_box_does_not_offer_it(qtbot) -> None:
    with registered("sample.sampler") as (name, _):
        pass
    panel = SamplingPanel()
    qtbot.addWidget(panel)
    cfg = default_config()
    panel.load(cfg, config_to_dict(cfg))
    assert name not in _items(_combo(panel, "sample.sampler"))


@pytest.mark.parametrize("key", ["sample.sampler", "loss.kind", "model.activation"])
def test_choosing_a_registered_entry_makes_a_valid_experiment(
    qtbot, tmp_path: Path, key: str
) -> None:
    with registered(key) as (name, _):
        settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.IniFormat)
        window = MainWindow(settings=settings, runs_dir=tmp_path / "runs")
        qtbot.addWidget(window)
        window.show()
        try:
            combo = _combo(window, key)
            combo.setCurrentIndex(combo.findText(name))
            section, _, field = key.partition(".")
            qtbot.waitUntil(
                lambda: getattr(getattr(window.config, section), field) == name, timeout=5000
            )
            # Train comes back once the experiment's state arrives from its worker
            qtbot.waitUntil(window.train_button.isEnabled, timeout=60_000)
            assert window.valid and window.experiment_ready()
        finally:
            window.close()
