"""LazyRedraw, the one home of "draw only while seen, once per burst of changes": the contract
on a bare widget, then the loss tab's throttle and the inspector's views that use it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.gui.inspector import InspectorWindow
from workbench.gui.plots.base import LazyRedraw
from workbench.gui.plots.loss import LossTab
from workbench.io.trajectories import TrajectoryWriter


class Counter(LazyRedraw):
    def __init__(self, interval_ms: int = 0) -> None:
        super().__init__()
        self.redraw_interval_ms = interval_ms
        self.draws = 0

    def _redraw(self) -> None:
        self.draws += 1


def test_hidden_widget_remembers_and_draws_once_when_shown(qtbot) -> None:
    w = Counter()
    qtbot.addWidget(w)
    for _ in range(3):
        w.schedule_redraw()
    assert w.draws == 0 and w.redraw_pending
    w.show()
    assert w.draws == 1 and not w.redraw_pending
    w.flush_redraw()  # nothing owed: nothing drawn
    assert w.draws == 1
    w.schedule_redraw()  # seen: drawn now
    assert w.draws == 2 and not w.redraw_pending
    w.hide()
    w.schedule_redraw()
    w.flush_redraw()  # owed: drawn though hidden (an export reads what is drawn)
    assert w.draws == 3 and not w.redraw_pending


def test_throttle_coalesces_a_burst_into_one_redraw(qtbot) -> None:
    w = Counter(interval_ms=20)
    qtbot.addWidget(w)
    w.show()
    for _ in range(10):
        w.schedule_redraw()
    assert w.draws == 0 and w.redraw_pending  # waits for the tick
    qtbot.waitUntil(lambda: w.draws >= 1, timeout=5000)
    qtbot.wait(60)  # more ticks pass: nothing more is owed
    assert w.draws == 1 and not w.redraw_pending


def test_loss_tab_draws_streamed_points_on_the_next_tick(qtbot) -> None:
    tab = LossTab()
    qtbot.addWidget(tab)
    tab.show()
    tab.start_run("run")
    raw, _smooth = tab._curves[-1]
    for k in range(3):
        tab.add_points([k + 1.0], [0.1 * k], [1.0 / (k + 1)])
    assert raw.xData is None or len(raw.xData) == 0  # not yet: once per tick
    qtbot.waitUntil(lambda: raw.xData is not None and len(raw.xData) == 3, timeout=5000)
    tab.add_points([4.0], [0.4], [0.2])
    assert tab.export_item() is tab.item and len(raw.xData) == 4  # export flushes


def test_inspector_view_draws_only_as_the_current_tab(
    qtbot, inspector: InspectorWindow, tmp_path: Path
) -> None:
    path = tmp_path / "t.h5"
    w = TrajectoryWriter(
        path,
        n_samples=60,
        sample_shape=(2,),
        config_toml='[data]\nname = "moons"\n',
        sampler="em",
    )
    rng = np.random.default_rng(0)
    for k in range(4):
        w.append(k, 1.0 - 0.25 * k, rng.standard_normal((60, 2)))
    w.close()
    assert inspector.open(path)
    view = inspector.current()
    paths = view.paths_view
    assert paths.draws == 0 and paths.redraw_pending  # not read before it is shown
    paths.count.setValue(7)
    view.slider.setValue(2)
    assert paths.draws == 0 and view.samples_view.draws == 0
    assert view.show_view("Paths") is paths
    assert paths.draws == 1 and paths.n_paths == 7
    paths.start.setValue(5)  # the current tab: drawn at once
    assert paths.draws == 2 and paths.first == 5
    view.show_view("Samples")
    assert view.samples_view.row_shown == 2
    view.slider.setValue(3)
    assert view.samples_view.row_shown == 3 and paths.draws == 2  # paths ignore the row
