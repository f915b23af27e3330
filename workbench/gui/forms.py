"""Config forms built from the declared parameters, one field per key.

Each :class:`~workbench.core.params.Param` becomes a widget chosen by its check (a number field,
a spin box, a combo box, a check box, a text field or a list literal), with the help line and
the allowed range as tooltip and hint. A form only collects raw values; validation is the
config's own (the main window builds the whole config and marks the field its error names),
so the GUI never has rules of its own that could disagree with the command line.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from workbench.core.params import Bool, Choice, Float, FloatArray, Int, Param

__all__ = ["ParamField", "SectionForm", "make_field"]

_INVALID_STYLE = "border: 1px solid #d9534f; background: #fff3f3;"


class ParamField(QtCore.QObject):
    """A widget for one key: ``value()``, ``set_value()``, ``edited`` and error marking."""

    edited = QtCore.Signal()

    def __init__(self, param: Param, widget: QtWidgets.QWidget) -> None:
        super().__init__(widget)
        self.param = param
        self.widget = widget
        widget.setObjectName(f"field_{param.name}")
        tip = f"{param.help}\nallowed: {param.describe()}" if param.help else param.describe()
        widget.setToolTip(tip)
        self._tip = tip
        self.error: str | None = None
        # the config's message, shown under the field (SectionForm places it)
        self.error_label = QtWidgets.QLabel()
        self.error_label.setObjectName(f"error_{param.name}")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c9302c; font-size: small;")
        self.error_label.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.error_label.setVisible(False)

    def value(self) -> Any:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def set_value(self, value: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def set_error(self, message: str | None) -> None:
        """Mark the field invalid with the config's own message, or clear the mark."""
        self.error = message
        self.widget.setStyleSheet(_INVALID_STYLE if message else "")
        self.widget.setToolTip(f"{message}\n\n{self._tip}" if message else self._tip)
        self.widget.setProperty("invalid", bool(message))
        self.error_label.setText(message or "")
        self.error_label.setVisible(bool(message))


class _TextNumber(ParamField):
    """Floats as text, so 1e-5 and 2e-3 are typed and shown as they are meant."""

    def __init__(self, param: Param) -> None:
        super().__init__(param, QtWidgets.QLineEdit())
        self.widget.setPlaceholderText(param.describe())
        self.widget.textEdited.connect(lambda _: self.edited.emit())

    def value(self) -> Any:
        text = self.widget.text().strip()
        if not text:
            return text
        try:
            return float(text) if any(c in text for c in ".eEn") else int(text)
        except ValueError:
            return text  # the config says what is wrong with it

    def set_value(self, value: Any) -> None:
        self.widget.setText(
            "" if value is None else f"{value:g}" if _is_float(value) else str(value)
        )


def _is_float(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)


class _IntField(ParamField):
    """Integers in a spin box bounded by the declared range (Qt's spin box is 32-bit)."""

    def __init__(self, param: Param, check: Int) -> None:
        super().__init__(param, QtWidgets.QSpinBox())
        low = -(2**31) if check.low is None else max(check.low, -(2**31))
        high = 2**31 - 1 if check.high is None else min(check.high, 2**31 - 1)
        self.widget.setRange(low, high)
        self.widget.setAccelerated(True)
        self.widget.setKeyboardTracking(False)
        self.widget.valueChanged.connect(lambda _: self.edited.emit())

    def value(self) -> Any:
        return int(self.widget.value())

    def set_value(self, value: Any) -> None:
        with QtCore.QSignalBlocker(self.widget):
            self.widget.setValue(int(value))


class _ChoiceField(ParamField):
    def __init__(self, param: Param, options: tuple[str, ...]) -> None:
        super().__init__(param, QtWidgets.QComboBox())
        self.widget.addItems(list(options))
        self.widget.currentTextChanged.connect(lambda _: self.edited.emit())

    def value(self) -> Any:
        return self.widget.currentText()

    def set_value(self, value: Any) -> None:
        with QtCore.QSignalBlocker(self.widget):
            index = self.widget.findText(str(value))
            if index < 0:
                self.widget.addItem(str(value))
                index = self.widget.count() - 1
            self.widget.setCurrentIndex(index)


class _BoolField(ParamField):
    def __init__(self, param: Param) -> None:
        super().__init__(param, QtWidgets.QCheckBox())
        self.widget.toggled.connect(lambda _: self.edited.emit())

    def value(self) -> Any:
        return self.widget.isChecked()

    def set_value(self, value: Any) -> None:
        with QtCore.QSignalBlocker(self.widget):
            self.widget.setChecked(bool(value))


class _TextField(ParamField):
    def __init__(self, param: Param) -> None:
        super().__init__(param, QtWidgets.QLineEdit())
        self.widget.textEdited.connect(lambda _: self.edited.emit())

    def value(self) -> Any:
        return self.widget.text()

    def set_value(self, value: Any) -> None:
        self.widget.setText("" if value is None else str(value))


class _ExpressionListField(ParamField):
    """Several expressions separated by ';' (a custom SDE's drift, one per coordinate): typed
    one per line in a monospace box, joined with '; ' for the config, split again to show."""

    def __init__(self, param: Param) -> None:
        super().__init__(param, QtWidgets.QPlainTextEdit())
        font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.FixedFont)
        self.widget.setFont(font)
        self.widget.setTabChangesFocus(True)
        self.widget.setLineWrapMode(QtWidgets.QPlainTextEdit.NoWrap)
        self.widget.setPlaceholderText("one expression per line: f1(x1, x2, t), f2(...)")
        lines = QtGui.QFontMetrics(font).lineSpacing()
        self.widget.setFixedHeight(4 * lines + 12)  # the form must not stretch it
        self.widget.setSizePolicy(QtWidgets.QSizePolicy.Expanding, QtWidgets.QSizePolicy.Fixed)
        self.widget.setMinimumWidth(220)
        self.widget.textChanged.connect(self.edited.emit)

    def value(self) -> Any:
        lines = [line.strip() for line in self.widget.toPlainText().splitlines()]
        while lines and not lines[-1]:
            lines.pop()  # a trailing newline is not an empty component
        return "; ".join(lines)

    def set_value(self, value: Any) -> None:
        parts = value if isinstance(value, (list, tuple)) else str(value).split(";")
        with QtCore.QSignalBlocker(self.widget):
            self.widget.setPlainText("\n".join(str(p).strip() for p in parts))


def _is_expression_list(param: Param) -> bool:
    """A key whose allowed values are expressions separated by ';' (as its check says)."""
    describe = getattr(param.check, "describe", None)
    return callable(describe) and "separated by ';'" in str(describe())


class _ArrayField(ParamField):
    """Nested lists typed as a TOML literal, e.g. ``[[0, 1], [2, 3]]``."""

    def __init__(self, param: Param) -> None:
        super().__init__(param, QtWidgets.QLineEdit())
        self.widget.setPlaceholderText("e.g. [[0.0, 1.0], [2.0, 3.0]]")
        self.widget.textEdited.connect(lambda _: self.edited.emit())

    def value(self) -> Any:
        text = self.widget.text().strip()
        if not text:
            return None
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            return text  # the config names the key and says a list is expected

    def set_value(self, value: Any) -> None:
        self.widget.setText("" if value is None else _literal(value))


def _literal(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


_FIELD_TYPES: dict[type, Callable[[Param], ParamField]] = {
    Float: _TextNumber,
    Int: lambda p: _IntField(p, p.check),  # type: ignore[arg-type]
    Choice: lambda p: _ChoiceField(p, p.check.options),  # type: ignore[attr-defined]
    Bool: _BoolField,
    FloatArray: _ArrayField,
}


def make_field(param: Param) -> ParamField:
    """The widget for ``param``, chosen by the type of its check (text for anything else)."""
    if _is_expression_list(param):
        return _ExpressionListField(param)
    return _FIELD_TYPES.get(type(param.check), _TextField)(param)


class SectionForm(QtWidgets.QWidget):
    """The fields of one config section, laid out as label / field / hint rows."""

    edited = QtCore.Signal()

    def __init__(self, section: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.section = section
        self.setObjectName(f"{section}Form")
        self.fields: dict[str, ParamField] = {}
        self._layout = QtWidgets.QFormLayout(self)
        self._layout.setFieldGrowthPolicy(QtWidgets.QFormLayout.AllNonFixedFieldsGrow)
        self._layout.setContentsMargins(4, 4, 4, 4)

    def set_params(self, params: tuple[Param, ...], values: dict[str, Any]) -> None:
        """(Re)build the fields for ``params`` and fill them with ``values``."""
        while self._layout.rowCount():
            self._layout.removeRow(0)
        self.fields = {}
        for param in params:
            field = make_field(param)
            value = values.get(param.name, param.default)
            if value is not None:
                field.set_value(value)
            field.edited.connect(self.edited)
            self.fields[param.name] = field
            label = QtWidgets.QLabel(param.name)
            label.setToolTip(field.widget.toolTip())
            cell = QtWidgets.QWidget()
            column = QtWidgets.QVBoxLayout(cell)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(1)
            column.addWidget(field.widget)
            column.addWidget(field.error_label)
            self._layout.addRow(label, cell)

    def values(self) -> dict[str, Any]:
        """The raw values typed, for the config to validate; empty optional keys left out."""
        out = {}
        for name, field in self.fields.items():
            value = field.value()
            if value is None or (value == "" and field.param.default is None):
                continue
            out[name] = value
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name in self.fields and value is not None:
                self.fields[name].set_value(value)

    def mark(self, key: str | None, message: str | None) -> bool:
        """Clear every mark, then mark ``key`` with ``message``; True if the key is here."""
        found = False
        for name, field in self.fields.items():
            hit = name == key
            field.set_error(message if hit else None)
            found = found or hit
        return found
