"""``sde-workbench fpk``: the file it writes, no overwriting, and data it cannot grid."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from workbench.cli import main


def _config(tmp_path: Path, preset: str = "gmm1d") -> Path:
    cfg = tmp_path / f"{preset}.toml"
    assert main(["init", str(cfg), "--preset", preset]) == 0
    return cfg


def test_fpk_writes_documented_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    out = tmp_path / "fpk.h5"
    argv = ["fpk", str(cfg), "--out", str(out), "--grid", "64", "--times", "0,0.5,1"]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "sde-workbench/fpk"
        assert int(f.attrs["format_version"]) == 1
        assert bool(f.attrs["complete"])
        assert f.attrs["created"]
        assert "[data]" in f["config"].attrs["experiment"]
        g = f["fpk"]
        assert g.attrs["sde"] == "vp" and g.attrs["units"] == "model"
        assert list(g.attrs["grid"]) == [64]
        assert float(g.attrs["mass_error"]) < 1e-6
        assert np.allclose(g["times"][()], [0, 0.5, 1])
        x1 = g["x1"][()]
        p = g["p"][()]
        assert x1.shape == (64,) and p.shape == (3, 64) and "x2" not in g
        assert np.all(p >= 0)
        assert np.allclose(p.sum(1) * (x1[1] - x1[0]), 1.0, atol=1e-6)
    assert not [q for q in tmp_path.iterdir() if q.name.endswith(".tmp")]

    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already exists" in err


def test_fpk_2d_default_times(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "8gaussians")
    out = tmp_path / "two.h5"
    assert main(["fpk", str(cfg), "--out", str(out), "--grid", "32"]) == 0
    with h5py.File(out, "r") as f:
        g = f["fpk"]
        assert g["p"].shape == (6, 32, 32)
        assert np.allclose(g["times"][()], [0, 0.1, 0.25, 0.5, 0.75, 1])
        assert g["x2"].shape == (32,)


def test_fpk_refuses_3d_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gmm3.toml"
    cfg.write_text(
        '[data]\nname = "gmm"\nmeans = [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]\nstds = [0.5, 0.5]\n'
    )
    out = tmp_path / "x.h5"
    assert main(["fpk", str(cfg), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "3 dimensions" in err
    assert not out.exists()


def test_inspect_summarises_an_fpk_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    cfg = _config(tmp_path)
    out = tmp_path / "fpk.h5"
    assert main(["fpk", str(cfg), "--out", str(out), "--grid", "64", "--times", "0,1"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "sde-workbench/fpk" and summary["complete"] is True
    assert summary["sde"] == "vp" and summary["dim"] == 1 and summary["grid"] == "64"
    assert summary["times"] == "0, 1" and summary["mass_error"] < 1e-6
    assert set(summary["extent"]) == {"x1"}
    assert main(["inspect", str(out)]) == 0
    assert "grid" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("times", "words"),
    [("0,0.5,1.5", ["time 1.5", "[0, 1]"]), ("0,2,3", ["time 2", "2 of the 3"])],
)
def test_fpk_times_beyond_T_are_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], times: str, words: list[str]
) -> None:
    """Before this was checked, a time past T ran the solver at 0% for minutes."""
    cfg = _config(tmp_path)
    out = tmp_path / "late.h5"
    # a grid far too big to solve within the test's patience: only an early refusal returns
    argv = ["fpk", str(cfg), "--out", str(out), "--grid", "4000000", "--times", times]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("sde-workbench: error: --times")
    for word in words:
        assert word in err
    assert not out.exists()


@pytest.mark.parametrize("times", ["0,-0.5", "nan", "0,inf"])
def test_fpk_negative_or_non_finite_times_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], times: str
) -> None:
    cfg = _config(tmp_path)
    assert main(["fpk", str(cfg), "--out", str(tmp_path / "x.h5"), f"--times={times}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "--times" in err[-1] and not (tmp_path / "x.h5").exists()


def test_solve_fpk_refuses_times_outside_the_sde() -> None:
    """The solver itself (used by the GUI's reference and the fpk prior) refuses them too."""
    from workbench.core.fpk import solve_fpk
    from workbench.core.sde import build_sde
    from workbench.errors import WorkbenchError

    sde = build_sde("vp", {"T": 1.0})
    p0 = lambda pts: np.exp(-0.5 * (pts[:, 0] ** 2))  # noqa: E731
    for bad in ([0.0, 1.5], [-0.1]):
        with pytest.raises(WorkbenchError, match="outside \\[0, T\\]"):
            solve_fpk(sde, p0, 64, bad, bounds=[(-5.0, 5.0)])
