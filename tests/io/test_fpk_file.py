"""Fokker–Planck files (``sde-workbench fpk``): the NeXus chain, p_t back in data units, and
files written before either was added."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from workbench.config import default_config, parse_config
from workbench.core.data import build_dataset
from workbench.errors import WorkbenchError
from workbench.io.fpk_file import fpk_summary, has_fpk, read_fpk
from workbench.jobs.fpk import solve_config_to_file

ROOT = Path(__file__).resolve().parents[2]
# asymmetric means and unequal spreads: shift and scale differ per coordinate, so a swapped
# coordinate or an inverted map shows
GMM2 = {"means": [[3.0, -1.0], [5.0, 2.0]], "stds": [0.5, 0.3]}


def solve(tmp_path: Path, name: str, params: dict | None = None, grid: int = 64) -> Path:
    overrides: dict = {"data.name": name}
    overrides.update({f"data.{key}": value for key, value in (params or {}).items()})
    config = default_config().with_overrides(overrides)
    path = tmp_path / f"{name}.h5"
    solve_config_to_file(config, path, grid=grid, times=(0.0, 0.5, 1.0))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """A 1-D and a 2-D solution, solved once for the module."""
    folder = tmp_path_factory.mktemp("fpk")
    return {1: solve(folder, "gmm1d"), 2: solve(folder, "gmm", GMM2, grid=48)}


def copy(path: Path, tmp_path: Path) -> Path:
    out = tmp_path / path.name
    out.write_bytes(path.read_bytes())
    return out


# ---------------------------------------------------------------------------------------------
# NeXus
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [1, 2])
def test_the_nexus_default_chain_leads_to_p(files: dict[int, Path], nexus_chain, dim: int) -> None:
    chain = nexus_chain(files[dim], "fpk")
    axes = ["times", "x1"] if dim == 1 else ["times", "x1", "x2"]
    assert chain["signal"] == "/entry/fpk/p" and chain["axes"] == axes
    grid = 64 if dim == 1 else 48
    assert chain["shape"] == (3, *[grid] * dim)
    assert chain["lengths"] == {"times": 3, "x1": grid, **({"x2": grid} if dim == 2 else {})}
    with h5py.File(files[dim], "r") as f:
        assert f["fpk/p"].attrs["long_name"] == "p_t (model units)"
        assert f["fpk"].attrs["units"] == "model"


@pytest.mark.parametrize("dim", [1, 2])
def test_nexusformat_plots_p(files: dict[int, Path], dim: int) -> None:
    nexus = pytest.importorskip(
        "nexusformat.nexus",
        reason="nexusformat is not installed (pip install nexusformat): NeXus check skipped",
    )
    root = nexus.nxload(str(files[dim]), "r")
    try:
        data = root.plottable_data
        assert data is not None and data.nxpath == "/entry/fpk"
        assert data.nxsignal.nxname == "p"
        assert [a.nxname for a in data.nxaxes] == ["times", "x1", "x2"][: dim + 1]
        assert np.array_equal(data.nxaxes[0].nxvalue, [0.0, 0.5, 1.0])
    finally:
        root.nxfile.close()


@pytest.mark.parametrize("dim", [1, 2])
def test_silx_finds_the_default_plot(files: dict[int, Path], dim: int) -> None:
    nxdata = pytest.importorskip(
        "silx.io.nxdata", reason="silx is not installed (pip install silx): NeXus check skipped"
    )
    with h5py.File(files[dim], "r") as f:
        data = nxdata.get_default(f)  # what `silx view` plots on opening the file
        assert data is not None and data.is_valid, getattr(data, "issues", None)
        assert data.signal.name == "/entry/fpk/p"
        assert data.axes_dataset_names == ["times", "x1", "x2"][: dim + 1]
        for k, axis in enumerate(data.axes):
            assert axis.shape == (data.signal.shape[k],)


# ---------------------------------------------------------------------------------------------
# data units
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [1, 2])
def test_p_reads_back_in_data_units(files: dict[int, Path], dim: int) -> None:
    with h5py.File(files[dim], "r") as f:
        config = parse_config(f["config"].attrs["experiment"])
    dataset = build_dataset(config.data.name, dict(config.data.params))
    norm = dataset.normalizer()
    fpk = read_fpk(files[dim])
    assert fpk.attrs["mode"] == "standardise"
    assert np.allclose(fpk.shift, norm.shift.numpy().reshape(-1))
    assert np.allclose(fpk.scale, norm.scale.numpy().reshape(-1))
    axes, p = fpk.in_data_units()
    # p_0 in data units is the data's own density, evaluated on the data-unit grid
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, dim)
    truth = torch.exp(dataset.log_prob(torch.as_tensor(mesh))).numpy().reshape(p[0].shape)
    assert np.max(np.abs(p[0] - truth)) < 1e-3 * truth.max()
    # and every p_t keeps its unit mass on the data-unit grid
    cell = np.prod([a[1] - a[0] for a in axes])
    assert np.allclose(p.reshape(3, -1).sum(1) * cell, 1.0, atol=1e-6)
    assert not np.allclose(axes[0], fpk.axes[0])  # a real map, not the identity


# ---------------------------------------------------------------------------------------------
# older and damaged files
# ---------------------------------------------------------------------------------------------
def _strip_to_the_first_layout(path: Path) -> None:
    """The file as written before the NeXus entry and the normaliser were added."""
    with h5py.File(path, "r+") as f:
        del f["entry"]
        for name in ("NX_class", "default", "creator", "file_time"):
            del f.attrs[name]
        g = f["fpk"]
        for name in list(g.attrs):
            if name not in ("sde", "dim", "grid", "mass_error", "clipped", "units", "warnings"):
                del g.attrs[name]
        for ds in g.values():
            if "long_name" in ds.attrs:
                del ds.attrs["long_name"]


def test_files_written_before_the_nexus_entry_still_read(
    files: dict[int, Path], tmp_path: Path
) -> None:
    path = copy(files[2], tmp_path)
    new = read_fpk(path)
    _strip_to_the_first_layout(path)
    assert has_fpk(path)
    old = read_fpk(path)
    assert old.shift is None and old.scale is None
    assert np.array_equal(old.p, new.p) and np.array_equal(old.axes[1], new.axes[1])
    with pytest.raises(WorkbenchError, match="no normaliser"):
        old.in_data_units()
    assert fpk_summary(path)["grid"] == "48x48"


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"scale": np.array([1.0, -2.0])}, "scale positive"),
        ({"shift": np.array([np.nan, 0.0])}, "finite"),
        ({"shift": np.array([1.0, 2.0, 3.0])}, "sample_shape|broadcast|shape"),
        ({"sample_shape": np.array([3])}, "broadcast|shape|coordinates"),
        ({"scale": "wide"}, "invalid"),
    ],
)
def test_a_bad_normaliser_is_a_one_line_error(
    files: dict[int, Path], tmp_path: Path, attrs: dict, message: str
) -> None:
    path = copy(files[2], tmp_path)
    with h5py.File(path, "r+") as f:
        for key, value in attrs.items():
            f["fpk"].attrs[key] = value
    with pytest.raises(WorkbenchError, match=message) as info:
        read_fpk(path)
    assert "\n" not in str(info.value) and "normaliser" in str(info.value)


@pytest.mark.parametrize(
    ("version", "message"), [(2, "newer version.*version 2.*please update"), ("1", "integer")]
)
def test_a_later_or_malformed_version_is_refused(
    files: dict[int, Path], tmp_path: Path, version: object, message: str
) -> None:
    path = copy(files[1], tmp_path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = version
    for read in (read_fpk, fpk_summary):
        with pytest.raises(WorkbenchError, match=message) as info:
            read(path)
        assert "\n" not in str(info.value)


def test_write_fpk_without_a_normaliser_stores_the_identity(
    files: dict[int, Path], tmp_path: Path
) -> None:
    from workbench.io.fpk_file import FPKFileData, write_fpk

    fpk: FPKFileData = read_fpk(files[1])

    class Solution:  # the fields write_fpk reads of an FPKSolution
        axes, times, p = fpk.axes, fpk.times, fpk.p
        dim, mass, clipped, warnings = 1, np.ones(3), 0.0, []

    path = write_fpk(tmp_path / "plain.h5", Solution(), sde_kind="vp", config_toml="")
    plain = read_fpk(path)
    assert plain.attrs["mode"] == "none"
    axes, p = plain.in_data_units()
    assert np.array_equal(axes[0], fpk.axes[0]) and np.array_equal(p, fpk.p)


# ---------------------------------------------------------------------------------------------
# the command line, as a user runs it
# ---------------------------------------------------------------------------------------------
def test_the_fpk_command_stores_the_normaliser_and_inspect_reads_it(tmp_path: Path) -> None:
    cfg = tmp_path / "gmm.toml"
    cfg.write_text('[data]\nname = "gmm"\nmeans = [[3.0, -1.0], [5.0, 2.0]]\nstds = [0.5, 0.3]\n')
    out = tmp_path / "f.h5"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "workbench", *args], capture_output=True, text=True, env=env
        )

    made = cli("fpk", str(cfg), "--out", str(out), "--grid", "24", "--times", "0,1")
    assert made.returncode == 0, made.stderr
    assert np.allclose(read_fpk(out).shift, [4.0, 0.5])
    shown = cli("inspect", str(out), "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["grid"] == "24x24"
