"""Starting the desktop app: the QApplication, its identity and icon, and the main window."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import cast

from PySide6 import QtCore, QtGui, QtWidgets

from workbench import __version__
from workbench.errors import WorkbenchError

__all__ = ["app_icon", "close_windows", "create_app", "no_display_reason", "run_gui"]

# Qt's platform plugins that draw on a display server; the others (offscreen, minimal, vnc,
# eglfs, linuxfb, ...) need none
_DISPLAY_PLUGINS = ("xcb", "wayland")


def no_display_reason(
    environ: Mapping[str, str] | None = None, platform: str | None = None
) -> str | None:
    """Why Qt would find no display to open a window on, or None where it can try.

    On X11/Wayland systems Qt, finding neither ``DISPLAY`` nor ``WAYLAND_DISPLAY``, aborts the
    process (SIGABRT, exit 134) when the QApplication is made, after a screenful of plugin
    advice; this answers first, from the environment alone. macOS and Windows always have
    their own platform plugin, and a ``QT_QPA_PLATFORM`` naming a plugin that needs no display
    server (offscreen, vnc, ...) is the user's explicit choice.
    """
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform in ("darwin", "win32", "cygwin"):
        return None
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    # "xcb;wayland" and "wayland-egl" are lists and variants of the display-server plugins
    chosen = environ.get("QT_QPA_PLATFORM", "").strip()
    plugins = [p.split(":")[0].strip() for p in chosen.split(";") if p.strip()]
    if plugins and not any(p.startswith(_DISPLAY_PLUGINS) for p in plugins):
        return None
    return (
        "no display: set DISPLAY or WAYLAND_DISPLAY, or use QT_QPA_PLATFORM=offscreen; "
        "the command-line subcommands work without one"
    )


def app_icon() -> QtGui.QIcon:
    """The app icon in every hicolor size, from the PNGs shipped in :mod:`workbench.resources`.

    The bytes are read through importlib.resources and handed to Qt as data, because QIcon
    only opens real files and the package may be loaded from a zip or a frozen archive. An
    empty icon (a broken install) leaves the window with the platform's default icon.
    """
    from workbench import resources

    icon = QtGui.QIcon()
    for size in resources.ICON_SIZES:
        try:
            data = resources.icon_png(size).read_bytes()
        except OSError:
            continue
        pixmap = QtGui.QPixmap()
        if pixmap.loadFromData(data, "PNG"):
            icon.addPixmap(pixmap)
    return icon


def close_windows(app: QtCore.QCoreApplication) -> None:
    """Close every top-level window and delete what that leaves for deletion, now, while the
    application and its event loop still exist.

    Without it the interpreter's shutdown frees the last Qt wrappers (an inspector's lazily
    made views, the windows' deferred deletions) after parts of Qt they point into are gone:
    the process ended with a segmentation fault after it had done its work.
    """
    import gc

    QtWidgets.QApplication.closeAllWindows()
    for _ in range(3):
        app.processEvents()
        QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)
    gc.collect()


def create_app(argv: list[str] | None = None) -> QtWidgets.QApplication:
    """The process's QApplication (created once), named so QSettings has a home."""
    # the one instance is a QApplication: the GUI never makes a bare QCoreApplication
    app = cast(QtWidgets.QApplication | None, QtWidgets.QApplication.instance())
    if app is None:
        app = QtWidgets.QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("SDE Workbench")
    app.setOrganizationName("sde-workbench")
    app.setApplicationVersion(__version__)
    from workbench.resources import APP_ID

    app.setDesktopFileName(APP_ID)  # the .desktop entry's name: the shell groups windows by it

    app.setWindowIcon(app_icon())
    return app


def run_gui(path: str | None = None, follow: bool = False) -> int:
    """Open the main window (the last session's experiment, or the default) and run.

    With ``follow`` the run folder ``path`` is followed while another process writes it.
    """
    from workbench.gui.main_window import MainWindow

    reason = no_display_reason()
    if reason is not None and QtWidgets.QApplication.instance() is None:
        raise WorkbenchError(reason)  # the CLI prints it as one line and exits 1
    app = create_app()
    window = MainWindow(restore=True)
    from workbench.gui.collector import install_gui_collector

    # every cyclic collection on this thread, and the start-up heap frozen: see collector.py
    install_gui_collector(freeze=True)
    if path is not None and follow:
        window.follow_run(path)
    elif path is not None:
        window.open_path(path)
    window.show()
    status = int(app.exec())
    close_windows(app)
    return status
