"""The actions at hand: the Run toolbar and menu, their shortcuts, the Help menu, the title and
its unsaved-changes mark, drops, recent files, and starting with no display."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from tests.gui.conftest import fast
from workbench import __version__
from workbench.config import save_config
from workbench.gui.main_window import MainWindow

ROOT = Path(__file__).resolve().parents[2]
RUN_BUTTONS = ("trainButton", "stopButton", "sampleButton")


def button(window: MainWindow, name: str) -> QtWidgets.QToolButton:
    found = window.findChild(QtWidgets.QToolButton, name)
    assert found is not None, name
    return found


def test_run_buttons_are_visible_on_every_toolbox_page(qtbot, window: MainWindow) -> None:
    window.resize(1400, 900)
    qtbot.waitExposed(window)
    for page in range(window.toolbox.count()):
        window.toolbox.setCurrentIndex(page)
        qtbot.wait(10)
        for name in RUN_BUTTONS:
            b = button(window, name)
            assert b.isVisible(), (name, page)
            # wholly inside the window: no scrolling needed to reach it
            top_left = b.mapTo(window, QtCore.QPoint(0, 0))
            assert window.rect().contains(QtCore.QRect(top_left, b.size())), name
    # exactly one of each: the panels' old buttons are gone, not duplicated
    for name in RUN_BUTTONS:
        assert len(window.findChildren(QtWidgets.QAbstractButton, name)) == 1
    assert (
        window.findChild(QtWidgets.QWidget, "trainingPanel").findChildren(QtWidgets.QPushButton)
        == []
    )
    assert not button(window, "stopButton").isEnabled()


def test_toolbar_buttons_train_and_stop(qtbot, window: MainWindow) -> None:
    fast(window, **{"train.steps": 100_000})
    window.toolbox.setCurrentIndex(0)  # the Data page: Train is on the toolbar regardless
    qtbot.mouseClick(button(window, "trainButton"), QtCore.Qt.LeftButton)
    assert window.task is not None and window.task.name == "training"
    assert button(window, "stopButton").isEnabled()
    assert not button(window, "trainButton").isEnabled()
    assert not button(window, "sampleButton").isEnabled()
    assert not window.train_action.isEnabled()  # the menu entry and shortcut too
    with qtbot.waitSignal(window.trainingFinished, timeout=60_000) as done:
        qtbot.mouseClick(button(window, "stopButton"), QtCore.Qt.LeftButton)
    assert done.args[0].status == "cancelled"
    assert button(window, "trainButton").isEnabled()
    assert not button(window, "stopButton").isEnabled()


def test_run_menu_holds_the_same_actions(window: MainWindow) -> None:
    menu = window.findChild(QtWidgets.QMenu, "runMenu")
    assert menu is not None and menu.menuAction() in window.menuBar().actions()
    actions = [a for a in menu.actions() if not a.isSeparator()]
    assert actions == [window.train_action, window.stop_action, window.sample_action]
    for action, name in zip(actions, RUN_BUTTONS, strict=True):
        assert window.run_toolbar.widgetForAction(action) is button(window, name)


def test_shortcuts_train_and_stop(qtbot, window: MainWindow) -> None:
    fast(window, **{"train.steps": 100_000})
    qtbot.waitExposed(window)
    window.activateWindow()
    window.tab_widget.setFocus()
    qtbot.keyClick(window, QtCore.Qt.Key_T, QtCore.Qt.ControlModifier)
    qtbot.waitUntil(lambda: window.task is not None)
    assert window.task.name == "training"
    with qtbot.waitSignal(window.trainingFinished, timeout=60_000) as done:
        qtbot.keyClick(window, QtCore.Qt.Key_Escape)
    assert done.args[0].status == "cancelled"


def test_sample_shortcut_and_the_disabled_shortcut(qtbot, window: MainWindow) -> None:
    fast(window, **{"model.kind": "analytic"})
    qtbot.waitExposed(window)
    window.activateWindow()
    # while a field is invalid Ctrl+R does nothing, as the greyed button
    window.valid = False
    window._update_buttons()
    qtbot.keyClick(window, QtCore.Qt.Key_R, QtCore.Qt.ControlModifier)
    assert window.task is None
    window.validate()
    assert button(window, "sampleButton").isEnabled()
    with qtbot.waitSignal(window.samplingFinished, timeout=120_000) as done:
        qtbot.keyClick(window, QtCore.Qt.Key_R, QtCore.Qt.ControlModifier)
    assert done.args[0] is not None and done.args[0].exists()


def test_an_invalid_field_disables_every_way_to_train(qtbot, window: MainWindow) -> None:
    lr = window.training_panel.forms["train"].fields["lr"]
    lr.widget.setText("-1")
    lr.edited.emit()
    qtbot.waitUntil(lambda: not button(window, "trainButton").isEnabled())
    assert not window.train_action.isEnabled() and not window.sample_action.isEnabled()
    window.train_action.trigger()  # even if something triggers it, nothing starts
    assert window.task is None


def test_no_two_actions_share_a_key(window: MainWindow) -> None:
    keys: dict[str, str] = {}
    for action in window.findChildren(QtGui.QAction):
        for seq in action.shortcuts():
            text = seq.toString()
            assert text not in keys, f"{text}: {keys.get(text)} and {action.text()}"
            keys[text] = action.text()
    assert {"Ctrl+T", "Ctrl+R", "Esc"} <= set(keys)


def test_shortcuts_dialog_lists_every_action_with_a_shortcut(window: MainWindow) -> None:
    dialog = window.findChild(QtGui.QAction, "shortcutsAction")
    dialog.trigger()
    shown = window.findChild(QtWidgets.QDialog, "shortcutsDialog")
    table = shown.findChild(QtWidgets.QTableWidget, "shortcutsTable")
    rows = {(table.item(i, 1).text(), table.item(i, 2).text()) for i in range(table.rowCount())}
    native = QtGui.QKeySequence.NativeText
    expected = set()
    for action in window.findChildren(QtGui.QAction):
        if action.shortcuts():
            keys = ", ".join(s.toString(native) for s in action.shortcuts())
            expected.add((action.text().replace("&", ""), keys))
    assert expected and rows == expected
    assert ("Train", "Ctrl+T") in rows and ("Stop", "Ctrl+., Esc") in rows
    assert ("Save experiment", QtGui.QKeySequence(QtGui.QKeySequence.Save).toString()) in rows
    shown.close()


def test_about_names_the_versions_and_the_device(window: MainWindow) -> None:
    import h5py
    import numpy
    import torch

    window.findChild(QtGui.QAction, "aboutAction").trigger()
    box = window.findChild(QtWidgets.QMessageBox, "aboutBox")
    text = box.informativeText()
    for version in (__version__, torch.__version__, numpy.__version__, h5py.__version__):
        assert version in text, version
    assert QtCore.qVersion() in text
    assert "device: CPU only" in text or "device: CUDA" in text
    assert f"train.device = {window.config.train.device}" in text
    box.close()


def test_docs_box_points_at_the_readme(window: MainWindow) -> None:
    window.findChild(QtGui.QAction, "docsAction").trigger()
    box = window.findChild(QtWidgets.QMessageBox, "docsBox")
    assert str(ROOT / "README.md") in box.text() and str(ROOT / "docs") in box.text()
    assert "sde-workbench --help" in box.text()
    box.close()


def test_title_names_the_experiment_and_marks_unsaved_edits(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    assert window.windowTitle().startswith("untitled[*]") and not window.isWindowModified()
    steps = window.training_panel.forms["train"].fields["steps"]
    steps.widget.setValue(1234)
    assert window.isWindowModified()  # at once, before the pause in typing
    qtbot.waitUntil(lambda: window.config.train.steps == 1234)
    assert window.isWindowModified()
    path = tmp_path / "mine.toml"
    assert window.save_experiment(path)
    assert window.windowTitle() == "mine.toml[*] — SDE Workbench"
    assert not window.isWindowModified()
    # an edit put back is no longer an unsaved change
    steps.widget.setValue(99)
    qtbot.waitUntil(lambda: window.config.train.steps == 99)
    assert window.isWindowModified()
    steps.widget.setValue(1234)
    qtbot.waitUntil(lambda: window.config.train.steps == 1234)
    assert not window.isWindowModified()
    # an edit in another panel, then New clears it and says untitled
    window.data_panel.forms["data"].fields["n"].widget.setValue(5000)
    qtbot.waitUntil(lambda: window.config.data.n == 5000)
    assert window.isWindowModified()
    window.new_experiment()
    assert window.windowTitle().startswith("untitled[*]") and not window.isWindowModified()
    assert window.open_path(path)
    qtbot.wait(300)  # past the edit pause: loading the panels is no edit
    assert window.windowTitle().startswith("mine.toml[*]") and not window.isWindowModified()


def _drop(window: MainWindow, *paths: Path) -> QtGui.QDropEvent:
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QtCore.QPointF(window.rect().center())
    enter = QtGui.QDragEnterEvent(
        pos.toPoint(), QtCore.Qt.CopyAction, mime, QtCore.Qt.LeftButton, QtCore.Qt.NoModifier
    )
    window.dragEnterEvent(enter)
    drop = QtGui.QDropEvent(
        pos, QtCore.Qt.CopyAction, mime, QtCore.Qt.LeftButton, QtCore.Qt.NoModifier
    )
    if enter.isAccepted():
        window.dropEvent(drop)
    return drop


def test_dropping_a_toml_opens_it(qtbot, window: MainWindow, tmp_path: Path) -> None:
    config = window.config.with_overrides({"sde.kind": "ve", "train.steps": 321})
    path = tmp_path / "Dropped.TOML"  # the suffix in any case
    save_config(config, path)
    assert _drop(window, path).isAccepted()
    assert window.config.sde.kind == "ve" and window.config.train.steps == 321
    assert window.windowTitle().startswith("Dropped.TOML[*]")
    assert not window.isWindowModified()


def test_dropping_a_run_folder_opens_it(qtbot, window: MainWindow) -> None:
    fast(window, **{"train.steps": 30, "data.name": "moons"})
    with qtbot.waitSignal(window.trainingFinished, timeout=120_000):
        window.train_action.trigger()
    run = window.run_dir
    window.new_experiment()
    assert window.config.data.name == "8gaussians"
    assert _drop(window, run).isAccepted()
    assert window.config.data.name == "moons" and window.run_dir == run
    assert window.windowTitle().startswith(f"{run.name}[*]") and not window.isWindowModified()


def test_a_drop_over_unsaved_edits_asks_and_other_files_are_refused(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    path = tmp_path / "other.toml"
    save_config(window.config.with_overrides({"sde.kind": "ve"}), path)
    fast(window)
    assert window.isWindowModified()
    questions: list[str] = []
    window.confirm = lambda q: questions.append(q) or False
    _drop(window, path)
    assert questions and "unsaved" in questions[0] and window.config.sde.kind == "vp"
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert not _drop(window, text).isAccepted()
    assert not window.errors


def test_recent_files_forget_deleted_entries(qtbot, window: MainWindow, tmp_path: Path) -> None:
    kept, gone = tmp_path / "kept.toml", tmp_path / "gone.toml"
    for path in (gone, kept):
        save_config(window.config, path)
        assert window.open_path(path)
    assert window.recent_files()[:2] == [str(kept.resolve()), str(gone.resolve())]
    gone.unlink()
    window.recent_menu.aboutToShow.emit()  # what showing the menu does
    assert window.recent_files() == [str(kept.resolve())]
    assert [a.text() for a in window.recent_menu.actions()] == [str(kept.resolve())]


@pytest.mark.parametrize("argv", [[], ["gui"]])
@pytest.mark.parametrize("platform", [None, "xcb"])
def test_no_display_is_one_line_and_exit_1(
    argv: list[str], platform: str | None, tmp_path: Path
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env["SDE_WORKBENCH_HOME"] = str(tmp_path)
    if platform is not None:
        env["QT_QPA_PLATFORM"] = platform
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("sde-workbench: error: no display:")
    assert "QT_QPA_PLATFORM=offscreen" in lines[0]


def test_which_environments_have_no_display() -> None:
    from workbench.gui.app import no_display_reason

    linux = "linux"
    assert no_display_reason({}, linux) is not None
    assert no_display_reason({"QT_QPA_PLATFORM": "wayland-egl"}, linux) is not None
    assert no_display_reason({"QT_QPA_PLATFORM": "xcb;wayland"}, linux) is not None
    assert no_display_reason({"DISPLAY": ":0"}, linux) is None
    assert no_display_reason({"WAYLAND_DISPLAY": "wayland-0"}, linux) is None
    assert no_display_reason({"QT_QPA_PLATFORM": "offscreen"}, linux) is None
    assert no_display_reason({"QT_QPA_PLATFORM": "vnc:size=800x600"}, linux) is None
    assert no_display_reason({}, "darwin") is None and no_display_reason({}, "win32") is None


def test_screenshot_of_the_main_window(qtbot, window: MainWindow, tmp_path: Path) -> None:
    """What docs/screenshots/main_window.png shows: the toolbar above every panel."""
    window.resize(1400, 900)
    qtbot.waitExposed(window)
    window.toolbox.setCurrentIndex(3)
    out = tmp_path / "main_window.png"
    assert window.grab().save(str(out))
    image = QtGui.QImage(str(out))
    assert image.width() >= 1400 and image.height() >= 900
