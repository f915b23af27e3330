"""The cyclic garbage collector runs on the GUI thread only (workbench/gui/collector.py):
structural checks through gc.callbacks, which note the thread of every collection."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from workbench.gui.collector import GuiCollector
from workbench.gui.workers import Task


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The thread ident of every collection from here on."""
    seen: list[int] = []

    def note(phase: str, _info: dict) -> None:
        if phase == "start":
            seen.append(threading.get_ident())

    gc.callbacks.append(note)
    yield seen
    gc.callbacks.remove(note)


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def make_cycles(n: int) -> int:
    for _ in range(n):
        Node()
    return n


def test_the_app_collector_is_installed_for_the_gui_tests(
    collect_on_the_gui_thread: GuiCollector,
) -> None:
    assert collect_on_the_gui_thread.installed and not gc.isenabled()


def test_cycles_made_in_a_worker_are_collected_on_the_gui_thread(
    qtbot, collect_on_the_gui_thread: GuiCollector, collections: list[int]
) -> None:
    collector = collect_on_the_gui_thread
    before = collector.collections
    # far past the first threshold (700 by default): the automatic collector would have run
    # about a hundred times inside the worker
    n = 100 * gc.get_threshold()[0]
    task = Task("cycles", lambda _ctx: make_cycles(n))
    with qtbot.waitSignal(task.done, timeout=60_000) as done:
        task.start()
    task.wait()
    assert done.args == [n]
    qtbot.waitUntil(lambda: collector.collections > before, timeout=10_000)
    main = threading.main_thread().ident
    assert collections and set(collections) == {main}
    assert collector.threads == {main}


def test_a_collector_gives_automatic_collection_back(
    qtbot, collect_on_the_gui_thread: GuiCollector, collections: list[int]
) -> None:
    collect_on_the_gui_thread.uninstall()  # the package's: this test's own one alone
    try:
        assert gc.isenabled()  # given back
        collector = GuiCollector(interval_ms=10)
        collector.uninstall()  # not installed: nothing to give back, nothing changes
        assert gc.isenabled()
        collector.install(freeze=True)
        assert not gc.isenabled() and gc.get_freeze_count() > 0
        make_cycles(3 * gc.get_threshold()[0])
        qtbot.waitUntil(lambda: collector.collections > 0, timeout=10_000)
        collector.uninstall()
        assert gc.isenabled() and gc.get_freeze_count() == 0
    finally:
        collect_on_the_gui_thread.install()
    assert collections and set(collections) == {threading.main_thread().ident}
