"""GUI fixtures: a real MainWindow with its settings and run folders in a temporary place.

Every test's threads are joined at teardown: a window still working is stopped and waited for.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6 import QtCore, QtWidgets

from workbench.gui.collector import GuiCollector, install_gui_collector
from workbench.gui.inspector import InspectorWindow
from workbench.gui.main_window import MainWindow


@pytest.fixture(autouse=True, scope="package")
def collect_on_the_gui_thread(qapp: QtWidgets.QApplication) -> Iterator[GuiCollector]:
    """The app's own collector (workbench/gui/collector.py) for these tests, as in the app:
    automatic collection off, cyclic garbage collected by a timer on the GUI thread. Left to
    the automatic collector, a dead Qt wrapper may be freed inside a worker thread, and
    shiboken's deferred deletion then deadlocks against a worker's signal (seen once). Not
    frozen: the tests' start-up objects may still become garbage."""
    collector = install_gui_collector(freeze=False)
    yield collector
    collector.uninstall()


@pytest.fixture(autouse=True)
def collect_after_each_test() -> Iterator[None]:
    """Each test's dead widgets go here, on the GUI thread, before the next test's workers."""
    yield
    gc.collect()


@pytest.fixture
def settings(tmp_path: Path) -> QtCore.QSettings:
    return QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.IniFormat)


@pytest.fixture
def window(qtbot, tmp_path: Path, settings: QtCore.QSettings) -> Iterator[MainWindow]:
    w = MainWindow(settings=settings, runs_dir=tmp_path / "runs")
    w.confirm = lambda question: True
    qtbot.addWidget(w)
    w.show()
    settle(w)
    yield w
    if w.task is not None:
        w.task.cancel()
        w.task.wait()
    w.close()


@pytest.fixture
def inspector(qtbot) -> Iterator[InspectorWindow]:
    """A shown inspector window on its own (the main window opens its own one)."""
    w = InspectorWindow()
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def settle(window: MainWindow, timeout_ms: int = 60_000) -> MainWindow:
    """Run the event loop until the window's experiment state for its config has arrived
    from the worker that builds it, or failed (``experimentChanged``/``experimentFailed``);
    then any model loading it started has finished too."""

    def settled() -> bool:
        return window.experiment_settled() and not window.model_loading()

    if not settled():
        loop = QtCore.QEventLoop()
        poll = QtCore.QTimer()
        poll.setInterval(5)
        poll.timeout.connect(lambda: loop.quit() if settled() else None)
        QtCore.QTimer.singleShot(timeout_ms, loop.quit)
        poll.start()
        loop.exec()
        poll.stop()
    assert settled(), "the experiment was not built in time"
    return window


def fast(window: MainWindow, **overrides: object) -> None:
    """Shrink the experiment so a test trains in a second or two."""
    base = {
        "train.device": "cpu",
        "train.steps": 200,
        "train.batch_size": 256,
        "train.log_every": 10,
        "train.checkpoint_every": 100,
        "data.n": 4096,
        "model.hidden": 64,
        "sample.n": 500,
        "sample.steps": 100,
        "sample.record_every": 5,
    }
    base.update(overrides)
    window.set_config(window.config.with_overrides(base))
    settle(window)


def custom(window: MainWindow, **overrides: object) -> None:
    """A non-linear SDE: the losses and outputs that need a Gaussian kernel switched off."""
    base = {
        "sde.kind": "custom",
        "loss.kind": "ssm",
        "loss.weighting": "none",
        "model.output": "score",
        "sample.denoise": False,
    }
    base.update(overrides)
    window.set_config(window.config.with_overrides(base))
    settle(window)
