"""The app's desktop identity, shipped inside the package: the freedesktop icons (hicolor
theme), the ``.desktop`` entry and the AppStream metainfo.

They live here, not beside the checkout, so that every way of installing the app (a wheel, an
editable checkout, a frozen bundle) carries them, and they are read through
:mod:`importlib.resources`, which finds them wherever the package itself was loaded from
(a folder, a zip, PyInstaller's archive) without assuming a file layout. Plain standard library:
the command line can reach these files without loading Qt.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

__all__ = ["APP_ID", "ICON_SIZES", "desktop_file", "icon_png", "icon_svg", "metainfo_file"]

# reverse-DNS id: the .desktop and metainfo file names, the themed icon name, and what the
# running app announces (QGuiApplication.setDesktopFileName) so the shell matches its windows
APP_ID = "io.github.sde_workbench.SDEWorkbench"
# the freedesktop hicolor sizes rendered by packaging/make_icons.py from the scalable SVG
ICON_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def _here() -> Traversable:
    return files(__name__)


def desktop_file() -> Traversable:
    """The ``.desktop`` entry (install it in ``share/applications``)."""
    return _here().joinpath(f"{APP_ID}.desktop")


def metainfo_file() -> Traversable:
    """The AppStream metainfo (install it in ``share/metainfo``)."""
    return _here().joinpath(f"{APP_ID}.metainfo.xml")


def icon_png(size: int) -> Traversable:
    """The ``size`` x ``size`` PNG of the app icon; ``size`` is one of :data:`ICON_SIZES`."""
    if size not in ICON_SIZES:
        raise ValueError(f"no {size}x{size} icon; the sizes are {ICON_SIZES}")
    return _here().joinpath("icons", "hicolor", f"{size}x{size}", "apps", f"{APP_ID}.png")


def icon_svg() -> Traversable:
    """The scalable app icon: the source every PNG size is rendered from."""
    return _here().joinpath("icons", "hicolor", "scalable", "apps", f"{APP_ID}.svg")
