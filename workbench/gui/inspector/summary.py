"""The Summary view: what the file holds, and its experiment config as TOML."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6 import QtCore, QtGui, QtWidgets

from workbench.errors import WorkbenchError
from workbench.gui.inspector.common import _View
from workbench.io.printable import printable

if TYPE_CHECKING:
    from workbench.gui.inspector.file_view import FileView


class SummaryView(_View):
    title = "Summary"

    def __init__(self, fv: FileView) -> None:
        super().__init__(fv)
        layout = QtWidgets.QVBoxLayout(self)
        self.form = QtWidgets.QFormLayout()
        self.fields: dict[str, QtWidgets.QLabel] = {}
        for key, label in (
            ("sampler", "Sampler"),
            ("direction", "Direction"),
            ("nfe", "NFE"),
            ("n_samples", "Samples"),
            ("dim", "Dimension"),
            ("sample_shape", "Sample shape"),
            ("rows", "Saved rows"),
            ("t_range", "Times"),
            ("normalizer", "Normalisation"),
            ("complete", "Complete"),
            ("created", "Created"),
            ("software", "Software"),
        ):
            value = QtWidgets.QLabel()
            value.setObjectName(f"summary_{key}")
            value.setTextFormat(
                QtCore.Qt.TextFormat.PlainText
            )  # a file's "<b>" is text, not markup
            value.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fields[key] = value
            self.form.addRow(label + ":", value)
        layout.addLayout(self.form)
        layout.addWidget(QtWidgets.QLabel("Experiment config (TOML):"))
        self.config = QtWidgets.QPlainTextEdit()
        self.config.setObjectName("inspectorConfig")
        self.config.setReadOnly(True)
        self.config.setFont(
            QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
        )
        layout.addWidget(self.config, 1)

    def draw(self) -> None:
        tf = self.fv.tf
        times = tf.times
        norm = tf.normalizer
        values = {
            "sampler": tf.sampler or "—",
            "direction": tf.direction or "—",
            "nfe": "—" if tf.nfe is None else str(tf.nfe),
            "n_samples": f"{tf.n_samples:,}",
            "dim": str(tf.dim),
            "sample_shape": str(tuple(tf.sample_shape)),
            "rows": str(tf.n_saved),
            "t_range": f"{times[0]:.4g} → {times[-1]:.4g}" if len(times) else "no rows",
            "normalizer": "none" if norm is None else str(norm.mode),
            "complete": "yes" if tf.complete else "no (writer stopped before closing)",
            "created": tf.created or "—",
            "software": tf.software or "—",
        }
        for key, text in values.items():
            self.fields[key].setText(printable(text))
        try:
            self.config.setPlainText(tf.config_text)
        except WorkbenchError as exc:
            self.config.setPlainText(f"# {exc}")
