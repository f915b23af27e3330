"""``sample``, ``nll``, ``inspect`` and ``export`` from the command line, on real files."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from workbench.cli import main
from workbench.config import default_config, save_config


@pytest.fixture
def analytic(tmp_path: Path) -> Path:
    cfg = default_config().with_overrides(
        {
            "model.kind": "analytic",
            "train.device": "cpu",
            "sample.n": 500,
            "sample.steps": 100,
            "sample.record_every": 10,
        }
    )
    path = tmp_path / "analytic.toml"
    save_config(cfg, path)
    return path


def test_sample_inspect_export(analytic: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "s.h5"
    assert main(["sample", str(analytic), "--out", str(out)]) == 0
    assert "500 samples" in capsys.readouterr().out
    with h5py.File(out, "r") as f:
        assert f.attrs["complete"]
        assert f["trajectories/x"].shape == (12, 500, 2)  # prior, every 10th, final
        samples = f["samples"][()]
    assert samples.shape == (500, 2) and np.all(np.isfinite(samples))

    assert main(["inspect", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["complete"] is True and summary["n_samples"] == 500

    csv = tmp_path / "s.csv"
    assert main(["export", str(out), "--out", str(csv)]) == 0
    back = np.loadtxt(csv, delimiter=",", skiprows=1)
    np.testing.assert_allclose(back, samples, rtol=1e-6)
    capsys.readouterr()
    assert main(["export", str(out), "--out", str(csv)]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["export", str(out), "--out", str(tmp_path / "row.npy"), "--time", "0.5"]) == 0


def test_sample_overrides_and_no_overwrite(analytic: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "s.h5"
    args = ["sample", str(analytic), "--out", str(out), "--n", "64", "--record-every", "0"]
    assert main([*args, "--sampler", "ode", "--steps", "20"]) == 0
    with h5py.File(out, "r") as f:
        assert f["samples"].shape == (64, 2)
        assert f["trajectories"].attrs["sampler"] == "ode"
    before = out.read_bytes()
    assert main(args) == 1
    assert "exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main([*args, "--force"]) == 0


def test_sample_needs_weights(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "mlp.toml"
    save_config(default_config(), cfg)
    assert main(["sample", str(cfg), "--out", str(tmp_path / "x.h5")]) == 1
    err = capsys.readouterr().err
    assert "analytic" in err and "\n" not in err.strip()


def test_nll_of_the_analytic_score_matches_the_data_density(analytic: Path, capsys) -> None:
    assert main(["nll", str(analytic), "--n", "300"]) == 0
    out = capsys.readouterr().out
    model = float(out.split("units): ")[1].split()[0])
    exact = float(out.split("data density: ")[1].split()[0])
    assert abs(model - exact) < 0.02


def test_sample_from_a_trained_run(tmp_path: Path, capsys) -> None:
    cfg = default_config().with_overrides(
        {
            "train.device": "cpu",
            "train.steps": 20,
            "train.batch_size": 128,
            "data.n": 1024,
            "model.hidden": 32,
            "sample.n": 100,
            "sample.steps": 20,
        }
    )
    path = tmp_path / "exp.toml"
    save_config(cfg, path)
    run = tmp_path / "run"
    assert main(["train", str(path), "--out", str(run)]) == 0
    assert main(["sample", str(run), "--out", str(run / "s.h5")]) == 0
    assert main(["inspect", str(run / "s.h5")]) == 0
    assert "complete" in capsys.readouterr().out


def test_export_says_which_row_and_refuses_an_incomplete_file(
    analytic: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "s.h5"
    assert main(["sample", str(analytic), "--out", str(out)]) == 0
    capsys.readouterr()
    csv = tmp_path / "final.csv"
    assert main(["export", str(out), "--out", str(csv)]) == 0
    # the final samples, with the time of the last recorded row (sample.eps)
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("wrote 500 samples (final samples, t=") and printed.endswith(
        f") to {csv}"
    )
    assert main(["export", str(out), "--out", str(tmp_path / "r.npy"), "--step", "50"]) == 0
    assert capsys.readouterr().out.strip().startswith("wrote 500 samples (row 5, step 50, t=")

    # the same file as a stopped sampler leaves it: rows, but no final samples
    with h5py.File(out, "r+") as f:
        f.attrs["complete"] = False
        del f["samples"]
    npy = tmp_path / "stopped.npy"
    assert main(["export", str(out), "--out", str(npy)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "is incomplete" in err and "--step K" in err and "--time T" in err
    assert not npy.exists()
    assert main(["export", str(out), "--out", str(npy), "--time", "0.5"]) == 0
    assert "(row " in capsys.readouterr().out
    assert np.load(npy).shape == (500, 2)
