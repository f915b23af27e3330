"""The Compare view: final samples against the config's data set or another open file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from workbench.core.compare import (
    COMPARE_METRICS,
    COMPARE_REPEATS,
    COMPARE_SEED,
    compare_samples,
    subsample,
)
from workbench.core.experiment import dataset_of
from workbench.core.wording import floor_verdict
from workbench.errors import WorkbenchError, one_line
from workbench.gui.inspector.common import _YELLOW, _banner, _View
from workbench.gui.workers import Task
from workbench.io.trajectories import TrajectoryFile

if TYPE_CHECKING:
    from workbench.gui.inspector.file_view import FileView

COMPARE_POINTS = 3000  # points per side for Compare, at most (subsampled with a fixed seed)
DATA_SET_CHOICE = "data set from the config"


class CompareView(_View):
    """This file's final samples against the data set of its config or another open file's,
    overlaid, with the metrics beside their noise floors (computed in a worker thread)."""

    title = "Compare"

    def __init__(self, fv: FileView) -> None:
        super().__init__(fv)
        layout = QtWidgets.QVBoxLayout(self)
        row = QtWidgets.QHBoxLayout()
        self.against = QtWidgets.QComboBox()
        self.against.setObjectName("compareAgainst")
        self.against.setMinimumContentsLength(28)
        self.against.addItem(DATA_SET_CHOICE, None)
        self.points = QtWidgets.QSpinBox()
        self.points.setObjectName("comparePoints")
        self.points.setRange(10, 100_000)
        self.points.setSingleStep(500)
        self.points.setValue(COMPARE_POINTS)
        self.points.setToolTip("points per side; larger samples are subsampled with a fixed seed")
        self.compute_button = QtWidgets.QPushButton("Compare")
        self.compute_button.setObjectName("compareButton")
        row.addWidget(QtWidgets.QLabel("Against:"))
        row.addWidget(self.against, 1)
        row.addWidget(QtWidgets.QLabel("Points per side (at most):"))
        row.addWidget(self.points)
        row.addWidget(self.compute_button)
        layout.addLayout(row)
        self.message = _banner("compareMessage", _YELLOW)
        layout.addWidget(self.message)
        self.status = QtWidgets.QLabel()
        self.status.setObjectName("compareStatus")
        layout.addWidget(self.status)
        self.plot = pg.PlotWidget()
        self.plot.setObjectName("comparePlot")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.legend = self.plot.addLegend(offset=(10, 10))
        self.table = QtWidgets.QTableWidget(0, 4)
        self.table.setObjectName("compareTable")
        self.table.setHorizontalHeaderLabels(
            ["Metric", "Value", "Noise floor (mean ± std)", "Verdict"]
        )
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMaximumHeight(140)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.table)
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self.tasks: list[Task] = []
        self._generation = 0
        self.against.currentIndexChanged.connect(self._choice_changed)
        self.compute_button.clicked.connect(self.compute)

    # peers -------------------------------------------------------------------------------
    def set_peers(self, paths: list[Path]) -> None:
        """The other open files, offered beside the data set."""
        current = self.against.currentData()
        self.against.blockSignals(True)
        self.against.clear()
        self.against.addItem(DATA_SET_CHOICE, None)
        for path in paths:
            self.against.addItem(path.name, str(path))
            self.against.setItemData(
                self.against.count() - 1, str(path), QtCore.Qt.ItemDataRole.ToolTipRole
            )
        index = self.against.findData(current) if current is not None else 0
        self.against.setCurrentIndex(max(0, index))
        self.against.blockSignals(False)
        if current is not None and index < 0:
            self._choice_changed(0)

    def choices(self) -> list[str]:
        return [self.against.itemText(i) for i in range(self.against.count())]

    def _choice_changed(self, _index: int) -> None:
        self.schedule_redraw()

    # drawing -----------------------------------------------------------------------------
    def _fail(self, message: str) -> None:
        self.error = one_line(message)
        self.message.setText(self.error)
        self.message.show()
        self.status.setText("")

    def _dataset(self, tf: TrajectoryFile) -> Any:
        cfg = tf.read_config()
        return dataset_of(cfg)

    def draw(self) -> None:
        self.compute()

    def compute(self) -> None:
        """Read both samples (subsampled), draw the overlay, start the metrics in a Task."""
        import torch

        self._generation += 1
        generation = self._generation
        self.result, self.error = None, None
        self.message.hide()
        self.table.setRowCount(0)
        self.plot.clear()
        self.legend.clear()
        n_max = self.points.value()
        tf = self.fv.tf
        other = self.against.currentData()
        try:
            a = subsample(tf.samples(), n_max).astype(np.float64)
        except WorkbenchError as exc:
            return self._fail(str(exc))
        reference, floor_note = None, ""
        try:
            dataset = self._dataset(tf)
            if int(np.prod(dataset.sample_shape)) == a.shape[1]:
                reference = dataset
            else:
                floor_note = "the config's data set has another dimension"
        except WorkbenchError as exc:
            floor_note = f"no data set: {one_line(exc)}"
        except Exception as exc:  # a bad config must not take the view down
            floor_note = f"no data set: {type(exc).__name__}: {one_line(exc)}"
        if other is None:
            if reference is None:
                return self._fail(f"Cannot compare with the data set: {floor_note}")
            gen = torch.Generator().manual_seed(COMPARE_SEED)
            b = reference.sample(len(a), gen, dtype=torch.float64).reshape(len(a), -1).numpy()
            label_b = f"data set {tf.read_config().data.name!r} ({len(b):,} fresh draws)"
        else:
            try:
                with TrajectoryFile(other) as peer:
                    b = subsample(peer.samples(), n_max).astype(np.float64)
            except WorkbenchError as exc:
                return self._fail(str(exc))
            if b.shape[1] != a.shape[1]:
                return self._fail(
                    f"Cannot compare: {Path(other).name} has dimension {b.shape[1]}, "
                    f"this file {a.shape[1]}"
                )
            label_b = f"{Path(other).name} ({len(b):,} samples)"
        if floor_note and reference is None:
            self.message.setText(f"Noise floors not shown: {floor_note}")
            self.message.show()
        self.label_b = label_b
        self._overlay(a, b, f"{self.fv.path.name} ({len(a):,} samples)", label_b)
        self.status.setText(f"computing metrics on {min(len(a), len(b)):,} points per side…")
        self.compute_button.setEnabled(False)

        def work(ctx: Any) -> dict[str, Any]:
            return compare_samples(a, b, reference, cancelled=ctx.cancelled)

        task = Task("inspector-compare", work, self)
        task.done.connect(lambda result: self._done(generation, result))
        task.failed.connect(lambda msg, _details: self._failed(generation, msg))
        task.finished.connect(lambda: self._forget(task))
        self.tasks.append(task)
        self.fv.track_task(task, "Compare")  # progress and Cancel in the status bar
        self._started = time.perf_counter()
        task.start()

    def _forget(self, task: Task) -> None:
        if task in self.tasks:
            self.tasks.remove(task)
            task.deleteLater()

    def _overlay(self, a: np.ndarray, b: np.ndarray, label_a: str, label_b: str) -> None:
        blue, orange = (30, 90, 200), (230, 110, 20)
        if a.shape[1] == 1:
            lo = float(min(a.min(), b.min()))
            hi = float(max(a.max(), b.max()))
            edges = np.linspace(lo, hi if hi > lo else lo + 1, 81)
            for x, c, label in ((a, blue, label_a), (b, orange, label_b)):
                dens, _ = np.histogram(x[:, 0], bins=edges, density=True)
                self.plot.plot(edges, dens, stepMode="center", pen=pg.mkPen(c, width=2), name=label)
            self.plot.setLabels(bottom="x", left="density")
            self.plot.setAspectLocked(False)
        else:
            # one data unit is as long across as up: a round cloud must look round
            self.plot.setAspectLocked(True, 1)
            for x, c, label in ((b, orange, label_b), (a, blue, label_a)):
                self.plot.plot(
                    x[:, 0],
                    x[:, 1],
                    pen=None,
                    symbol="o",
                    symbolSize=3,
                    symbolPen=None,
                    symbolBrush=(*c, 110),
                    name=label,
                )
            self.plot.setLabels(bottom="x1", left="x2")
        self.plot.setTitle("final samples (data units)")
        self.plot.autoRange()

    def _done(self, generation: int, result: dict[str, Any]) -> None:
        if generation != self._generation:
            return
        self.compute_button.setEnabled(True)
        self.result = result
        seconds = time.perf_counter() - self._started
        metrics = result["metrics"]
        self.table.setRowCount(len(metrics))
        for r, (name, (value, floor)) in enumerate(metrics.items()):
            if floor is None:
                floor_text, verdict = "—", "no floor (no data set)"
            else:
                mean, std = floor
                floor_text = f"{mean:.4g} ± {std:.2g}"
                verdict = floor_verdict(value, mean, std)
            for c, text in enumerate((name, f"{value:.4g}", floor_text, verdict)):
                self.table.setItem(r, c, QtWidgets.QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.status.setText(
            f"{result['n']:,} points per side; floors over {COMPARE_REPEATS} pairs of fresh "
            f"data-set draws of the same size; {seconds:.1f} s"
        )
        if len(metrics) < len(COMPARE_METRICS):  # Cancel in the status bar
            self.status.setText(
                f"cancelled after {len(metrics)} of {len(COMPARE_METRICS)} metrics; "
                "press Compare to start again"
            )

    def _failed(self, generation: int, message: str) -> None:
        if generation != self._generation:
            return
        self.compute_button.setEnabled(True)
        self._fail(f"Metrics failed: {message}")

    def busy(self) -> bool:
        return any(task.isRunning() for task in self.tasks)

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Cancel running metric tasks and wait for their threads."""
        self._generation += 1
        for task in list(self.tasks):
            task.cancel()
            task.wait(timeout_ms)
