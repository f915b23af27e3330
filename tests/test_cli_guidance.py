"""``sample --class K --guidance W`` end to end, as real subprocesses: the analytic model of a
mixture and a conditional network trained by ``train``; the choice lands in the trajectory
file; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from tests.cli_process import run_cli
from tests.core.test_conditional_train import conditional_config
from workbench.config import default_config, save_config
from workbench.core.data import build_dataset


def _shares(samples: np.ndarray, data: str = "gmm1d") -> np.ndarray:
    mix = build_dataset(data).mixture()
    resp = mix.responsibilities(
        torch.as_tensor(samples, dtype=torch.float64).reshape(len(samples), -1)
    )
    return np.bincount(resp.argmax(-1).numpy(), minlength=mix.n_components) / len(samples)


@pytest.fixture
def analytic(tmp_path: Path) -> Path:
    cfg = default_config().with_overrides(
        {
            "data.name": "gmm1d",
            "model.kind": "analytic",
            "train.device": "cpu",
            "sample.n": 1000,
            "sample.steps": 200,
            "sample.record_every": 50,
        }
    )
    path = tmp_path / "analytic.toml"
    save_config(cfg, path)
    return path


def test_sample_a_class_with_guidance_from_the_analytic_model(analytic: Path, tmp_path: Path):
    out = tmp_path / "g.h5"
    proc = run_cli(
        "sample", str(analytic), "--out", str(out), "--class", "2", "--guidance", "1.5", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["class_label"] == 2 and result["guidance"] == 1.5
    with h5py.File(out, "r") as f:
        attrs = f["trajectories"].attrs
        assert int(attrs["class_label"]) == 2 and float(attrs["guidance"]) == 1.5
        samples = f["samples"][()]
        assert "class_label = 2" in f["config"].attrs["experiment"]
    assert _shares(samples)[2] > 0.95
    # unconditional: no class attributes, all three components drawn
    plain = tmp_path / "p.h5"
    assert run_cli("sample", str(analytic), "--out", str(plain)).returncode == 0
    with h5py.File(plain, "r") as f:
        assert "class_label" not in f["trajectories"].attrs
        assert _shares(f["samples"][()]).min() > 0.1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--class", "3"), "sample.class_label: must be in 0 .. 2 (the model's 3 classes)"),
        (("--class", "-7"), "sample.class_label: must be an integer >= -1"),
        (("--guidance", "2"), "sample.guidance: needs a class to guide towards"),
        (("--class", "0", "--guidance", "-1"), "sample.guidance: must be"),
    ],
)
def test_bad_class_or_guidance_is_one_line(analytic: Path, tmp_path: Path, args, message):
    out = tmp_path / "bad.h5"
    proc = run_cli("sample", str(analytic), "--out", str(out), *args)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sde-workbench: error: "), proc.stderr
    assert message in lines[0]
    assert not out.exists()


def test_usage_errors_exit_2(analytic: Path, tmp_path: Path):
    for args in (("--class", "two"), ("--guidance", "nan")):
        proc = run_cli("sample", str(analytic), "--out", str(tmp_path / "x.h5"), *args)
        assert proc.returncode == 2 and "--" in proc.stderr


def test_a_trained_conditional_run_samples_its_classes(tmp_path: Path):
    cfg = conditional_config(**{"sample.n": 1000, "sample.steps": 100, "sample.record_every": 0})
    config = tmp_path / "c.toml"
    save_config(cfg, config)
    run = tmp_path / "run"
    proc = run_cli("train", str(config), "--out", str(run))
    assert proc.returncode == 0, proc.stderr
    for c in (0, 2):
        out = tmp_path / f"c{c}.h5"
        proc = run_cli("sample", str(run), "--out", str(out), "--class", str(c), "--guidance", "1")
        assert proc.returncode == 0, proc.stderr
        with h5py.File(out, "r") as f:
            assert _shares(f["samples"][()])[c] > 0.9

    # an unconditional run refuses a class in one line
    plain = tmp_path / "plain.toml"
    save_config(cfg.with_overrides({"model.conditional": False, "train.steps": 20}), plain)
    assert run_cli("train", str(plain), "--out", str(tmp_path / "prun")).returncode == 0
    proc = run_cli(
        "sample", str(tmp_path / "prun"), "--out", str(tmp_path / "x.h5"), "--class", "1"
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "trained without labels" in proc.stderr


def test_conditional_on_unlabelled_data_is_one_line(tmp_path: Path):
    config = tmp_path / "m.toml"
    config.write_text('[data]\nname = "moons"\n[model]\nconditional = true\n')
    for command in ("check", "train"):
        argv = (
            (command, str(config))
            if command == "check"
            else (command, str(config), "--out", str(tmp_path / "r"))
        )
        proc = run_cli(*argv)
        assert proc.returncode == 1
        assert proc.stderr.strip().count("\n") == 0
        assert "model.conditional: needs labelled data" in proc.stderr


def test_file_labels_train_and_sample_even_after_the_file_is_gone(tmp_path: Path):
    """A CSV with a label column trains a conditional run; with the file deleted the run still
    samples each class (its classes are read off the checkpoint's label embedding)."""
    rng = np.random.default_rng(0)
    centres = np.array([[-3.0, 0.0], [3.0, 0.0]])
    labels = rng.integers(0, 2, 3000)
    points = centres[labels] + 0.4 * rng.normal(size=(3000, 2))
    data = tmp_path / "two.csv"
    with data.open("w") as fh:
        fh.write("x,y,kind\n")
        for (a, b), k in zip(points, labels, strict=True):
            fh.write(f"{a:.5f},{b:.5f},{k}\n")
    config = tmp_path / "f.toml"
    config.write_text(
        f'[data]\nname = "file"\npath = "{data}"\nlabels = "kind"\nn = 3000\n'
        "[model]\nconditional = true\nhidden = 64\ndepth = 2\nembed_dim = 32\n"
        '[train]\nsteps = 600\nbatch_size = 256\ndevice = "cpu"\nwarmup = 20\n'
        "[sample]\nn = 500\nsteps = 100\nrecord_every = 0\n"
    )
    run = tmp_path / "run"
    proc = run_cli("train", str(config), "--out", str(run))
    assert proc.returncode == 0, proc.stderr
    data.unlink()
    for c in (0, 1):
        out = tmp_path / f"f{c}.h5"
        proc = run_cli("sample", str(run), "--out", str(out), "--class", str(c))
        assert proc.returncode == 0, proc.stderr
        with h5py.File(out, "r") as f:
            x = f["samples"][()]
        # the chosen cluster: x on its side of 0
        assert float(np.mean(np.sign(x[:, 0]) == np.sign(centres[c, 0]))) > 0.9
    proc = run_cli("sample", str(run), "--out", str(tmp_path / "bad.h5"), "--class", "2")
    assert proc.returncode == 1 and "0 .. 1" in proc.stderr
