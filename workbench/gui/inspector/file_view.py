"""One open file: its HDF5 tree and attributes, and for a trajectory file the slider and
the lazy views.

Lazy twice over: a view's widgets (pyqtgraph plots, some 10-20 ms each) are made when its tab
is first shown, not when the file opens, and what it draws is read from the file only while it
is shown (:class:`~workbench.gui.inspector.common._View`). Opening a file builds the tree, the
slider and the Summary on the GUI thread; the datasets they need (the rows' times and steps)
were read by :func:`open_file` in the inspector's worker. F5 (``refresh``) re-opens the file
in a worker too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtWidgets

from workbench.errors import WorkbenchError, one_line
from workbench.gui.inspector.common import _RED, _YELLOW, _attr_text, _banner, _View
from workbench.gui.inspector.compare import CompareView
from workbench.gui.inspector.export_dialog import ExportDialog
from workbench.gui.inspector.fpk_view import FPKView
from workbench.gui.inspector.images import ImagesView
from workbench.gui.inspector.logp import LogpView
from workbench.gui.inspector.paths import PathsView
from workbench.gui.inspector.samples import SamplesView
from workbench.gui.inspector.stats import StatsView
from workbench.gui.inspector.summary import SummaryView
from workbench.gui.workers import Task
from workbench.io.printable import printable
from workbench.io.trajectories import TrajectoryFile

PLAY_INTERVAL_MS = 80

INCOMPLETE_TEXT = (
    "This file is incomplete: its writer stopped before closing it; rows flushed so far are shown."
)


def _storage(tf: TrajectoryFile, node: dict[str, Any]) -> tuple[str, str]:
    """Chunking and compression of a dataset node, as text."""
    chunks, comp = node.get("chunks"), node.get("compression")
    chunk_text = "contiguous" if chunks is None else " x ".join(str(c) for c in chunks)
    return chunk_text, comp or "none"


def open_file(path: Path, allow_external: bool) -> tuple[TrajectoryFile, list[dict[str, Any]]]:
    """The file opened read-only and its tree walked: what a FileView shows first. Slow for
    big or deep files, so the inspector runs it in a worker thread. Raises WorkbenchError."""
    tf = TrajectoryFile(path, foreign_ok=True, allow_external=allow_external)
    try:
        return tf, _walk(tf)
    except WorkbenchError:
        tf.close()
        raise


def _walk(tf: TrajectoryFile) -> list[dict[str, Any]]:
    """The tree, and the small datasets the slider and Summary show at once (the reader keeps
    them): read here, in the worker, so that the GUI thread reads only attributes."""
    nodes = tf.nodes()
    if tf.is_trajectory_file:
        _ = tf.times, tf.steps
    return nodes


def reopen(tf: TrajectoryFile) -> list[dict[str, Any]]:
    """F5's worker part: re-open the file (rows written since, its completion) and walk it."""
    tf.refresh()
    return _walk(tf)


class FileView(QtWidgets.QWidget):
    """One open file: its tree and attributes, and for our format the summary and views.

    ``opened``: what :func:`open_file` returned (the inspector opens files in a worker); else
    the file is opened here, on the calling thread.
    """

    # a Task the view started, and its label: the window shows its progress and Cancel
    taskStarted = QtCore.Signal(object, str)
    refreshed = QtCore.Signal()  # a refresh (F5) has ended, its rows shown or its error

    def __init__(
        self,
        path: str | os.PathLike[str],
        parent: QtWidgets.QWidget | None = None,
        *,
        allow_external: bool = False,
        opened: tuple[TrajectoryFile, list[dict[str, Any]]] | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("inspectorFileView")
        self.path = Path(path)
        # raises WorkbenchError; external references outside the folder only if allowed
        self.tf, walked = opened or (
            TrajectoryFile(self.path, foreign_ok=True, allow_external=allow_external),
            None,
        )
        self._walked: list[dict[str, Any]] | None = walked
        self.is_trajectory = bool(self.tf.is_trajectory_file)
        self.nodes: list[dict[str, Any]] = []
        self.export_dialog: ExportDialog | None = None
        self.confirm_overwrite: Callable[[Path], bool] | None = None

        self.incomplete_banner = _banner("incompleteBanner", _YELLOW)
        self.incomplete_banner.setText(INCOMPLETE_TEXT)
        self.error_banner = _banner("readErrorBanner", _RED)

        # left: tree + attributes
        self.tree = QtWidgets.QTreeWidget()
        self.tree.setObjectName("inspectorTree")
        self.tree.setHeaderLabels(["Name", "Shape", "Dtype", "Chunks", "Compression"])
        self.tree.setAlternatingRowColors(True)
        self.tree.currentItemChanged.connect(self._node_selected)
        self.attrs = QtWidgets.QTableWidget(0, 2)
        self.attrs.setObjectName("inspectorAttributes")
        self.attrs.setHorizontalHeaderLabels(["Attribute", "Value"])
        self.attrs.horizontalHeader().setStretchLastSection(True)
        self.attrs.verticalHeader().hide()
        self.attrs.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.attrs.setWordWrap(False)
        self.attrs.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        left = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        left.addWidget(self.tree)
        left.addWidget(self.attrs)
        left.setSizes([400, 250])

        # right: controls + views
        right = QtWidgets.QWidget()
        rlay = QtWidgets.QVBoxLayout(right)
        rlay.setContentsMargins(0, 0, 0, 0)
        self.views = QtWidgets.QTabWidget()
        self.views.setObjectName("inspectorViews")
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setObjectName("inspectorTimeSlider")
        self.play_button = QtWidgets.QPushButton("Play")
        self.play_button.setObjectName("inspectorPlayButton")
        self.play_button.setCheckable(True)
        self.time_label = QtWidgets.QLabel()
        self.time_label.setObjectName("inspectorTimeLabel")
        self.time_label.setMinimumWidth(220)
        self.export_button = QtWidgets.QPushButton("Export samples…")
        self.export_button.setObjectName("inspectorExportButton")
        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(self.play_button)
        controls.addWidget(QtWidgets.QLabel("Row:"))
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.time_label)
        controls.addWidget(self.export_button)
        self.controls = QtWidgets.QWidget()
        self.controls.setLayout(controls)
        rlay.addWidget(self.controls)
        rlay.addWidget(self.views, 1)

        # the views by title, made on first show; their tabs hold an empty page till then
        self._kinds: dict[str, type[_View]] = {}
        self._built: dict[str, _View] = {}
        self._pages: dict[str, QtWidgets.QVBoxLayout] = {}  # each page's layout
        self._peers: list[Path] = []
        self.refreshing: Task | None = None
        self._closed = False
        if self.is_trajectory:
            kinds: list[type[_View]] = [SummaryView, SamplesView, PathsView, StatsView]
            if len(self.tf.sample_shape) >= 2:
                kinds.append(ImagesView)
            if self.tf.has_logp:
                kinds.append(LogpView)
            kinds.append(CompareView)
            for kind in kinds:
                self._add_page(kind)
        else:
            self.controls.hide()
            self.fpk_view: FPKView | None = None
            from workbench.io.fpk_file import has_fpk

            if has_fpk(self.path):
                self.fpk_view = FPKView(self.path)
                self.views.addTab(self.fpk_view, "Fokker–Planck p_t")
            note = QtWidgets.QLabel(
                "Not an SDE Workbench trajectory file: browse its groups, datasets and "
                "attributes in the tree."
            )
            note.setObjectName("foreignNote")
            note.setWordWrap(True)
            note.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
            self.views.addTab(note, "About")
        self.views.currentChanged.connect(lambda _: self._draw_current())
        if self.is_trajectory:
            self._view(SummaryView.title)  # the first tab: shown with the file

        splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([430, 900])
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.incomplete_banner)
        layout.addWidget(self.error_banner)
        layout.addWidget(splitter, 1)

        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(PLAY_INTERVAL_MS)
        self._timer.timeout.connect(self._advance)
        self.play_button.toggled.connect(self._play)
        self.slider.valueChanged.connect(self._row_changed)
        self.export_button.clicked.connect(self.open_export_dialog)
        self._load()

    # ------------------------------------------------------------------ building and loading
    def _add_page(self, kind: type[_View]) -> None:
        page = QtWidgets.QWidget()
        page.setObjectName(f"inspectorPage{kind.title}")
        layout = QtWidgets.QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        self._kinds[kind.title] = kind
        self._pages[kind.title] = layout
        self.views.addTab(page, kind.title)

    def _view(self, title: str) -> _View:
        """The view of that title, made now if it was not yet."""
        view = self._built.get(title)
        if view is None:
            view = self._built[title] = self._kinds[title](self)
            self._pages[title].addWidget(view)
            view.show()  # a widget added to a shown page is shown only later, queued
            if isinstance(view, CompareView):
                view.set_peers(self._peers)
        return view

    @property
    def view_list(self) -> list[_View]:
        """The views made so far, in tab order."""
        return [self._built[t] for t in self._kinds if t in self._built]

    def view_titles(self) -> list[str]:
        """Every view this file has, made or not, in tab order."""
        return list(self._kinds)

    def current_view(self) -> _View | None:
        """The view of the current tab, if it has been made."""
        index = self.views.currentIndex()
        return self._built.get(self.views.tabText(index)) if index >= 0 else None

    def _optional(self, title: str) -> Any:
        return self._view(title) if title in self._kinds else None

    summary_view = property(lambda self: self._view(SummaryView.title))
    samples_view = property(lambda self: self._view(SamplesView.title))
    paths_view = property(lambda self: self._view(PathsView.title))
    stats_view = property(lambda self: self._view(StatsView.title))
    compare_view = property(lambda self: self._view(CompareView.title))
    images_view = property(lambda self: self._optional(ImagesView.title))
    logp_view = property(lambda self: self._optional(LogpView.title))

    def set_peers(self, paths: list[Path]) -> None:
        """The other open trajectory files, offered to Compare (now, or when it is made)."""
        self._peers = list(paths)
        compare = self._built.get(CompareView.title)
        if isinstance(compare, CompareView):
            compare.set_peers(self._peers)

    def _load(self) -> None:
        """Fill the tree and the slider from the (re-)opened file; views become stale."""
        self._fill_tree()
        self.incomplete_banner.setVisible(self.is_trajectory and not self.tf.complete)
        if not self.is_trajectory:
            return
        n = self.tf.n_saved
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, n - 1))
        self.slider.setEnabled(n > 0)
        self.play_button.setEnabled(n > 1)
        self.slider.blockSignals(False)
        self._update_time_label()
        for view in self.view_list:
            view.schedule_redraw()  # the current one draws now, the others once shown

    def _fill_tree(self) -> None:
        self.tree.clear()
        try:
            walked, self._walked = self._walked, None
            self.nodes = walked if walked is not None else self.tf.nodes()
        except WorkbenchError as exc:
            self.nodes = []
            self.show_read_error(str(exc))
            return
        items: dict[str, QtWidgets.QTreeWidgetItem] = {}
        for node in self.nodes:
            name = node["name"]
            if name == "/":
                item = QtWidgets.QTreeWidgetItem([self.path.name + " (/)", "", "group", "", ""])
                self.tree.addTopLevelItem(item)
            else:
                parent_name = name.rsplit("/", 1)[0] or "/"
                parent = items.get(parent_name)
                label = printable(name.rsplit("/", 1)[1])
                if node["kind"] == "dataset":
                    shape = " x ".join(str(s) for s in node.get("shape", [])) or "scalar"
                    chunks, comp = _storage(self.tf, node)
                    cols = [label, shape, node.get("dtype", ""), chunks, comp]
                else:
                    cols = [label, "", "group", "", ""]
                item = QtWidgets.QTreeWidgetItem(cols)
                (parent.addChild(item) if parent is not None else self.tree.addTopLevelItem(item))
            item.setData(0, QtCore.Qt.ItemDataRole.UserRole, name)
            items[name] = item
        self.tree.expandAll()
        for c in range(5):
            self.tree.resizeColumnToContents(c)
        first = self.tree.topLevelItem(0)
        if first is not None:
            self.tree.setCurrentItem(first)

    def tree_paths(self) -> dict[str, QtWidgets.QTreeWidgetItem]:
        """Every tree item by its HDF5 path."""
        out = {}
        it = QtWidgets.QTreeWidgetItemIterator(self.tree)
        while it.value():
            item = it.value()
            out[item.data(0, QtCore.Qt.ItemDataRole.UserRole)] = item
            it += 1
        return out

    def _node_selected(self, item: QtWidgets.QTreeWidgetItem | None, _prev: Any = None) -> None:
        self.attrs.setRowCount(0)
        if item is None:
            return
        name = item.data(0, QtCore.Qt.ItemDataRole.UserRole)
        node = next((n for n in self.nodes if n["name"] == name), None)
        attrs = {} if node is None else node.get("attrs", {})
        self.attrs.setRowCount(len(attrs))
        for r, (key, value) in enumerate(attrs.items()):
            # names and values are the writer's: escaped (and shortened) as `inspect` shows them
            self.attrs.setItem(r, 0, QtWidgets.QTableWidgetItem(printable(key)))
            cell = QtWidgets.QTableWidgetItem(printable(value) if value else "")
            cell.setToolTip(_attr_text(value))
            self.attrs.setItem(r, 1, cell)
        self.attrs.resizeColumnToContents(0)

    def attributes_shown(self) -> dict[str, str]:
        shown = {}
        for r in range(self.attrs.rowCount()):
            key, value = self.attrs.item(r, 0), self.attrs.item(r, 1)
            if key is not None and value is not None:  # every row gets both cells
                shown[key.text()] = value.toolTip()
        return shown

    # ------------------------------------------------------------------ slider and views
    def row_index(self) -> int | None:
        return self.slider.value() if self.is_trajectory and self.tf.n_saved > 0 else None

    def _update_time_label(self) -> None:
        k = self.row_index()
        if k is None:
            self.time_label.setText("no rows recorded")
            return
        t, step = float(self.tf.times[k]), int(self.tf.steps[k])
        self.time_label.setText(f"row {k + 1}/{self.tf.n_saved}  t = {t:.4g}  step {step}")

    def _row_changed(self, _value: int) -> None:
        self._update_time_label()
        for view in self.view_list:
            if view.follows_slider:
                view.schedule_redraw()

    def _draw_current(self) -> None:
        index = self.views.currentIndex()
        title = self.views.tabText(index) if index >= 0 else ""
        if title in self._kinds:
            self._view(title).flush_redraw()  # made on its first show

    def show_view(self, title: str) -> _View:
        if title not in self._kinds:
            raise KeyError(title)
        self.views.setCurrentIndex(list(self._kinds).index(title))
        self._draw_current()
        return self._view(title)

    def _play(self, on: bool) -> None:
        self.play_button.setText("Pause" if on else "Play")
        if on:
            if self.slider.value() >= self.slider.maximum():
                self.slider.setValue(0)
            self._timer.start()
        else:
            self._timer.stop()

    def _advance(self) -> None:
        if self.slider.value() >= self.slider.maximum():
            self.play_button.setChecked(False)
        else:
            self.slider.setValue(self.slider.value() + 1)

    def track_task(self, task: Any, label: str) -> None:
        """A view's worker: announced so that the window shows its progress and Cancel."""
        self.taskStarted.emit(task, label)

    def _stop_workers(self) -> None:
        """Cancel and join the views' worker threads (they read self.tf)."""
        for view in self.view_list:
            shutdown = getattr(view, "shutdown", None)
            if shutdown is not None:
                shutdown()

    def show_read_error(self, message: str) -> None:
        self.error_banner.setText(one_line(message))
        self.error_banner.show()

    # ------------------------------------------------------------------ refresh, export, close
    def refresh(self) -> None:
        """Re-open the file (F5): new rows of a file being written, its completion. The file
        is re-opened and walked in a worker (``refreshed`` follows); the views wait."""
        if self.refreshing is not None:
            return  # one at a time: the running one sees what is on disk by now
        self.play_button.setChecked(False)
        at_end = self.slider.value() >= self.slider.maximum()
        self._stop_workers()  # they read the handle that refresh() re-opens
        tf = self.tf
        task = Task("inspector-refresh", lambda _ctx: reopen(tf), self)
        task.done.connect(lambda walked: self._reopened(walked, at_end))
        task.failed.connect(lambda message, _details: self.show_read_error(message))
        task.finished.connect(lambda: self._refresh_ended(task))
        self.refreshing = task
        self.track_task(task, f"refreshing {self.path.name}")
        task.start()

    def _reopened(self, walked: list[dict[str, Any]], at_end: bool) -> None:
        if self._closed:
            return  # closed while it re-opened (the result was queued before the close)
        self.error_banner.hide()
        self._walked = walked
        self._load()
        if at_end and self.is_trajectory:
            self.slider.setValue(self.slider.maximum())

    def _refresh_ended(self, task: Task) -> None:
        task.wait()
        task.deleteLater()
        if self.refreshing is task:
            self.refreshing = None
        self.refreshed.emit()

    def wait_refreshed(self) -> None:
        """Join a running refresh (closing the file)."""
        if self.refreshing is not None:
            self.refreshing.wait()

    def open_export_dialog(self) -> ExportDialog:
        """The export dialog, shown non-modally (tests set its fields and call accept())."""
        dlg = ExportDialog(self.tf, self, row=None)
        if self.confirm_overwrite is not None:
            dlg.confirm_overwrite = self.confirm_overwrite
        self.export_dialog = dlg
        dlg.show()
        return dlg

    def close_file(self) -> None:
        """Stop playing, wait for the views' worker threads, close the file."""
        self._timer.stop()
        self._closed = True
        self.wait_refreshed()
        self._stop_workers()
        self.tf.close()
