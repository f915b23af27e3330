"""Starting the desktop app: the QApplication, its identity and icon, and the main window."""

from __future__ import annotations

import sys

from PySide6 import QtWidgets

from workbench import __version__

__all__ = ["create_app", "run_gui"]


def create_app(argv: list[str] | None = None) -> QtWidgets.QApplication:
    """The process's QApplication (created once), named so QSettings has a home."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("SDE Workbench")
    app.setOrganizationName("sde-workbench")
    app.setApplicationVersion(__version__)
    from workbench.gui.main_window import app_icon
    from workbench.resources import APP_ID

    app.setDesktopFileName(APP_ID)  # the .desktop entry's name: the shell groups windows by it

    app.setWindowIcon(app_icon())
    return app  # type: ignore[return-value]


def run_gui(path: str | None = None, follow: bool = False) -> int:
    """Open the main window (the last session's experiment, or the default) and run.

    With ``follow`` the run folder ``path`` is followed while another process writes it.
    """
    from workbench.gui.main_window import MainWindow

    app = create_app()
    window = MainWindow(restore=True)
    if path is not None and follow:
        window.follow_run(path)
    elif path is not None:
        window.open_path(path)
    window.show()
    return int(app.exec())
