"""Python's cyclic garbage collector, run on the GUI thread only.

Why: the automatic collector runs in whichever thread happens to allocate past its threshold.
In a worker thread (training, sampling, statistics) it may free a dead Qt wrapper (a widget
or a QThread left in a reference cycle); shiboken then defers the C++ deletion to the object's
own thread, the GUI thread, and the two can deadlock: the GUI thread inside QObject::~QObject
waiting on the object's mutex, the worker waiting for the GIL inside a queued emit. Seen once
in a full test run, inside ``InspectorWindow.open(wait=True)``'s nested event loop.

The choice, of the three usual ones:

* ``gc.disable()`` in each worker's run: not possible, the switch is process-wide (a worker
  disabling it would disable it for the GUI thread and the other workers too).
* Never create cycles holding Qt wrappers: not enforceable (lambdas connected to signals,
  pyqtgraph's items and our views reference each other).
* ``gc.disable()`` once, for the process, and run the collector from a QTimer on the GUI
  thread, mimicking the automatic thresholds (pyqtgraph's ``GarbageCollector`` does the same
  for the same reason). Every collection, hence every wrapper freed by it, is then on the GUI
  thread, where deleting a QObject is an ordinary, synchronous deletion. Chosen.

Reference counting still frees everything not in a cycle at once, in any thread; only cyclic
garbage waits for the next tick (``interval_ms``), so memory grows by at most one interval's
cycles.

A full (generation-2) collection walks every container object: some 350 000 once torch,
sympy (pulled in by torch's optimizer) and the widgets are loaded, 50-100 ms, itself a stall
of the event loop. ``install(freeze=True)`` therefore collects once and then ``gc.freeze()``s
what is alive at start-up (modules, classes, the window): later collections walk only what
was made since, well under a millisecond.
"""

from __future__ import annotations

import gc
import threading

from PySide6 import QtCore

__all__ = ["GuiCollector", "install_gui_collector"]

COLLECT_INTERVAL_MS = 500


class GuiCollector(QtCore.QObject):
    """Automatic garbage collection off, a timer on this (the GUI) thread collecting instead.

    ``check()`` runs the generations the automatic collector would have run by now, by the
    same counts and thresholds (``gc.get_count()`` against ``gc.get_threshold()``).
    ``collections`` counts them, ``threads`` notes the threads they ran in (for tests).
    """

    def __init__(
        self, interval_ms: int = COLLECT_INTERVAL_MS, parent: QtCore.QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("guiCollector")
        self.collections = 0
        self.threads: set[int] = set()
        self._was_enabled = False
        self._froze = False
        self._installed = False
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)

    @property
    def installed(self) -> bool:
        return self._installed

    def install(self, freeze: bool = False) -> None:
        """Take over from the automatic collector; with ``freeze``, collect now and exclude
        everything alive from later collections (see the module docstring)."""
        if self._installed:
            return
        self._was_enabled = gc.isenabled()
        gc.disable()
        if freeze:
            gc.collect()
            gc.freeze()
            self._froze = True
        self._installed = True
        self._timer.start()

    def uninstall(self) -> None:
        """Stop the timer, collect once here, and give the automatic collector back."""
        if not self._installed:
            return
        self._timer.stop()
        self._installed = False
        if self._froze:
            gc.unfreeze()
            self._froze = False
        self.collect(2)
        if self._was_enabled:
            gc.enable()

    def check(self) -> None:
        """The generations the automatic collector would have collected by now."""
        threshold0, threshold1, threshold2 = gc.get_threshold()
        count0, count1, count2 = gc.get_count()
        if count0 <= threshold0:
            return
        generation = 0
        if count1 > threshold1:
            generation = 1
            if count2 > threshold2:
                generation = 2
        self.collect(generation)

    def collect(self, generation: int = 2) -> int:
        self.collections += 1
        self.threads.add(threading.get_ident())
        return gc.collect(generation)


_installed: GuiCollector | None = None


def install_gui_collector(freeze: bool = True) -> GuiCollector:
    """The process's collector, made and installed once, owned by the QApplication (call it
    on the GUI thread, after the application exists)."""
    global _installed
    if _installed is None:
        app = QtCore.QCoreApplication.instance()
        _installed = GuiCollector(parent=app)
    _installed.install(freeze=freeze)
    return _installed
