"""The desktop integration files (workbench/resources), the wheel that ships them, the freezing
recipe (packaging/) and ``sde-workbench --version``."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from workbench import __version__, resources
from workbench.resources import APP_ID, ICON_SIZES

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
RESOURCES = ROOT / "workbench" / "resources"
DESKTOP = RESOURCES / f"{APP_ID}.desktop"
METAINFO = RESOURCES / f"{APP_ID}.metainfo.xml"
HICOLOR = RESOURCES / "icons" / "hicolor"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)  # the freedesktop sizes, stated independently


def desktop_entry(text: str | None = None) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(text if text is not None else resources.desktop_file().read_text("utf-8"))
    return dict(parser["Desktop Entry"])


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_desktop_entry_has_the_required_keys() -> None:
    entry = desktop_entry()
    assert entry["Type"] == "Application"
    assert entry["Name"] == "SDE Workbench"
    assert entry["Icon"] == APP_ID  # a themed icon name, found in icons/hicolor
    assert entry["Exec"].split()[0] == "sde-workbench"
    assert entry["Terminal"] == "false"
    assert entry["Categories"].endswith(";") and "Science" in entry["Categories"].split(";")
    # the running app announces the same id (test_wheel_install_has_its_window_icon checks
    # it), so the shell matches its windows to the entry
    assert resources.desktop_file().name == DESKTOP.name == f"{APP_ID}.desktop"


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
    assert ICON_SIZES == SIZES
    for size in SIZES:
        png = HICOLOR / f"{size}x{size}" / "apps" / f"{APP_ID}.png"
        assert png_size(png) == (size, size)
        assert resources.icon_png(size).read_bytes() == png.read_bytes()
    svg = ET.parse(HICOLOR / "scalable" / "apps" / f"{APP_ID}.svg").getroot()
    assert svg.tag.endswith("svg")
    assert (
        resources.icon_svg().read_bytes()
        == (HICOLOR / "scalable" / "apps" / f"{APP_ID}.svg").read_bytes()
    )
    with pytest.raises(ValueError, match="no 20x20 icon"):
        resources.icon_png(20)


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
    # the package data (workbench/resources) goes where importlib.resources looks for it
    assert "frozen_main.py" in spec and 'datas=collect_data_files("workbench")' in spec
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


# ---------------------------------------------------------------------------------------------
# the wheel: the desktop files are package data, so an install from it has them
# ---------------------------------------------------------------------------------------------
def _resource_names() -> list[str]:
    names = [f"workbench/resources/{APP_ID}.desktop", f"workbench/resources/{APP_ID}.metainfo.xml"]
    names += [f"workbench/resources/icons/hicolor/{n}x{n}/apps/{APP_ID}.png" for n in SIZES]
    names.append(f"workbench/resources/icons/hicolor/scalable/apps/{APP_ID}.svg")
    return names


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built, as a user's pip would, from a copy of the sources (so the build writes
    nothing into the checkout); no index is needed."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "workbench", src / "workbench", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (built,) = out.glob("sde_workbench-*.whl")
    return built


def test_wheel_ships_the_desktop_files_and_license(wheel: Path) -> None:
    assert wheel.name == f"sde_workbench-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for name in _resource_names():
            assert name in names, f"{name} is not in the wheel"
            assert z.read(name) == (ROOT / name).read_bytes(), name
        dist_info = f"sde_workbench-{__version__}.dist-info"
        assert z.read(f"{dist_info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        metadata = z.read(f"{dist_info}/METADATA").decode()
    # only the package and its metadata: no tests, packaging scripts or a stray top level
    assert {n.split("/")[0] for n in names} == {"workbench", dist_info}
    headers = metadata.split("\n\n")[0].splitlines()
    assert "License-Expression: MIT" in headers and "License-File: LICENSE" in headers
    assert not any(h.startswith("Classifier: License ::") for h in headers)  # PEP 639
    for minor in (11, 12, 13):
        assert f"Classifier: Programming Language :: Python :: 3.{minor}" in headers
    assert "Requires-Python: >=3.11" in headers
    urls = {h.split(", ")[0] for h in headers if h.startswith("Project-URL: ")}
    assert urls == {"Project-URL: Homepage", "Project-URL: Documentation", "Project-URL: Issues"}
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License\n")
    assert "Copyright (c) 2026 SDE Workbench developers" in license_text


def test_wheel_install_has_its_window_icon(wheel: Path, tmp_path: Path) -> None:
    """The wheel unpacked as site-packages, with the checkout nowhere on the path: the app finds
    its icon and desktop entry in the installed package alone."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    code = """
import json, sys
import workbench
from workbench.gui.app import create_app
from workbench.resources import desktop_file
app = create_app([sys.argv[0]])
icon = app.windowIcon()
print(json.dumps({
    "file": workbench.__file__,
    "sizes": sorted(s.width() for s in icon.availableSizes()),
    "pixmap": not icon.pixmap(48).isNull(),
    "desktop_name": app.desktopFileName(),
    "entry": desktop_file().read_text("utf-8"),
}))
"""
    env = dict(os.environ, PYTHONPATH=str(site), QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path))
    env.update(OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(report["file"]).is_relative_to(site), report["file"]
    assert report["sizes"] == list(SIZES) and report["pixmap"]
    assert report["desktop_name"] == APP_ID == desktop_entry(report["entry"])["Icon"]


# ---------------------------------------------------------------------------------------------
# sde-workbench --version
# ---------------------------------------------------------------------------------------------
def _version_lines(out: str) -> dict[str, str]:
    lines = out.strip().splitlines()
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in lines[1:]}


def test_version_names_every_library() -> None:
    import h5py
    import numpy
    import PySide6
    import torch
    from PySide6 import QtCore

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0] == f"sde-workbench {__version__}"
    got = _version_lines(proc.stdout)
    assert set(got) == {"Python", "torch", "PySide6", "numpy", "h5py", "CUDA"}
    assert got["Python"] == ".".join(map(str, sys.version_info[:3]))
    assert got["torch"] == torch.__version__
    assert got["PySide6"] == f"{PySide6.__version__} (Qt {QtCore.qVersion()})"
    assert got["numpy"] == numpy.__version__
    assert got["h5py"] == f"{h5py.__version__} (HDF5 {h5py.version.hdf5_version})"
    if torch.version.cuda is None:
        assert got["CUDA"].startswith("none")
    else:
        assert got["CUDA"].startswith(torch.version.cuda)
        assert ("no device available" in got["CUDA"]) == (not torch.cuda.is_available())


@pytest.mark.parametrize("missing", [(), ("PySide6",), ("PySide6", "h5py", "torch")])
def test_version_without_a_library(missing: tuple[str, ...]) -> None:
    """A missing library is a line that says so, not a traceback; and reading Qt's version
    creates no application (it must answer with no display)."""
    code = f"""
import sys
for name in {missing!r}:
    sys.modules[name] = None  # the import fails as if it were not installed
from workbench.cli import main
status = main(["--version"])
if "PySide6" not in {missing!r}:
    from PySide6 import QtCore
    assert QtCore.QCoreApplication.instance() is None, "--version created a QApplication"
    assert "PySide6.QtWidgets" not in sys.modules, "--version loaded QtWidgets"
sys.exit(status)
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("QT_QPA_PLATFORM", None)
    env.pop("DISPLAY", None)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    got = _version_lines(proc.stdout)
    for name in missing:
        assert got[name].startswith("not installed"), got
    if "PySide6" in missing:
        assert "the GUI needs it" in got["PySide6"]
    if "torch" in missing:
        assert got["CUDA"] == "unknown (no torch)"
    assert got["numpy"][0].isdigit()


def test_readme_gpu_recipe_is_what_bootstrap_reads() -> None:
    readme = (ROOT / "README.md").read_text()
    bootstrap = (PACKAGING / "bootstrap.sh").read_text()
    assert "### GPU" in readme
    assert (
        "TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 bash packaging/bootstrap.sh"
        in readme
    )
    assert 'pip install --index-url "$TORCH_INDEX_URL" torch' in bootstrap
    assert subprocess.run(["bash", "-n", str(PACKAGING / "bootstrap.sh")]).returncode == 0
