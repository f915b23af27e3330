"""``sde-workbench study``: a real subprocess writes the .h5, the CSV and --json; bad names and
budgets are one-line errors; a rerun resumes."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.cli_process import run_cli
from workbench.cli import main


@pytest.fixture()
def analytic(tmp_path: Path) -> Path:
    return analytic_experiment(tmp_path)


def analytic_experiment(folder: Path, preset: str = "gmm1d") -> Path:
    """``preset``'s experiment with the analytic score, written into ``folder``."""
    cfg = folder / f"{preset}.toml"
    assert main(["init", str(cfg), "--preset", preset]) == 0
    cfg.write_text(cfg.read_text().replace('kind = "mlp"', 'kind = "analytic"', 1))
    return cfg


def test_study_subprocess_writes_h5_csv_and_json(analytic: Path, tmp_path: Path) -> None:
    argv = ["study", str(analytic), "--samplers", "em,ode", "--nfe", "5,10", "--n", "300"]
    proc = run_cli(*argv, "--out", "s.h5", "--json", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and report["study"] == "samplers" and report["ran"] == 4
    assert Path(report["csv"]).name == "s.csv"
    assert [(r["sampler"], r["nfe_budget"]) for r in report["rows"]] == [
        ("em", 5),
        ("em", 10),
        ("ode", 5),
        ("ode", 10),
    ]
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert f.attrs["default"] == "entry" and f["entry"].attrs["default"] == "samplers"
        g = f["entry/samplers"]
        assert g.attrs["NX_class"] == "NXdata" and g.attrs["signal"] == "log_density_gap"
        assert g["log_density_gap"].shape == (2, 2)
        assert np.isfinite(g["sw"][()]).all() and np.isfinite(g["sw_floor"][()])
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("sampler,nfe_budget,nfe")

    # the same command again finds everything stored
    again = run_cli(*argv, "--out", "s.h5", cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "0 runs, 4 already stored" in again.stdout


def assert_study_refused(
    capsys: pytest.CaptureFixture[str], config: Path, extra: list[str], status: int, words: str
) -> None:
    """``study CONFIG EXTRA`` exits with ``status``, its last line names ``words`` (and is
    the only line for a refusal, status 1), and writes nothing."""
    out = config.parent / "bad.h5"
    assert main(["study", str(config), *extra, "--out", str(out)]) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert words in err[-1] and err[-1].startswith("sde-workbench")
    if status == 1:
        assert len(err) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "status", "words"),
    [
        (["--samplers", "em,nope"], 1, "--samplers: unknown sampler 'nope'"),
        (["--samplers", "em:rk45"], 1, "the 'em' sampler takes no integrator"),
        (["--samplers", "ode:rk99"], 1, "unknown ode integrator 'rk99'"),
        (["--samplers", "em,em"], 1, "'em' is named twice"),
        (["--losses", "dsm,foo"], 1, "--losses: unknown loss 'foo'"),
        (["--samplers", "em", "--nfe", "5,0"], 2, "0 is not a positive number"),
        (["--samplers", "em", "--nfe", "5,x"], 2, "'x' is not a whole number"),
        (["--losses", "dsm", "--nfe", "5"], 1, "--nfe belongs to a sampler study"),
    ],
)
def test_bad_arguments_are_one_line(
    analytic: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    status: int,
    words: str,
) -> None:
    assert_study_refused(capsys, analytic, extra, status, words)


def test_other_arguments_on_an_existing_study_are_refused(
    analytic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.h5"
    base = ["study", str(analytic), "--samplers", "em", "--nfe", "3", "--n", "200"]
    assert main([*base, "--out", str(out), "-q"]) == 0
    before = out.read_bytes()
    assert main([*base[:-1], "250", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "n = 200, not 250" in err[0]
    assert out.read_bytes() == before


def test_study_of_a_trained_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "exp.toml"
    assert main(["init", str(cfg), "--preset", "gmm1d"]) == 0
    run = tmp_path / "run"
    train = ["train", str(cfg), "--out", str(run), "--steps", "5", "-q"]
    assert main(train) == 0
    out = tmp_path / "s.h5"
    capsys.readouterr()
    argv = ["study", str(run), "--samplers", "em,ode", "--nfe", "3", "--n", "100"]
    assert main([*argv, "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["nfe"] for r in report["rows"]] == [3, 3]
    # the network's ODE has a reference solution too: a finite pathwise error for ode only
    assert report["rows"][0]["pathwise_error"] is None
    assert report["rows"][1]["pathwise_error"] > 0
