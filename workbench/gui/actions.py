"""The main window's actions at hand: Train, Stop and Sample on a toolbar and in a Run menu,
visible whatever panel of the Experiment dock is open, and the Help menu.

Each action exists once and is shared by its menu entry, its toolbar button and its keyboard
shortcut, so the three cannot disagree: the window enables or disables the action, and the
button and the shortcut follow (a disabled action's shortcut does not fire). The shortcuts
avoid the keys Qt gives the File menu's standard actions on every platform (Ctrl+Shift+S is
Save As on Linux, so Sample is Ctrl+R); the shortcuts dialog is built from the actions
themselves, so it lists what the keys really do.
"""

from __future__ import annotations

import html
import importlib.metadata
from pathlib import Path
from typing import TYPE_CHECKING, cast

from PySide6 import QtCore, QtGui, QtWidgets

if TYPE_CHECKING:
    from workbench.gui.main_window import MainWindow

__all__ = [
    "about_text",
    "build_help_menu",
    "build_run_actions",
    "docs_locations",
    "shortcut_rows",
]

_SP = QtWidgets.QStyle.StandardPixmap


def _action(
    window: MainWindow,
    text: str,
    icon: QtWidgets.QStyle.StandardPixmap | None,
    keys: list[str | QtGui.QKeySequence.StandardKey],
    tip: str,
    name: str,
) -> QtGui.QAction:
    action = QtGui.QAction(text, window)
    action.setObjectName(name)
    if icon is not None:
        action.setIcon(window.style().standardIcon(icon))
    sequences: list[QtGui.QKeySequence] = []
    for key in keys:
        if isinstance(key, str):
            sequences.append(QtGui.QKeySequence(key))
        else:
            sequences.extend(QtGui.QKeySequence.keyBindings(key))
    action.setShortcuts(sequences)
    shown = ", ".join(s.toString(QtGui.QKeySequence.SequenceFormat.NativeText) for s in sequences)
    action.setToolTip(f"{tip} ({shown})" if shown else tip)
    action.setStatusTip(tip)
    return action


def build_run_actions(window: MainWindow, before: QtGui.QAction | None = None) -> None:
    """The Run toolbar and menu; ``window.train_button`` etc. become the toolbar's buttons.

    ``before`` is the menu bar entry the Run menu goes in front of (the View menu).
    """
    window.train_action = _action(
        window,
        "&Train",
        _SP.SP_MediaPlay,
        ["Ctrl+T"],
        "Train the score network on the experiment into a new run folder",
        "trainAction",
    )
    window.stop_action = _action(
        window,
        "S&top",
        _SP.SP_MediaStop,
        ["Ctrl+.", "Esc"],
        "Stop training or sampling after the current step (the checkpoint is kept)",
        "stopAction",
    )
    window.sample_action = _action(
        window,
        "&Sample",
        _SP.SP_MediaSeekForward,
        ["Ctrl+R"],
        "Generate samples with the chosen sampler and show them",
        "sampleAction",
    )
    window.stop_action.setEnabled(False)
    window.train_action.triggered.connect(window.start_training)
    window.stop_action.triggered.connect(window.stop_work)
    window.sample_action.triggered.connect(window.start_sampling)

    toolbar = QtWidgets.QToolBar("Run", window)
    toolbar.setObjectName("runToolBar")
    toolbar.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    toolbar.setMovable(False)
    window.addToolBar(QtCore.Qt.ToolBarArea.TopToolBarArea, toolbar)
    menu = QtWidgets.QMenu("&Run", window)
    menu.setObjectName("runMenu")
    for action, name in (
        (window.train_action, "trainButton"),
        (window.stop_action, "stopButton"),
        (window.sample_action, "sampleButton"),
    ):
        toolbar.addAction(action)
        menu.addAction(action)
        toolbar.widgetForAction(action).setObjectName(name)
    if before is not None:
        window.menuBar().insertMenu(before, menu)
    else:
        window.menuBar().addMenu(menu)
    window.run_toolbar = toolbar
    window.train_button = cast(QtWidgets.QToolButton, toolbar.widgetForAction(window.train_action))
    window.stop_button = cast(QtWidgets.QToolButton, toolbar.widgetForAction(window.stop_action))
    window.sample_button = cast(
        QtWidgets.QToolButton, toolbar.widgetForAction(window.sample_action)
    )


def build_help_menu(window: MainWindow) -> None:
    """Help: the documentation's whereabouts (F1), the keyboard shortcuts, About."""
    menu = window.menuBar().addMenu("&Help")
    menu.setObjectName("helpMenu")
    docs = _action(
        window,
        "&Documentation",
        _SP.SP_DialogHelpButton,
        [QtGui.QKeySequence.StandardKey.HelpContents],
        "Where the README and the docs are",
        "docsAction",
    )
    keys = _action(
        window, "&Keyboard shortcuts", None, ["Ctrl+/"], "Every shortcut", "shortcutsAction"
    )
    about = _action(
        window, "&About SDE Workbench", None, [], "Versions and the device", "aboutAction"
    )
    docs.triggered.connect(lambda: show_docs(window))
    keys.triggered.connect(lambda: show_shortcuts(window))
    about.triggered.connect(lambda: show_about(window))
    for action in (docs, keys):
        menu.addAction(action)
    menu.addSeparator()
    menu.addAction(about)


def _plain(text: str) -> str:
    """A menu text without its mnemonic ampersands ("&&" is a literal "&")."""
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&")


def _menu_actions(menu: QtWidgets.QMenu, path: str) -> list[tuple[str, QtGui.QAction]]:
    found: list[tuple[str, QtGui.QAction]] = []
    for action in menu.actions():
        sub = cast(QtWidgets.QMenu | None, action.menu())
        if sub is not None:
            found += _menu_actions(sub, f"{path} > {_plain(sub.title())}")
        elif not action.isSeparator():
            found.append((path, action))
    return found


def shortcut_rows(window: QtWidgets.QMainWindow) -> list[tuple[str, str, str]]:
    """(menu, action, keys) for every action of the window's menus, toolbars and the window
    itself that has a shortcut, in menu order; keys in the platform's own notation."""
    found: list[tuple[str, QtGui.QAction]] = []
    for entry in window.menuBar().actions():
        menu = cast(QtWidgets.QMenu | None, entry.menu())
        if menu is not None:
            found += _menu_actions(menu, _plain(menu.title()))
    for toolbar in window.findChildren(QtWidgets.QToolBar):
        found += [(_plain(toolbar.windowTitle()), a) for a in toolbar.actions()]
    found += [("Window", a) for a in window.actions()]
    rows: list[tuple[str, str, str]] = []
    seen: set[int] = set()
    for where, action in found:
        if id(action) in seen or not action.shortcuts():
            continue
        seen.add(id(action))
        keys = ", ".join(
            s.toString(QtGui.QKeySequence.SequenceFormat.NativeText) for s in action.shortcuts()
        )
        rows.append((where, _plain(action.text()), keys))
    return rows


def show_shortcuts(window: MainWindow) -> QtWidgets.QDialog:
    """A non-modal dialog with a table of :func:`shortcut_rows`."""
    dialog = QtWidgets.QDialog(window)
    dialog.setObjectName("shortcutsDialog")
    dialog.setWindowTitle("Keyboard shortcuts — SDE Workbench")
    dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    rows = shortcut_rows(window)
    table = QtWidgets.QTableWidget(len(rows), 3, dialog)
    table.setObjectName("shortcutsTable")
    table.setHorizontalHeaderLabels(["Menu", "Action", "Keys"])
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
    for i, row in enumerate(rows):
        for j, text in enumerate(row):
            table.setItem(i, j, QtWidgets.QTableWidgetItem(text))
    table.resizeColumnsToContents()
    table.horizontalHeader().setStretchLastSection(True)
    buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.close)
    layout = QtWidgets.QVBoxLayout(dialog)
    layout.addWidget(table)
    layout.addWidget(buttons)
    dialog.resize(520, 420)
    dialog.show()
    return dialog


def about_text(window: MainWindow) -> str:
    """The versions ``sde-workbench --version`` reports, the Qt the window really runs on
    (QtCore's runtime version, which may differ from the one PySide6 was built with) and the
    device: what training with the current ``train.device`` uses."""
    from workbench.cli_version import version_report
    from workbench.gui.panels import describe_devices

    lines = version_report().splitlines()
    lines.append(f"Qt runtime {QtCore.qVersion()} ({QtGui.QGuiApplication.platformName()})")
    lines.append(f"device: {describe_devices()}; train.device = {window.config.train.device}")
    return "\n".join(lines)


def show_about(window: MainWindow) -> QtWidgets.QMessageBox:
    box = QtWidgets.QMessageBox(window)
    box.setObjectName("aboutBox")
    box.setWindowTitle("About SDE Workbench")
    box.setIconPixmap(window.windowIcon().pixmap(64, 64))
    box.setText(
        "<b>SDE Workbench</b><br>score-based generative modelling with stochastic "
        "differential equations"
    )
    box.setInformativeText(html.escape(about_text(window)).replace("\n", "<br>"))
    box.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
    box.setModal(False)
    box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    box.show()
    return box


def docs_locations() -> list[tuple[str, str]]:
    """(label, where) for the documentation: the README and docs folder of a checkout or an
    unpacked source tree (next to the package), then the project's URLs from the installed
    distribution's metadata (absent when running from a plain checkout)."""
    import workbench

    found: list[tuple[str, str]] = []
    root = Path(workbench.__file__).resolve().parent.parent
    for label, path in (("README", root / "README.md"), ("docs folder", root / "docs")):
        if path.exists():
            found.append((label, str(path)))
    try:
        urls = importlib.metadata.metadata("sde-workbench").get_all("Project-URL") or []
    except importlib.metadata.PackageNotFoundError:
        urls = []
    for entry in urls:
        label, _, url = entry.partition(",")
        if url.strip():
            found.append((label.strip(), url.strip()))
    return found


def show_docs(window: MainWindow) -> QtWidgets.QMessageBox:
    lines = []
    for label, where in docs_locations():
        target = where if "://" in where else QtCore.QUrl.fromLocalFile(where).toString()
        lines.append(
            f"{html.escape(label)}: <a href='{html.escape(target)}'>{html.escape(where)}</a>"
        )
    lines.append("the command line: <code>sde-workbench --help</code>")
    box = QtWidgets.QMessageBox(window)
    box.setObjectName("docsBox")
    box.setWindowTitle("Documentation — SDE Workbench")
    box.setTextFormat(QtCore.Qt.TextFormat.RichText)
    box.setText("<br>".join(lines))
    box.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextBrowserInteraction)
    box.setModal(False)
    box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    box.show()
    return box
