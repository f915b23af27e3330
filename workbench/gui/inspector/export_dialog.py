"""The export dialog: which samples, how many, which format, where."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtWidgets

from workbench.errors import WorkbenchError, one_line
from workbench.gui.inspector.common import _RED, _banner
from workbench.io.trajectories import TrajectoryFile

EXPORT_FORMATS = ("npy", "npz", "csv", "h5", "png")


class ExportDialog(QtWidgets.QDialog):
    """Export samples of one file with :func:`workbench.io.export.export_samples`."""

    def __init__(
        self, tf: TrajectoryFile, parent: QtWidgets.QWidget | None = None, row: int | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.setWindowTitle("Export samples")
        self.tf = tf
        self.exported: Path | None = None
        self.report: str | None = None
        self.error: str | None = None
        # Asked before replacing an existing file; tests replace it.
        self.confirm_overwrite: Callable[[Path], bool] = self._ask_overwrite

        form = QtWidgets.QFormLayout()
        self.row_box = QtWidgets.QComboBox()
        self.row_box.setObjectName("exportRow")
        self.row_box.addItem("final samples", None)
        times, steps = tf.times, tf.steps
        for k in range(tf.n_saved):
            self.row_box.addItem(f"row {k}: t = {times[k]:.4g}, step {int(steps[k])}", k)
        if row is not None:
            self.row_box.setCurrentIndex(row + 1)
        form.addRow("Which samples:", self.row_box)
        self.n_box = QtWidgets.QSpinBox()
        self.n_box.setObjectName("exportCount")
        self.n_box.setRange(1, max(1, tf.n_samples))
        self.n_box.setValue(tf.n_samples)
        self.n_box.setGroupSeparatorShown(True)
        form.addRow("How many:", self.n_box)
        self.format_box = QtWidgets.QComboBox()
        self.format_box.setObjectName("exportFormat")
        image = len(tf.sample_shape) >= 2
        for fmt in EXPORT_FORMATS:
            if fmt != "png" or image:
                self.format_box.addItem(fmt)
        form.addRow("Format:", self.format_box)
        self.denormalise_box = QtWidgets.QCheckBox("denormalised (data units)")
        self.denormalise_box.setObjectName("exportDenormalise")
        self.denormalise_box.setChecked(True)
        form.addRow("Units:", self.denormalise_box)
        dest = QtWidgets.QHBoxLayout()
        self.path_edit = QtWidgets.QLineEdit()
        self.path_edit.setObjectName("exportPath")
        self.path_edit.setText(str(tf.path.with_name(tf.path.stem + "_samples.npy")))
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        dest.addWidget(self.path_edit, 1)
        dest.addWidget(browse)
        form.addRow("Destination:", dest)
        self.format_box.currentTextChanged.connect(self._format_changed)

        self.message = _banner("exportMessage", _RED)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setObjectName("exportProgress")
        self.progress.setRange(0, 1000)
        self.progress.hide()
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.progress)
        layout.addWidget(buttons)

    def _format_changed(self, fmt: str) -> None:
        path = Path(self.path_edit.text())
        if path.suffix.lower().lstrip(".") in EXPORT_FORMATS and fmt:
            self.path_edit.setText(str(path.with_suffix("." + fmt)))

    def _browse(self) -> None:
        fmt = self.format_box.currentText()
        name, _ = QtWidgets.QFileDialog.getSaveFileName(
            self,
            "Export samples",
            self.path_edit.text(),
            f"{fmt} files (*.{fmt});;All files (*)",
            options=QtWidgets.QFileDialog.Option.DontConfirmOverwrite,
        )
        if name:
            self.path_edit.setText(name)

    def _ask_overwrite(self, path: Path) -> bool:
        answer = QtWidgets.QMessageBox.question(
            self, "Export samples", f"{path} already exists. Replace it?"
        )
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    def options(self) -> dict[str, Any]:
        """The export_samples keyword arguments the fields describe (without force)."""
        k = self.row_box.currentData()
        opts: dict[str, Any] = {
            "fmt": self.format_box.currentText(),
            "n": int(self.n_box.value()),
            "denormalise": self.denormalise_box.isChecked(),
        }
        if k is not None:
            opts["step"] = int(self.tf.steps[int(k)])
        return opts

    def _fail(self, message: str) -> None:
        self.error = one_line(message)
        self.message.setText(self.error)
        self.message.show()

    def accept(self) -> None:
        from workbench.io.export import run_export

        text = self.path_edit.text().strip()
        if not text:
            self._fail("give a destination file")
            return
        out = Path(text).expanduser()
        force = False
        if out.exists():
            if not self.confirm_overwrite(out):
                self._fail(f"{out} already exists and was kept; choose another destination")
                return
            force = True
        self.progress.setValue(0)
        self.progress.show()
        big = self.n_box.value() * self.tf.dim >= 5_000_000

        def progress(fraction: float) -> None:
            self.progress.setValue(int(1000 * fraction))
            if big:
                QtWidgets.QApplication.processEvents(
                    QtCore.QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents
                )

        try:
            result = run_export(self.tf, out, force=force, progress=progress, **self.options())
        except WorkbenchError as exc:
            self.progress.hide()
            self._fail(str(exc))
            return
        except OSError as exc:
            self.progress.hide()
            self._fail(f"cannot write {out}: {exc.strerror or exc}")
            return
        self.exported = result.path
        # which samples went out (final samples or row k, step, t), for the window to show
        self.report = result.describe()
        self.error = None
        self.progress.setValue(1000)
        super().accept()
