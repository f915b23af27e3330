"""Flow matching from the command line: the presets train and sample, ``study --losses dsm,fm``
compares the two objectives in a real subprocess, and bad flow-matching input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.cli_process import run_cli
from workbench.cli import main
from workbench.config import load_config


def _small(path: Path) -> None:
    text = path.read_text()
    for old, new in (
        ("n = 100000", "n = 4000"),
        ("hidden = 256", "hidden = 64"),
        ("batch_size = 1024", "batch_size = 256"),
    ):
        assert old in text, old
        text = text.replace(old, new, 1)
    path.write_text(text)


@pytest.mark.slow
def test_study_compares_dsm_and_fm(tmp_path: Path) -> None:
    cfg = tmp_path / "fm.toml"
    assert main(["init", str(cfg), "--preset", "dsm-vs-fm", "-q"]) == 0
    config = load_config(cfg)
    assert (config.sde.kind, config.model.output) == ("rectified", "v")
    _small(cfg)
    argv = ["study", str(cfg), "--losses", "dsm,fm", "--json"]
    trained = run_cli(*argv, "--steps", "300", "--out", "trained.h5", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    report = json.loads(trained.stdout)
    assert report["ok"] and report["study"] == "losses" and report["ran"] == 2
    assert [r["loss"] for r in report["rows"]] == ["dsm", "fm"]
    untrained = run_cli(*argv, "--steps", "1", "--out", "untrained.h5", cwd=tmp_path)
    assert untrained.returncode == 0, untrained.stderr
    with h5py.File(tmp_path / "trained.h5", "r") as f, h5py.File(tmp_path / "untrained.h5") as g:
        after, before = f["entry/losses/error"][()], g["entry/losses/error"][()]
        t = f["entry/losses/t"][()]
    assert after.shape == (2, len(t)) and np.isfinite(after).all() and (after > 0).all()
    assert t[-1] == pytest.approx(0.999)  # the error curve runs up to the path's T
    # both objectives learn the same score: 300 steps cut the weighted score error e(t),
    # averaged over t, well below the initial network's
    assert np.all(after.mean(1) < 0.5 * before.mean(1)), (after.mean(1), before.mean(1))


def test_flow_matching_preset_trains_and_samples(tmp_path: Path) -> None:
    cfg = tmp_path / "fm.toml"
    assert main(["init", str(cfg), "--preset", "flow-matching", "-q"]) == 0
    config = load_config(cfg)
    assert (config.loss.kind, config.model.output, config.sde.kind) == ("fm", "v", "rectified")
    _small(cfg)
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run), "--steps", "20", "-q"]) == 0
    out = tmp_path / "s.h5"
    assert main(["sample", str(run), "--out", str(out), "--n", "200", "--steps", "10", "-q"]) == 0
    with h5py.File(out, "r") as f:
        assert f["samples"].shape == (200, 2) and np.isfinite(f["samples"][()]).all()
        assert f["trajectories"].attrs["sampler"] == "ode"


@pytest.mark.parametrize(
    ("edit", "key", "words"),
    [
        (("T = 0.999", "T = 1.0"), "sde.T", "< 1"),
        (("T = 0.999", "T = 0.5"), "sde.T", "raise T towards 1"),
        (('kind = "rectified"', 'kind = "rectifed"'), "sde.kind", "did you mean 'rectified'"),
        (('output = "v"', 'output = "w"'), "model.output", "'v'"),
    ],
)
def test_bad_flow_matching_input_is_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: tuple[str, str],
    key: str,
    words: str,
) -> None:
    cfg = tmp_path / "fm.toml"
    assert main(["init", str(cfg), "--preset", "flow-matching", "-q"]) == 0
    text = cfg.read_text()
    assert edit[0] in text
    cfg.write_text(text.replace(edit[0], edit[1], 1))
    capsys.readouterr()
    assert main(["check", str(cfg)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sde-workbench: error:"), err
    assert key in err[0] and words in err[0], err[0]


def test_v_output_or_fm_with_a_non_linear_sde_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "custom.toml"
    assert main(["init", str(cfg), "--preset", "ou-shifted", "-q"]) == 0
    text = cfg.read_text()
    for old, new, key in (
        ('output = "score"', 'output = "v"', "model.output"),
        ('kind = "ssm"', 'kind = "fm"', "loss.kind"),
    ):
        assert old in text
        cfg.write_text(text.replace(old, new, 1))
        capsys.readouterr()
        assert main(["check", str(cfg)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and key in err[0] and "not linear" in err[0], err
