"""The desktop integration files and the freezing recipe (packaging/, resources/icons/)."""

from __future__ import annotations

import configparser
import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from workbench import __version__

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
APP_ID = "io.github.sde_workbench.SDEWorkbench"
DESKTOP = PACKAGING / f"{APP_ID}.desktop"
METAINFO = PACKAGING / f"{APP_ID}.metainfo.xml"
HICOLOR = ROOT / "resources" / "icons" / "hicolor"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def desktop_entry() -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(DESKTOP, encoding="utf-8")
    return dict(parser["Desktop Entry"])


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_desktop_entry_has_the_required_keys() -> None:
    entry = desktop_entry()
    assert entry["Type"] == "Application"
    assert entry["Name"] == "SDE Workbench"
    assert entry["Icon"] == APP_ID  # a themed icon name, found in resources/icons/hicolor
    assert entry["Exec"].split()[0] == "sde-workbench"
    assert entry["Terminal"] == "false"
    assert entry["Categories"].endswith(";") and "Science" in entry["Categories"].split(";")
    # the running app announces the same id, so the shell matches its windows to the entry
    app = (ROOT / "workbench" / "gui" / "app.py").read_text()
    assert f'setDesktopFileName("{APP_ID}")' in app


def test_metainfo_is_well_formed_and_complete() -> None:
    root = ET.parse(METAINFO).getroot()
    assert root.tag == "component" and root.get("type") == "desktop-application"
    assert root.findtext("id") == APP_ID
    assert root.findtext("metadata_license") == "CC0-1.0"
    assert root.findtext("project_license") == "MIT"  # as pyproject.toml says
    assert root.findtext("name") and root.findtext("summary")
    assert root.find("description/p") is not None
    launchable = root.find("launchable")
    assert launchable is not None and launchable.get("type") == "desktop-id"
    assert launchable.text == DESKTOP.name
    shots = root.findall("screenshots/screenshot")
    assert shots and sum(s.get("type") == "default" for s in shots) == 1
    for shot in shots:
        image = shot.find("image")
        assert shot.findtext("caption")
        assert image is not None and image.text.startswith("https://")
        local = ROOT / "docs" / "screenshots" / Path(image.text).name
        assert local.is_file(), f"{image.text} names no file in docs/screenshots"
        width, height = png_size(local)
        assert (image.get("width"), image.get("height")) == (str(width), str(height))
    versions = [r.get("version") for r in root.findall("releases/release")]
    assert __version__ in versions
    assert all(r.get("date") for r in root.findall("releases/release"))
    assert root.findtext("provides/binary") == "sde-workbench"


def test_icons_in_every_freedesktop_size() -> None:
    for size in SIZES:
        png = HICOLOR / f"{size}x{size}" / "apps" / f"{APP_ID}.png"
        assert png_size(png) == (size, size)
    svg = ET.parse(HICOLOR / "scalable" / "apps" / f"{APP_ID}.svg").getroot()
    assert svg.tag.endswith("svg")


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="no desktop-file-utils")
def test_desktop_file_validate() -> None:
    out = subprocess.run(["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True)
    assert out.returncode == 0 and "error" not in out.stdout.lower(), out.stdout


@pytest.mark.skipif(shutil.which("appstreamcli") is None, reason="no appstreamcli")
def test_appstreamcli_validate() -> None:
    out = subprocess.run(
        ["appstreamcli", "validate", "--no-net", str(METAINFO)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_freezing_recipe() -> None:
    spec = (PACKAGING / "sde-workbench.spec").read_text()
    for module in ("QtQml", "QtQuick", "QtWebEngineCore"):
        assert f"{module} " in spec or f'{module}"' in spec
    assert '"/translations/"' in spec
    assert "frozen_main.py" in spec and "resources/icons" in spec
    build = PACKAGING / "build.sh"
    assert os.access(build, os.X_OK)
    assert subprocess.run(["bash", "-n", str(build)]).returncode == 0
    text = build.read_text()
    assert "TORCH_VARIANT" in text and "torch==" in text and "venv" in text


def test_self_test_entry_runs_unfrozen(tmp_path: Path) -> None:
    """The flag the frozen check uses, run from the source tree: the window opens with the
    default experiment and trains a few steps."""
    # one OpenMP thread: two crawl on a busy 2-core machine (see tests/gui/test_follow.py)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path), OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, str(PACKAGING / "frozen_main.py"), "--self-test", "3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert '"ok": true' in out.stdout and '"steps": 3' in out.stdout


@pytest.mark.skipif(
    not (ROOT / "dist" / "sde-workbench" / "sde-workbench").is_file(),
    reason="no frozen bundle: build it with bash packaging/build.sh",
)
def test_frozen_bundle() -> None:
    out = subprocess.run(
        [sys.executable, str(PACKAGING / "check_frozen.py"), "--steps", "5"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
