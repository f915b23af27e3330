"""Config forms built from the declared parameters, one field per key.

Each :class:`~workbench.core.params.Param` becomes a widget chosen by its check (a number field,
a spin box, a combo box, a check box, a text field or a list literal), with the help line and
the allowed range as tooltip and hint. A form only collects raw values; validation is the
config's own (the main window builds the whole config and marks the field its error names),
so the GUI never has rules of its own that could disagree with the command line.

A form changes nothing it was not told to: a field returns exactly the value it was loaded
with until the user edits it (``ParamField.value`` gives the loaded object back while the
widget still shows what ``set_value`` put there), floats are shown by ``repr`` (the shortest
text that reads back as the same double, so 2.82842712474619 is not cut to 2.82843), and
integers use the whole declared range (Qt's spin box stops at 2^31 - 1; a wider one is used
beyond). A run trained from the GUI is then the experiment on disk, and ``train --resume``
from the command line finds the same settings.

A form shows only the keys that apply to the current choice: a Param whose ``extra["when"]``
names other keys of the section (``{"kind": ("unet",)}``) is shown only while each of them has
one of its values (the U-Net's ``channels`` for kind = unet). Hidden keys keep their values (a
form changes nothing it was not told to), and a key the config finds invalid is shown, marked,
whatever the choice: an error is never hidden.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from workbench.core.params import Bool, Choice, Float, FloatArray, Int, Param

__all__ = ["ParamField", "SectionForm", "WideSpinBox", "applies", "make_field"]

_INVALID_STYLE = "border: 1px solid #d9534f; background: #fff3f3;"


class ParamField(QtCore.QObject):
    """A widget for one key: ``value()``, ``set_value()``, ``edited`` and error marking.

    Each subclass declares ``widget`` as the widget class it makes, so its own calls
    (``text()``, ``setValue()``) are checked against that class, not against QWidget.
    """

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
        self.error_label.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.error_label.setVisible(False)
        # (value loaded, what the widget showed for it): see value()
        self._loaded: tuple[Any, Any] | None = None

    def value(self) -> Any:
        """The loaded value itself while the widget still shows it, else what was typed.

        Showing a value and parsing it back is not the identity for every widget (an
        expression list is re-spaced, a number re-formatted), so an untouched field never
        goes through that round trip: the config gets back the very object it gave.
        """
        shown = self._shown()
        if self._loaded is not None and shown == self._loaded[1]:
            return self._loaded[0]
        return self._parse(shown)

    def set_value(self, value: Any) -> None:
        self._show(value)
        self._loaded = (value, self._shown())

    def _shown(self) -> Any:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def _parse(self, shown: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _show(self, value: Any) -> None:  # pragma: no cover
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

    widget: QtWidgets.QLineEdit

    def __init__(self, param: Param) -> None:
        super().__init__(param, QtWidgets.QLineEdit())
        self.widget.setPlaceholderText(param.describe())
        self.widget.textEdited.connect(lambda _: self.edited.emit())

    def _shown(self) -> str:
        return self.widget.text()

    def _parse(self, shown: str) -> Any:
        text = shown.strip()
        if not text:
            return text
        try:
            return float(text) if any(c in text for c in ".eEn") else int(text)
        except ValueError:
            return text  # the config says what is wrong with it

    def _show(self, value: Any) -> None:
        self.widget.setText("" if value is None else _number_text(value))
        self.widget.setCursorPosition(0)  # a long number shows its leading digits


def _number_text(value: Any) -> str:
    """repr for floats: the shortest text that reads back as the same double (``:g`` keeps 6
    significant digits and would change the experiment)."""
    return repr(value) if isinstance(value, float) else str(value)


_QT_INT_MIN, _QT_INT_MAX = -(2**31), 2**31 - 1


class _IntField(ParamField):
    """Integers in a spin box bounded by the declared range: Qt's QSpinBox when the range fits
    its 32 bits, else a spin box on Python integers (a seed may be any 64-bit integer)."""

    widget: QtWidgets.QSpinBox | WideSpinBox

    def __init__(self, param: Param, check: Int) -> None:
        low = -(2**63) if check.low is None else check.low
        high = 2**63 - 1 if check.high is None else check.high
        if low >= _QT_INT_MIN and high <= _QT_INT_MAX:
            spin = QtWidgets.QSpinBox()
            spin.setRange(low, high)
            box: QtWidgets.QSpinBox | WideSpinBox = spin
        else:
            box = WideSpinBox(low, high)
        super().__init__(param, box)
        self.widget.setAccelerated(True)
        self.widget.setKeyboardTracking(False)
        self.widget.valueChanged.connect(lambda _: self.edited.emit())

    def _shown(self) -> int:
        return int(self.widget.value())

    def _parse(self, shown: int) -> Any:
        return shown

    def _show(self, value: Any) -> None:
        with QtCore.QSignalBlocker(self.widget):
            self.widget.setValue(int(value))


class WideSpinBox(QtWidgets.QAbstractSpinBox):
    """A spin box on Python integers from ``low`` to ``high``, any size (QSpinBox is 32-bit).

    Like a QSpinBox without keyboard tracking: ``valueChanged`` fires on a step, on
    ``setValue`` and when typing is finished (Enter or focus out); text that is not an integer
    in range is put back to the last value.
    """

    valueChanged = QtCore.Signal(object)

    def __init__(self, low: int, high: int, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        if low > high:
            raise ValueError(f"empty range {low}..{high}")
        self._low, self._high = int(low), int(high)
        self._value = min(max(0, self._low), self._high)
        self.lineEdit().setText(str(self._value))
        self.editingFinished.connect(self._commit)

    def minimum(self) -> int:
        return self._low

    def maximum(self) -> int:
        return self._high

    def value(self) -> int:
        return self._value

    def setValue(self, value: int) -> None:
        value = min(max(int(value), self._low), self._high)
        self.lineEdit().setText(str(value))
        if value != self._value:
            self._value = value
            self.valueChanged.emit(value)

    def _commit(self) -> None:
        try:
            typed = int(self.lineEdit().text().strip())
        except ValueError:
            typed = self._value
        self.setValue(typed)

    def stepBy(self, steps: int) -> None:
        self._commit()
        self.setValue(self._value + steps)
        self.selectAll()

    def stepEnabled(self) -> QtWidgets.QAbstractSpinBox.StepEnabledFlag:
        flags = QtWidgets.QAbstractSpinBox.StepEnabledFlag.StepNone
        if self._value > self._low:
            flags |= QtWidgets.QAbstractSpinBox.StepEnabledFlag.StepDownEnabled
        if self._value < self._high:
            flags |= QtWidgets.QAbstractSpinBox.StepEnabledFlag.StepUpEnabled
        return flags

    def validate(self, text: str, pos: int) -> tuple[QtGui.QValidator.State, str, int]:
        stripped = text.strip()
        if stripped in ("", "-", "+"):
            return QtGui.QValidator.State.Intermediate, text, pos
        try:
            number = int(stripped)
        except ValueError:
            return QtGui.QValidator.State.Invalid, text, pos
        ok = self._low <= number <= self._high
        return (
            (QtGui.QValidator.State.Acceptable if ok else QtGui.QValidator.State.Intermediate),
            text,
            pos,
        )

    def fixup(self, text: str) -> str:
        return str(self._value)

    def sizeHint(self) -> QtCore.QSize:
        hint = super().sizeHint()
        metrics = self.fontMetrics()
        digits = max(metrics.horizontalAdvance(str(v)) for v in (self._low, self._high))
        return QtCore.QSize(max(hint.width(), digits + 40), hint.height())


class _ChoiceField(ParamField):
    widget: QtWidgets.QComboBox

    def __init__(self, param: Param, options: tuple[str, ...]) -> None:
        super().__init__(param, QtWidgets.QComboBox())
        self.widget.addItems(list(options))
        self.widget.currentTextChanged.connect(lambda _: self.edited.emit())

    def _shown(self) -> str:
        return self.widget.currentText()

    def _parse(self, shown: str) -> Any:
        return shown

    def _show(self, value: Any) -> None:
        with QtCore.QSignalBlocker(self.widget):
            index = self.widget.findText(str(value))
            if index < 0:
                self.widget.addItem(str(value))
                index = self.widget.count() - 1
            self.widget.setCurrentIndex(index)


class _BoolField(ParamField):
    widget: QtWidgets.QCheckBox

    def __init__(self, param: Param) -> None:
        super().__init__(param, QtWidgets.QCheckBox())
        self.widget.toggled.connect(lambda _: self.edited.emit())

    def _shown(self) -> bool:
        return self.widget.isChecked()

    def _parse(self, shown: bool) -> Any:
        return shown

    def _show(self, value: Any) -> None:
        with QtCore.QSignalBlocker(self.widget):
            self.widget.setChecked(bool(value))


class _TextField(ParamField):
    widget: QtWidgets.QLineEdit

    def __init__(self, param: Param) -> None:
        super().__init__(param, QtWidgets.QLineEdit())
        self.widget.textEdited.connect(lambda _: self.edited.emit())

    def _shown(self) -> str:
        return self.widget.text()

    def _parse(self, shown: str) -> Any:
        return shown

    def _show(self, value: Any) -> None:
        self.widget.setText("" if value is None else str(value))
        self.widget.setCursorPosition(0)


class _ExpressionListField(ParamField):
    """Several expressions separated by ';' (a custom SDE's drift, one per coordinate): typed
    one per line in a monospace box, joined with '; ' for the config, split again to show."""

    widget: QtWidgets.QPlainTextEdit

    def __init__(self, param: Param) -> None:
        super().__init__(param, QtWidgets.QPlainTextEdit())
        font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
        self.widget.setFont(font)
        self.widget.setTabChangesFocus(True)
        self.widget.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.NoWrap)
        self.widget.setPlaceholderText("one expression per line: f1(x1, x2, t), f2(...)")
        lines = QtGui.QFontMetrics(font).lineSpacing()
        self.widget.setFixedHeight(4 * lines + 12)  # the form must not stretch it
        self.widget.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed
        )
        self.widget.setMinimumWidth(220)
        self.widget.textChanged.connect(self.edited.emit)

    def _shown(self) -> str:
        return self.widget.toPlainText()

    def _parse(self, shown: str) -> Any:
        lines = [line.strip() for line in shown.splitlines()]
        while lines and not lines[-1]:
            lines.pop()  # a trailing newline is not an empty component
        return "; ".join(lines)

    def _show(self, value: Any) -> None:
        parts = value if isinstance(value, (list, tuple)) else str(value).split(";")
        with QtCore.QSignalBlocker(self.widget):
            self.widget.setPlainText("\n".join(str(p).strip() for p in parts))


def _is_expression_list(param: Param) -> bool:
    """A key whose allowed values are expressions separated by ';' (as its check says)."""
    describe = getattr(param.check, "describe", None)
    return callable(describe) and "separated by ';'" in str(describe())


class _ArrayField(ParamField):
    """Nested lists typed as a TOML literal, e.g. ``[[0, 1], [2, 3]]``."""

    widget: QtWidgets.QLineEdit

    def __init__(self, param: Param) -> None:
        super().__init__(param, QtWidgets.QLineEdit())
        self.widget.setPlaceholderText("e.g. [[0.0, 1.0], [2.0, 3.0]]")
        self.widget.textEdited.connect(lambda _: self.edited.emit())

    def _shown(self) -> str:
        return self.widget.text()

    def _parse(self, shown: str) -> Any:
        text = shown.strip()
        if not text:
            return None
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            return text  # the config names the key and says a list is expected

    def _show(self, value: Any) -> None:
        self.widget.setText("" if value is None else _literal(value))
        self.widget.setCursorPosition(0)


def _literal(value: Any) -> str:
    """A TOML literal of nested lists; floats by repr, which TOML reads back exactly."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return _number_text(value)


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


def applies(param: Param, values: dict[str, Any]) -> bool:
    """Whether ``param`` is used given the section's ``values``, by its declared
    ``extra["when"]`` ({key: allowed values}); a key not among ``values`` does not hide it."""
    when = param.extra.get("when") if param.extra else None
    if not when:
        return True
    return all(key not in values or values[key] in allowed for key, allowed in when.items())


class SectionForm(QtWidgets.QWidget):
    """The fields of one config section, laid out as label / field / hint rows."""

    edited = QtCore.Signal()

    def __init__(self, section: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.section = section
        self.setObjectName(f"{section}Form")
        self.fields: dict[str, ParamField] = {}
        self.labels: dict[str, QtWidgets.QLabel] = {}
        self._cells: dict[str, QtWidgets.QWidget] = {}
        self._layout = QtWidgets.QFormLayout(self)
        self._layout.setFieldGrowthPolicy(
            QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow
        )
        self._layout.setContentsMargins(4, 4, 4, 4)

    def set_params(self, params: tuple[Param, ...], values: dict[str, Any]) -> None:
        """(Re)build the fields for ``params`` and fill them with ``values``."""
        while self._layout.rowCount():
            self._layout.removeRow(0)
        self.fields = {}
        self.labels = {}
        self._cells = {}
        for param in params:
            field = make_field(param)
            value = values.get(param.name, param.default)
            if value is not None:
                field.set_value(value)
            field.edited.connect(self.update_visibility)
            field.edited.connect(self.edited)
            self.fields[param.name] = field
            label = QtWidgets.QLabel(param.name)
            label.setObjectName(f"label_{param.name}")
            label.setToolTip(field.widget.toolTip())
            cell = QtWidgets.QWidget()
            column = QtWidgets.QVBoxLayout(cell)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(1)
            column.addWidget(field.widget)
            column.addWidget(field.error_label)
            self._layout.addRow(label, cell)
            self.labels[param.name] = label
            self._cells[param.name] = cell
        self.update_visibility()

    def shown(self, name: str) -> bool:
        """Whether ``name``'s row is shown (by this form: its parents may still be hidden)."""
        return not self._cells[name].isHidden()

    def update_visibility(self) -> None:
        """Show the keys that apply to the choices now made, and every marked one."""
        current = {name: field.value() for name, field in self.fields.items()}
        for name, field in self.fields.items():
            show = applies(field.param, current) or field.error is not None
            if self._cells[name].isHidden() == show:
                self._layout.setRowVisible(self._cells[name], show)

    def values(self) -> dict[str, Any]:
        """The raw values typed, for the config to validate; empty optional keys left out."""
        out = {}
        for name, field in self.fields.items():
            value = field.value()
            if value is None or (value == "" and field.param.default is None):
                continue
            out[name] = value
        return out

    def mark(self, key: str | None, message: str | None) -> bool:
        """Clear every mark, then mark ``key`` with ``message``; True if the key is here."""
        return bool(self.mark_all({} if key is None else {key: message or ""}))

    def mark_all(self, errors: dict[str, str]) -> set[str]:
        """Mark each key of ``errors`` with its message, clear every other mark; returns the
        keys found here."""
        for name, field in self.fields.items():
            field.set_error(errors.get(name))
        self.update_visibility()
        return {name for name in errors if name in self.fields}

    def error_count(self) -> int:
        return sum(1 for field in self.fields.values() if field.error)
