"""The inspector opens a file without building its views or reading its datasets on the GUI
thread, builds the Statistics figure one piece per event-loop turn, and refreshes (F5) in a
worker: structural checks (which thread, which widgets exist), no timings."""

from __future__ import annotations

import threading
from pathlib import Path

import h5py
import numpy as np
import pyqtgraph as pg
import pytest

from tests.gui.test_off_thread import off_main, record, write_file
from workbench.gui.inspector import InspectorWindow, SummaryView


@pytest.fixture
def traj(tmp_path: Path) -> Path:
    return write_file(tmp_path / "traj.h5", rows=9, n=500)


def test_opening_builds_only_the_summary_and_reads_datasets_in_the_worker(
    qtbot, inspector: InspectorWindow, traj: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = record(monkeypatch, h5py.Dataset, "__getitem__")
    assert inspector.open(traj)
    view = inspector.current()
    assert read and off_main(read)  # times and steps were read, by the worker
    assert [type(v) for v in view.view_list] == [SummaryView]
    assert view.view_titles() == ["Summary", "Samples", "Paths", "Statistics", "Compare"]
    assert view.findChildren(pg.GraphicsLayoutWidget) == []  # no plot made yet
    assert view.summary_view.fields["rows"].text() == "9"
    assert "row 1/9" in view.time_label.text()
    # a view is made when its tab is first shown, and only then
    samples = view.show_view("Samples")
    assert [v.title for v in view.view_list] == ["Summary", "Samples"]
    assert samples.isVisible() and samples.draws == 1 and view.current_view() is samples
    assert view.show_view("Samples") is samples  # made once


def test_compare_made_late_still_gets_the_other_open_files(
    qtbot, inspector: InspectorWindow, traj: Path, tmp_path: Path
) -> None:
    other = write_file(tmp_path / "other.h5", rows=3, n=200)
    assert inspector.open(traj) and inspector.open(other)
    first = inspector.views()[0]
    assert "Compare" not in [v.title for v in first.view_list]
    against = first.compare_view.against
    assert [against.itemData(i) for i in range(1, against.count())] == [str(other)]


def test_the_statistics_figure_is_made_piece_by_piece_then_only_refilled(
    qtbot, inspector: InspectorWindow, traj: Path
) -> None:
    assert inspector.open(traj)
    view = inspector.current()
    stats = view.show_view("Statistics")
    qtbot.waitUntil(stats.stats_ready, timeout=60_000)
    # two plots, then one turn per dimension's curves (2-D here)
    assert stats.build_steps == 4 and len(stats.curves) == 2
    s = stats.stats
    for i, curves in enumerate(stats.curves):
        x, y = curves["mean"].getData()
        np.testing.assert_array_equal(x, s["t"])
        np.testing.assert_array_equal(y, s["mean"][:, i])
        np.testing.assert_array_equal(curves["std"].getData()[1], s["std"][:, i])
    items = [c for curves in stats.curves for c in curves.values()]
    stats.draw()  # Compute again: the same items get new data
    qtbot.waitUntil(stats.stats_ready, timeout=60_000)
    assert stats.build_steps == 4
    assert [c for curves in stats.curves for c in curves.values()] == items
    assert stats.curves[0]["mean"].getData()[1] is not None


def test_refresh_reopens_the_file_in_a_worker(
    qtbot, inspector: InspectorWindow, traj: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.io.trajectories import TrajectoryFile

    assert inspector.open(traj)
    view = inspector.current()
    reopened = record(monkeypatch, TrajectoryFile, "refresh")
    walked = record(monkeypatch, TrajectoryFile, "nodes")
    with qtbot.waitSignal(view.refreshed, timeout=60_000):
        inspector.refresh()
        assert view.refreshing is not None  # under way; the window keeps answering
    assert off_main(reopened) and off_main(walked) and view.refreshing is None
    assert view.slider.maximum() == 8 and not view.error_banner.isVisible()


def test_closing_during_a_refresh_waits_for_it(
    qtbot, inspector: InspectorWindow, traj: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.io.trajectories import TrajectoryFile

    real = TrajectoryFile.refresh
    gate, entered = threading.Event(), threading.Event()

    def slow(tf: TrajectoryFile) -> None:
        entered.set()
        gate.wait(60)
        real(tf)

    monkeypatch.setattr(TrajectoryFile, "refresh", slow)
    assert inspector.open(traj)
    view = inspector.current()
    view.refresh()
    task = view.refreshing
    assert task is not None and entered.wait(60)
    gate.set()
    inspector.close_tab(0)  # joins the refresh before the file is closed
    assert task.isFinished()
