"""The trajectory inspector: real files from the sampler and the writer, foreign and broken files,
refresh of a file being written, and export through the dialog."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from workbench.bench import benchmark_open_and_slider
from workbench.config import parse_config
from workbench.gui.inspector import INCOMPLETE_TEXT, FileView, InspectorWindow
from workbench.gui.inspector.paths import PATH_PARTICLES
from workbench.io.export import export_samples
from workbench.io.trajectories import TrajectoryWriter
from workbench.jobs.sample import load_model, sample_to_file

CONFIG = """
[data]
name = "8gaussians"
n = 2000
[model]
kind = "analytic"
[sample]
n = 400
steps = 40
record_every = 4
"""


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real file written by the sampler with the analytic score."""
    config, model, dataset = load_model(parse_config(CONFIG, source="test"))
    out = tmp_path_factory.mktemp("sampled") / "traj.h5"
    sample_to_file(config, model, out, device="cpu", dataset=dataset)
    return out


@pytest.fixture
def traj(sampled: Path, tmp_path: Path) -> Path:
    path = tmp_path / "traj.h5"
    shutil.copy(sampled, path)
    return path


def writer(path: Path, n: int = 50, shape: tuple[int, ...] = (2,)) -> TrajectoryWriter:
    return TrajectoryWriter(
        path, n_samples=n, sample_shape=shape, config_toml='[data]\nname = "moons"\n', sampler="em"
    )


def test_open_real_file_tree_summary_config(qtbot, inspector: InspectorWindow, traj: Path) -> None:
    before = traj.read_bytes()
    with QtCore.QSignalBlocker(inspector):
        assert inspector.open(traj)
    view = inspector.current()
    assert isinstance(view, FileView) and view.is_trajectory
    items = view.tree_paths()
    for name in ("/config", "/trajectories", "/trajectories/x", "/trajectories/t", "/samples"):
        assert name in items, name
    assert "/trajectories/step" in items
    assert items["/trajectories/x"].text(1) == f"{view.tf.n_saved} x 400 x 2"
    assert items["/samples"].text(1) == "400 x 2"
    assert items["/trajectories/x"].text(2) == "float32"
    assert "gzip" in items["/trajectories/x"].text(4)
    assert items["/trajectories/x"].text(3) != "contiguous"
    view.tree.setCurrentItem(items["/trajectories"])
    attrs = view.attributes_shown()
    assert attrs["sampler"] == "em"
    fields = view.summary_view.fields
    assert fields["sampler"].text() == "em"
    assert fields["n_samples"].text() == "400"
    assert fields["complete"].text() == "yes"
    assert "8gaussians" in view.summary_view.config.toPlainText()
    assert view.summary_view.config.isReadOnly()
    assert not view.incomplete_banner.isVisible()
    # lazy: nothing beyond the summary drawn yet
    assert view.samples_view.draws == 0 and view.stats_view.draws == 0
    for title in ("Paths", "Statistics"):
        view.show_view(title)
    assert view.paths_view.n_paths == PATH_PARTICLES
    qtbot.waitUntil(view.stats_view.stats_ready)  # computed in a worker
    assert len(view.stats_view.stats["t"]) == view.tf.n_saved
    inspector.close()
    assert traj.read_bytes() == before  # opening never modifies the file


def test_slider_changes_the_row(inspector: InspectorWindow, traj: Path) -> None:
    assert inspector.open(traj)
    view = inspector.current()
    view.show_view("Samples")
    slider = inspector.findChild(QtWidgets.QSlider, "inspectorTimeSlider")
    assert slider is view.slider and slider.maximum() == view.tf.n_saved - 1
    slider.setValue(0)
    first = view.samples_view.hist.copy()
    assert view.samples_view.row_shown == 0
    slider.setValue(slider.maximum())
    assert view.samples_view.row_shown == slider.maximum()
    last = view.samples_view.hist
    assert first.sum() > 0 and last.sum() > 0
    assert not np.array_equal(first, last)
    assert f"row {slider.maximum() + 1}/" in view.time_label.text()


def test_play_walks_to_the_end(qtbot, inspector: InspectorWindow, traj: Path) -> None:
    assert inspector.open(traj)
    view = inspector.current()
    view.show_view("Samples")
    view.play_button.setChecked(True)
    qtbot.waitUntil(lambda: not view.play_button.isChecked(), timeout=10000)
    assert view.slider.value() == view.slider.maximum()


def test_foreign_file_is_a_tree(inspector: InspectorWindow, tmp_path: Path) -> None:
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f.attrs["creator"] = "somebody else"
        g = f.create_group("measurements")
        d = g.create_dataset(
            "signal", data=np.arange(1000.0).reshape(100, 10), chunks=(10, 10), compression="gzip"
        )
        d.attrs["unit"] = "volt"
    assert inspector.open(path)
    view = inspector.current()
    assert not view.is_trajectory and view.view_list == []
    assert view.controls.isHidden()
    items = view.tree_paths()
    assert items["/measurements/signal"].text(1) == "100 x 10"
    assert items["/measurements/signal"].text(3) == "10 x 10"
    view.tree.setCurrentItem(items["/measurements/signal"])
    assert view.attributes_shown() == {"unit": "volt"}
    view.tree.setCurrentItem(items["/"])
    assert view.attributes_shown()["creator"] == "somebody else"


@pytest.mark.parametrize("kind", ["truncated", "not_hdf5"])
def test_broken_files_give_a_banner(
    qtbot, inspector: InspectorWindow, traj: Path, tmp_path: Path, kind: str
) -> None:
    bad = tmp_path / f"{kind}.h5"
    if kind == "truncated":
        data = traj.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    else:
        bad.write_text("this is not an HDF5 file\n")
    with qtbot.waitSignal(inspector.failed) as blocker:
        assert inspector.open(bad) is False
    message = blocker.args[0]
    assert str(bad) in message and "\n" not in message
    assert ("truncated" in message) if kind == "truncated" else ("not an HDF5 file" in message)
    assert inspector.banner.isVisible() and inspector.banner.text() == message
    assert inspector.tabs.count() == 0
    # the window still works: a good file opens afterwards and the banner goes
    assert inspector.open(traj)
    assert not inspector.banner.isVisible()


def test_incomplete_file_shows_yellow_banner(inspector: InspectorWindow, tmp_path: Path) -> None:
    path = tmp_path / "aborted.h5"
    w = writer(path)
    rng = np.random.default_rng(0)
    for k in range(3):
        w.append(k, 1.0 - 0.1 * k, rng.standard_normal((50, 2)))
    w.abort()
    assert inspector.open(path)
    view = inspector.current()
    assert view.incomplete_banner.isVisible()
    assert view.incomplete_banner.text() == INCOMPLETE_TEXT
    assert view.summary_view.fields["rows"].text() == "3"
    assert view.summary_view.fields["complete"].text().startswith("no")


def test_refresh_shows_new_rows(qtbot, inspector: InspectorWindow, tmp_path: Path) -> None:
    path = tmp_path / "live.h5"
    w = writer(path)
    rng = np.random.default_rng(1)
    try:
        for k in range(2):
            w.append(k, 1.0 - 0.1 * k, rng.standard_normal((50, 2)))
        w.flush()
        assert inspector.open(path)
        view = inspector.current()
        assert view.tf.n_saved == 2 and view.slider.maximum() == 1
        assert view.incomplete_banner.isVisible()
        for k in range(2, 5):
            w.append(k, 1.0 - 0.1 * k, rng.standard_normal((50, 2)))
        w.flush()
        with qtbot.waitSignal(view.refreshed, timeout=60_000):  # re-opened in a worker
            qtbot.keyClick(inspector, QtCore.Qt.Key_F5)
        assert view.tf.n_saved == 5 and view.slider.maximum() == 4
        assert view.summary_view.fields["rows"].text() == "5"
    finally:
        w.close(rng.standard_normal((50, 2)), nfe=5)
    with qtbot.waitSignal(view.refreshed, timeout=60_000):
        inspector.refresh()
    assert not view.incomplete_banner.isVisible()


def test_export_through_the_dialog(inspector: InspectorWindow, traj: Path, tmp_path: Path) -> None:
    assert inspector.open(traj)
    view = inspector.current()
    dlg = view.open_export_dialog()
    assert dlg.objectName() == "exportDialog" and dlg.row_box.currentData() is None
    out = tmp_path / "mine.csv"
    dlg.format_box.setCurrentText("csv")
    dlg.row_box.setCurrentIndex(3)  # row 2
    dlg.n_box.setValue(100)
    dlg.denormalise_box.setChecked(False)
    dlg.path_edit.setText(str(out))
    dlg.accept()
    assert dlg.error is None and dlg.result() == QtWidgets.QDialog.Accepted
    reference = export_samples(
        traj,
        tmp_path / "ref.csv",
        fmt="csv",
        step=int(view.tf.steps[2]),
        n=100,
        denormalise=False,
    )
    assert out.read_bytes() == reference.read_bytes()

    # final samples as npy, the default row
    dlg = view.open_export_dialog()
    npy = tmp_path / "final.npy"
    dlg.format_box.setCurrentText("npy")
    dlg.path_edit.setText(str(npy))
    dlg.accept()
    assert np.array_equal(np.load(npy), np.load(export_samples(traj, tmp_path / "r.npy")))

    # an existing destination is kept when the answer is no, replaced when yes
    asked = []
    dlg = view.open_export_dialog()
    dlg.confirm_overwrite = lambda p: asked.append(p) or False
    dlg.format_box.setCurrentText("npy")
    dlg.n_box.setValue(10)
    dlg.path_edit.setText(str(npy))
    before = npy.read_bytes()
    dlg.accept()
    assert asked == [npy] and npy.read_bytes() == before
    assert dlg.error and "kept" in dlg.error and dlg.result() != QtWidgets.QDialog.Accepted
    dlg.confirm_overwrite = lambda p: True
    dlg.accept()
    assert np.load(npy).shape == (10, 2)


def test_image_file_and_logp(qtbot, inspector: InspectorWindow, tmp_path: Path) -> None:
    path = tmp_path / "images.h5"
    w = writer(path, n=20, shape=(1, 4, 4))
    rng = np.random.default_rng(2)
    for k in range(3):
        w.append(k, 1.0 - 0.3 * k, rng.uniform(-1, 1, (20, 1, 4, 4)))
    w.close(rng.uniform(-1, 1, (20, 1, 4, 4)), nfe=3, logp=rng.standard_normal(20))
    assert inspector.open(path)
    view = inspector.current()
    assert view.images_view is not None and view.logp_view is not None
    view.show_view("Images")
    assert view.images_view.image.image is not None
    view.show_view("Log-likelihood")
    view.show_view("Statistics")
    qtbot.waitUntil(view.stats_view.stats_ready)  # computed in a worker
    assert view.stats_view.stats["mean"].shape == (3, 1)  # aggregated over 16 dimensions
    assert not view.error_banner.isVisible()


def test_main_window_opens_inspector_and_adds_tabs(window, traj: Path, tmp_path: Path) -> None:
    second = tmp_path / "second.h5"
    shutil.copy(traj, second)
    assert window.open_path(traj)
    inspector = window.findChild(InspectorWindow, "inspectorWindow")
    assert inspector is not None and inspector is window.inspector and inspector.isVisible()
    assert inspector.tabs.count() == 1
    assert window.open_path(second)
    assert inspector.tabs.count() == 2
    assert window.open_path(second)  # the same file again: switches to its tab
    assert inspector.tabs.count() == 2
    bad = tmp_path / "bad.h5"
    bad.write_text("nope")
    assert window.open_path(bad) is False
    assert window.errors and "not an HDF5 file" in window.errors[-1]
    assert window.acceptDrops()


def test_benchmark_helper_runs(qtbot, traj: Path) -> None:
    numbers = benchmark_open_and_slider(traj, moves=3)
    assert numbers["open_s"] > 0 and numbers["slider_median_s"] > 0


def test_control_codes_in_names_and_attributes_are_shown_escaped(
    inspector: InspectorWindow, tmp_path: Path
) -> None:
    """A file's strings are the writer's: the tree and the attribute table show escapes."""
    path = tmp_path / "hostile.h5"
    with h5py.File(path, "w") as f:
        f.attrs["bad\x1bkey"] = "x\x1b[2Jy\u202e"
        f.attrs["huge"] = "z" * 5000
        f.create_dataset("ring\x07", data=np.zeros(3))
    assert inspector.open(path)
    view = inspector.current()
    assert "/ring\x07" in view.tree_paths()
    assert view.tree_paths()["/ring\x07"].text(0) == "ring\\x07"
    view.tree.setCurrentItem(view.tree_paths()["/"])
    shown = {
        view.attrs.item(r, 0).text(): view.attrs.item(r, 1).text()
        for r in range(view.attrs.rowCount())
    }
    assert shown["bad\\x1bkey"] == "x\\x1b[2Jy\\u202e"
    assert shown["huge"] == "z" * 200 + "… (5,000 characters)"
    assert "\x1b" not in view.attributes_shown()["bad\\x1bkey"]
