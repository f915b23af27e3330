"""The reference chooser's Qt side: which truth the views compare against, solved off the GUI
thread.

The references themselves (analytic, Fokker–Planck, empirical p_t and score, in numpy) live in
:mod:`workbench.core.reference`. :class:`ReferenceManager` holds the user's choice, builds the
reference for the current experiment (the FPK solve in a :class:`~workbench.gui.workers.Task`,
with progress and cancel), caches it per (kind, data, SDE, grid) and drops it when the
experiment's data or SDE change.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6 import QtCore

from workbench.core.reference import (
    DEFAULT_GRID,
    REFERENCES,
    Reference,
    process_key,
    solve_reference,
    unavailable_reason,
)
from workbench.core.sde import LinearSDE
from workbench.errors import WorkbenchError
from workbench.gui.workers import Task, TaskContext

if TYPE_CHECKING:
    from workbench.gui.state import ExperimentState

__all__ = ["ReferenceManager", "describe"]


def _one_blas_thread() -> Any:
    """BLAS on one thread for the solve. The solver's diffusion steps are products of small
    (grid x grid) matrices, for which OpenBLAS's threads cost far more than they bring: on the
    2-core machine a 96 x 96 step took 3.5 ms with 2 threads against 0.14 ms with 1, and ~50 ms
    with 2 threads while other work ran. threadpoolctl comes with scikit-learn; without it
    nothing changes."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# ---------------------------------------------------------------------------------- manager
@dataclass
class _Pending:
    key: tuple
    task: Task


class ReferenceManager(QtCore.QObject):
    """The chosen reference for the current experiment; FPK solves in a worker thread.

    ``referenceChanged(reference or None)`` fires when the views should switch; ``progress``
    (0..1) and ``busyChanged`` while a solve runs; ``failed(message)`` when one fails.
    """

    referenceChanged = QtCore.Signal(object)
    progress = QtCore.Signal(float)
    busyChanged = QtCore.Signal(bool)
    failed = QtCore.Signal(str)

    def __init__(self, parent: QtCore.QObject | None = None, grid_n: int | None = None) -> None:
        super().__init__(parent)
        self.grid_n = grid_n  # None: DEFAULT_GRID by dimension
        self.kind = "auto"
        self.state: ExperimentState | None = None
        self.reference: Reference | None = None
        self.cache: OrderedDict[tuple, Reference] = OrderedDict()
        self.error: str | None = None
        self._pending: _Pending | None = None
        self.solves = 0  # how many FPK solves were started (for tests: the cache works)

    # -- choice -------------------------------------------------------------------------
    def default_kind(self, state: ExperimentState) -> str:
        """analytic where it exists; FPK where nothing else can (a non-linear SDE); else none."""
        if unavailable_reason("analytic", state) is None:
            return "analytic"
        if not isinstance(state.sde, LinearSDE) and unavailable_reason("fpk", state) is None:
            return "fpk"
        return "none"

    def effective_kind(self) -> str:
        if self.state is None:
            return "none"
        kind = self.kind if self.kind != "auto" else self.default_kind(self.state)
        return kind if unavailable_reason(kind, self.state) is None else "none"

    def set_kind(self, kind: str) -> None:
        """The user's choice: "auto", "none", or a registered kind."""
        self.kind = kind
        self._update()

    def set_experiment(self, state: ExperimentState | None) -> None:
        old = self.state
        self.state = state
        if old is not None and state is not None and process_key(old) == process_key(state):
            if self.reference is not None:
                self.reference.state = state
            if self._pending is None and (self.reference is not None) == (
                self.effective_kind() != "none"
            ):
                return
        self._update()

    def _key(self, kind: str) -> tuple:
        state = self.state
        assert state is not None, "a reference is keyed only for an experiment"
        grid = self.grid_n or DEFAULT_GRID.get(state.dim, 0)
        return (kind, *process_key(state), grid if kind == "fpk" else 0)

    def _update(self) -> None:
        kind = self.effective_kind()
        self.error = None
        if kind == "none":
            self._cancel_pending()
            self._set(None)
            return
        key = self._key(kind)
        hit = self.cache.get(key)
        if hit is not None:
            self._cancel_pending()
            self.cache.move_to_end(key)
            hit.state = self.state
            self._set(hit)
            return
        if kind != "fpk":
            self._cancel_pending()
            try:
                ref = REFERENCES[kind](self.state)
            except WorkbenchError as exc:
                self._fail(str(exc))
                return
            self._store(key, ref)
            self._set(ref)
            return
        if self._pending is not None and self._pending.key == key:
            return  # already solving this one
        self._cancel_pending()
        self._set(None)
        self._start_solve(key)

    def _start_solve(self, key: tuple) -> None:
        state, grid = self.state, self.grid_n

        def work(ctx: TaskContext) -> Reference:
            last = [-1.0]

            def report(f: float) -> None:
                if f - last[0] >= 0.01 or f >= 1.0:
                    last[0] = f
                    ctx.report(f)

            with _one_blas_thread():
                return solve_reference(state, grid, progress=report, cancel=ctx.cancelled)

        task = Task("Fokker–Planck", work, self)
        task.progress.connect(lambda f: self.progress.emit(float(f)))
        task.done.connect(lambda ref, k=key: self._solved(k, ref))
        task.failed.connect(lambda message, details, k=key: self._solve_failed(k, message))
        task.finished.connect(lambda t=task: self._finished(t))
        self._pending = _Pending(key, task)
        self.solves += 1
        self.busyChanged.emit(True)
        self.progress.emit(0.0)
        task.start()

    def _solved(self, key: tuple, ref: Reference) -> None:
        if self._pending is not None and self._pending.key == key:
            # over: the progress goes before the views switch (the thread ends just after)
            self._pending = None
            self.busyChanged.emit(False)
        self._store(key, ref)
        if self.state is not None and self._key(self.effective_kind()) == key:
            ref.state = self.state
            self._set(ref)

    def _solve_failed(self, key: tuple, message: str) -> None:
        pending = self._pending
        if pending is not None and pending.key == key and not pending.task.cancel_event.is_set():
            self._fail(message)

    def _finished(self, task: Task) -> None:
        task.wait()
        if self._pending is not None and self._pending.task is task:
            self._pending = None
            self.busyChanged.emit(False)
        task.deleteLater()

    def _fail(self, message: str) -> None:
        self.error = message
        self._set(None)
        self.failed.emit(message)

    def _store(self, key: tuple, ref: Reference) -> None:
        self.cache[key] = ref
        self.cache.move_to_end(key)
        while len(self.cache) > 4:
            self.cache.popitem(last=False)

    def _set(self, ref: Reference | None) -> None:
        self.reference = ref
        self.referenceChanged.emit(ref)

    # -- work ------------------------------------------------------------------------------
    def is_busy(self) -> bool:
        return self._pending is not None

    def cancel(self) -> None:
        """Stop a running solve (the choice stays; choosing again restarts it)."""
        if self._pending is not None:
            self._pending.task.cancel()

    def _cancel_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.task.cancel()
            self.busyChanged.emit(False)

    def shutdown(self) -> None:
        """Cancel and join any solve (before the window goes away)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.task.cancel()
            pending.task.wait()
        for task in self.findChildren(Task):
            task.cancel()
            task.wait()


def describe(kind: str) -> str:
    return {
        "auto": "automatic",
        "none": "none",
        "analytic": "analytic",
        "fpk": "Fokker–Planck",
        "empirical": "empirical",
    }.get(kind, kind)
