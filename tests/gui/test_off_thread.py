"""The heavy work runs off the GUI thread: structural checks, not timings.

Each test wraps the real function with a recorder (monkeypatch: the real work still runs) that
notes the thread it ran on, drives the real window, and asserts that thread was not the main
one. The statistics worker's progress and Cancel are checked through the status bar's widgets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from tests.gui.conftest import fast
from workbench.config import default_config, to_toml
from workbench.gui.inspector import InspectorWindow
from workbench.gui.main_window import MainWindow
from workbench.io.trajectories import TrajectoryWriter


def record(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[threading.Thread]:
    """Wrap ``owner.name`` so that every call notes its thread, then runs the real function."""
    real = getattr(owner, name)
    threads: list[threading.Thread] = []

    def recorder(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, recorder)
    return threads


def off_main(threads: list[threading.Thread]) -> bool:
    return bool(threads) and all(t is not threading.main_thread() for t in threads)


def write_file(path: Path, rows: int = 12, n: int = 3000, dim: int = 2) -> Path:
    rng = np.random.default_rng(0)
    with TrajectoryWriter(
        path,
        n_samples=n,
        sample_shape=(dim,),
        config_toml=to_toml(default_config()),
        sampler="em",
    ) as w:
        for k in range(rows):
            w.append(k, 1.0 - k / (rows - 1), rng.standard_normal((n, dim)))
        w.close(rng.standard_normal((n, dim)), nfe=rows)
    return path


@pytest.fixture
def big(tmp_path: Path) -> Path:
    return write_file(tmp_path / "traj.h5")


def test_training_builds_its_model_and_data_off_the_gui_thread(
    qtbot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workbench.core.experiment as experiment
    import workbench.gui.state as state

    fast(window)
    # every data set and network is built by the one recipe: any call on the GUI thread fails
    built_data = record(monkeypatch, experiment, "build_dataset")
    built_model = record(monkeypatch, experiment, "build_score_model")
    gui_data = record(monkeypatch, state, "experiment_of")
    # the finished run's checkpoint is then loaded into a model for the views (on the GUI
    # thread, after the run): builds from that point on are not the training's
    loaded_after: list[int] = []
    real_load = window.load_run_model

    def load_run_model(run_dir: Path) -> None:
        loaded_after.append(len(built_model))
        real_load(run_dir)

    monkeypatch.setattr(window, "load_run_model", load_run_model)
    with qtbot.waitSignal(window.trainingFinished, timeout=120_000) as done:
        window.start_training()
    assert done.args[0].status == "done"
    # the training's data set and network were made in its worker; the window's own
    # ExperimentState (built when the config was set) is not built again at Train
    assert loaded_after, "the finished run's model was not loaded"
    assert off_main(built_data) and off_main(built_model[: loaded_after[0]]) and gui_data == []


def test_the_first_optimizer_step_was_imported_before_the_window_showed(
    window: MainWindow,
) -> None:
    import sys

    import workbench.gui.state as state

    # what torch imports at an optimizer's first step (hundreds of modules, the GIL held)
    assert state._preloaded and "torch._dynamo" in sys.modules


def test_opening_a_file_checks_and_walks_it_off_the_gui_thread(
    qtbot, inspector: InspectorWindow, big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workbench.io.safety as safety
    from workbench.io.trajectories import TrajectoryFile

    inspector.validate_in_child = True
    checked = record(monkeypatch, safety, "validate_in_child")
    walked = record(monkeypatch, TrajectoryFile, "nodes")
    assert inspector.open(big)
    assert off_main(checked) and off_main(walked)
    view = inspector.current()
    assert view is not None and "/trajectories/x" in view.tree_paths()


def test_open_without_waiting_shows_opening_then_the_file(
    qtbot, inspector: InspectorWindow, big: Path
) -> None:
    with qtbot.waitSignal(inspector.opened, timeout=60_000):
        assert inspector.open(big, wait=False)
        assert inspector.placeholder.text().startswith("opening traj.h5")
        assert inspector.tabs.count() == 0  # nothing built yet: the file opens in a worker
    assert inspector.tabs.count() == 1 and inspector.current().path == big


def test_a_bad_file_fails_through_the_worker_with_one_line(
    qtbot, inspector: InspectorWindow, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    with qtbot.waitSignal(inspector.failed, timeout=60_000) as failed:
        assert not inspector.open(bad)
    assert "not an HDF5 file" in failed.args[0] and "\n" not in failed.args[0]
    assert inspector.banner.isVisible() and inspector.tabs.count() == 0


def test_statistics_are_computed_off_the_gui_thread(
    qtbot, inspector: InspectorWindow, big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workbench.gui.inspector.stats as stats

    computed = record(monkeypatch, stats, "compute_statistics")
    assert inspector.open(big)
    view = inspector.current()
    view.show_view("Statistics")
    qtbot.waitUntil(view.stats_view.stats_ready, timeout=60_000)
    assert off_main(computed)
    s = view.stats_view.stats
    assert s["mean"].shape == (12, 2) and np.all(np.isfinite(s["std"]))
    # the same numbers as numpy over the whole rows
    last = view.tf.row(-1, denormalise=True).astype(np.float64)
    np.testing.assert_allclose(s["mean"][-1], last.mean(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(s["std"][-1], last.std(0), rtol=1e-9)
    np.testing.assert_array_equal(s["max"][-1], last.max(0))


def _gate(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[tuple[int, int]]]:
    """Make compute_statistics wait after its first row until the event is set (so a test
    sees it mid-way, whatever the machine's speed); its progress reports are noted."""
    import workbench.gui.inspector.stats as stats

    real = stats.compute_statistics
    gate = threading.Event()
    reports: list[tuple[int, int]] = []

    def gated(tf: Any, *, progress: Callable[[int, int], None], **kw: Any) -> Any:
        def report(done: int, total: int) -> None:
            reports.append((done, total))
            progress(done, total)
            if done == 1:
                gate.wait(60)

        return real(tf, progress=report, **kw)

    monkeypatch.setattr(stats, "compute_statistics", gated)
    return gate, reports


def test_statistics_progress_shows_in_the_status_bar(
    qtbot, inspector: InspectorWindow, big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, reports = _gate(monkeypatch)
    assert inspector.open(big)
    view = inspector.current()
    view.show_view("Statistics")
    bar = inspector.findChild(QtWidgets.QProgressBar, "inspectorWorkProgress")
    label = inspector.findChild(QtWidgets.QLabel, "inspectorWorkLabel")
    cancel = inspector.findChild(QtWidgets.QToolButton, "inspectorWorkCancel")
    qtbot.waitUntil(lambda: bar.value() == 1, timeout=60_000)
    assert bar.isVisible() and cancel.isVisible() and bar.maximum() == 12
    assert label.text() == "Statistics… 1/12"
    assert "1/12 rows" in view.stats_view.status.text()
    gate.set()
    qtbot.waitUntil(view.stats_view.stats_ready, timeout=60_000)
    assert reports == [(k, 12) for k in range(1, 13)]
    assert not bar.isVisible() and not cancel.isVisible()
    assert len(view.stats_view.stats["rows"]) == 12


def test_statistics_cancel_stops_the_worker_and_offers_to_compute_again(
    qtbot, inspector: InspectorWindow, big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, reports = _gate(monkeypatch)
    assert inspector.open(big)
    view = inspector.current()
    view.show_view("Statistics")
    cancel = inspector.findChild(QtWidgets.QToolButton, "inspectorWorkCancel")
    qtbot.waitUntil(lambda: bool(reports), timeout=60_000)
    qtbot.mouseClick(cancel, QtCore.Qt.LeftButton)
    gate.set()
    qtbot.waitUntil(view.stats_view.stats_ready, timeout=60_000)
    stats = view.stats_view
    assert stats.cancelled and stats.stats == {}
    assert reports == [(1, 12)]  # stopped at the next block, not after every row
    assert stats.status.text() == "statistics cancelled" and stats.recompute_button.isVisible()
    qtbot.mouseClick(stats.recompute_button, QtCore.Qt.LeftButton)
    qtbot.waitUntil(stats.stats_ready, timeout=60_000)
    assert not stats.cancelled and len(stats.stats["rows"]) == 12


def test_closing_the_file_joins_a_running_statistics_worker(
    qtbot, inspector: InspectorWindow, big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, reports = _gate(monkeypatch)
    assert inspector.open(big)
    view = inspector.current()
    view.show_view("Statistics")
    qtbot.waitUntil(lambda: bool(reports), timeout=60_000)
    task = view.stats_view.tasks[0]
    gate.set()
    inspector.close_tab(0)  # cancels and waits before the file is closed under it
    assert task.isFinished() and task.error is None


def test_compare_metrics_run_off_the_gui_thread(
    qtbot, inspector: InspectorWindow, big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workbench.gui.inspector.compare as compare

    measured = record(monkeypatch, compare, "compare_samples")
    assert inspector.open(big)
    view = inspector.current()
    view.compare_view.points.setValue(300)
    view.show_view("Compare")
    work = inspector.findChild(QtWidgets.QLabel, "inspectorWorkLabel")
    assert work.text() == "Compare…" and work.isVisible()  # in the status bar, with Cancel
    qtbot.waitUntil(lambda: not view.compare_view.busy(), timeout=120_000)
    assert off_main(measured) and view.compare_view.result is not None


def test_the_fpk_reference_is_solved_off_the_gui_thread(
    qtbot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workbench.gui.reference as reference

    solved = record(monkeypatch, reference, "solve_reference")
    window.references.grid_n = 24
    with qtbot.waitSignal(window.references.referenceChanged, timeout=120_000) as changed:
        window.references.set_kind("fpk")
    qtbot.waitUntil(lambda: not window.references.is_busy(), timeout=120_000)
    assert off_main(solved) and (changed.args[0] is not None or window.references.reference)
