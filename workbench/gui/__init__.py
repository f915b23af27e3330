"""The desktop app (PySide6 + pyqtgraph). ``MainWindow()`` builds the window with the default
experiment; ``run_gui(path)`` starts the application."""

from workbench.gui.app import create_app, run_gui
from workbench.gui.main_window import MainWindow

__all__ = ["MainWindow", "create_app", "run_gui"]
