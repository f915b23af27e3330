"""The trajectory inspector (being split into one module per view)."""

from workbench.gui.inspector.file_view import *  # noqa: F403
from workbench.gui.inspector.file_view import INCOMPLETE_TEXT, FPKView  # noqa: F401
