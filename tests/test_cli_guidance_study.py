"""``sde-workbench study --class K --guidance W,W``: real subprocesses on the analytic model of
a mixture. At w = 0 the tilted density is p(x|c) and the samples land within the noise floor;
as w grows they land further from it (guidance does not sample its tilted density), by far
more than the floor. A stopped study resumes where it stopped; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.cli_process import run_cli
from tests.test_cli_study import analytic_experiment, assert_study_refused
from workbench.cli import main
from workbench.io.study_file import read_samples, read_study

N = 3000
WEIGHTS = "0,1,4"


@pytest.fixture()
def analytic(tmp_path: Path) -> Path:
    return analytic_experiment(tmp_path)


def test_guided_samples_leave_the_tilted_density_as_w_grows(analytic: Path, tmp_path: Path):
    argv = ["study", str(analytic), "--class", "1", "--guidance", WEIGHTS, "--samplers", "ode"]
    proc = run_cli(*argv, "--nfe", "100", "--n", str(N), "--out", "g.h5", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and report["study"] == "guidance" and report["ran"] == 3
    rows = report["rows"]
    assert [r["guidance"] for r in rows] == [0.0, 1.0, 4.0]
    assert all(r["class_label"] == 1 and r["sampler"] == "ode" for r in rows)
    gap = np.array([r["log_density_gap"] for r in rows])
    gap_sd = np.array([r["log_density_gap_floor_std"] for r in rows])
    sw = np.array([r["sw"] for r in rows])
    sw_floor = np.array([r["sw_floor"] for r in rows])
    # the floor sd is std(log q)/sqrt(n): n-derived
    assert 0 < gap_sd[0] < 3 / np.sqrt(N)
    # w = 0: the target is p(x|c) itself, and a 100-NFE ODE of the exact score samples it
    assert abs(gap[0]) < 4 * gap_sd[0]
    assert abs(rows[0]["conditional_log_density_gap"]) < 4 * gap_sd[0]
    assert sw[0] < 2 * sw_floor[0]
    # w > 0: further from the tilted density with every w, far beyond the floor
    assert gap[1] > gap[0] + 8 * gap_sd[1] and gap[2] > gap[1] - 2 * gap_sd[2]
    assert sw[1] > 4 * sw_floor[1] and sw[2] > sw[1]
    # and from p(x|c) too: guidance sharpens the class
    assert rows[2]["sw_conditional"] > 4 * rows[2]["sw_conditional_floor"]

    with h5py.File(tmp_path / "g.h5", "r") as f:
        assert f["entry"].attrs["default"] == "guidance"
        g = f["entry/guidance"]
        assert list(g.attrs["axes"]) == ["sampler", "guidance"]
        assert np.allclose(g["guidance"][()], [0, 1, 4]) and int(g["class_label"][()]) == 1
        assert g["samples"].shape == (1, 3, N, 1)
        assert np.isfinite(g["seconds"][()]).all()
    csv = (tmp_path / "g.csv").read_text().splitlines()
    assert len(csv) == 4 and csv[0].startswith("sampler,class_label,guidance,nfe")
    data = read_study(tmp_path / "g.h5")
    assert data["kind"] == "guidance" and data["done"].all()
    entry = read_samples(tmp_path / "g.h5", 0, 2)
    assert entry.points.shape == (N, 1) and entry.guidance == 4.0 and "w = 4" in entry.title


def test_a_stopped_guidance_study_resumes_at_the_next_w(analytic: Path, tmp_path: Path):
    from workbench.jobs.guidance_study import guidance_study
    from workbench.jobs.sample import load_model

    out = tmp_path / "r.h5"
    config, model, dataset = load_model(analytic)
    seen: list[str] = []
    result = guidance_study(
        config,
        model,
        dataset,
        out,
        class_label=0,
        guidance=[0.0, 2.0, 3.0],
        samplers=["em"],
        nfe=20,
        n=200,
        source=str(analytic.resolve()),
        progress=lambda _f, what: seen.append(what),
        # stop during the second weight's run: the first stays stored
        cancel=lambda: len(seen) > 1,
    )
    assert result.status == "cancelled" and result.ran == 1
    stamp = read_study(out)
    assert stamp["done"].tolist() == [[True, False, False]]
    with h5py.File(out, "r") as f:
        first = f["entry/guidance/finished_at"][0, 0]

    argv = ["study", str(analytic), "--class", "0", "--guidance", "0,2,3", "--samplers", "em"]
    proc = run_cli(*argv, "--nfe", "20", "--n", "200", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "2 runs, 1 already stored" in proc.stdout
    with h5py.File(out, "r") as f:
        assert f["entry/guidance/done"][()].all()
        assert f["entry/guidance/finished_at"][0, 0] == first


def test_the_config_sampler_and_2d_mixture(tmp_path: Path):
    cfg = analytic_experiment(tmp_path, "8gaussians")
    out = tmp_path / "e.h5"
    argv = ["study", str(cfg), "--class", "3", "--guidance", "0,2", "--n", "300", "--nfe", "30"]
    assert main([*argv, "--out", str(out), "-q"]) == 0
    data = read_study(out)
    assert data["names"] and data["done"].all() and data["class_label"] == 3
    assert np.isfinite(data["sw"]).all() and np.isfinite(data["sw_conditional_floor"]).all()


@pytest.mark.parametrize(
    ("extra", "status", "words"),
    [
        (["--class", "3", "--guidance", "0,1"], 1, "classes are 0 .. 2"),
        (["--class", "-1", "--guidance", "1"], 1, "not -1"),
        (["--class", "1", "--guidance=-0.5"], 2, "-0.5 is not a guidance weight"),
        (["--class", "1", "--guidance", "1,nan"], 2, "nan is not a guidance weight"),
        (["--class", "1", "--guidance", "x"], 2, "'x' is not a number"),
        (["--class", "1", "--guidance", "1,1"], 1, "1 is named twice"),
        (["--class", "1", "--losses", "dsm"], 1, "--class belongs to a guidance study"),
        (["--class", "1", "--guidance", "1", "--losses", "dsm"], 1, "does not take --losses"),
        (["--guidance", "1"], 1, "needs the class to guide towards"),
        (["--class", "1"], 1, "give --guidance W,W too"),
        (["--class", "1", "--guidance", "1", "--nfe", "5,10"], 1, "runs at one budget"),
        (["--class", "1", "--guidance", "1", "--samplers", "nope"], 1, "unknown sampler"),
        (["--class", "1", "--guidance", "1", "--steps", "5"], 1, "--steps belongs to a loss"),
        ([], 2, "name what to study"),
    ],
)
def test_bad_guidance_arguments_are_one_line(
    analytic: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    status: int,
    words: str,
) -> None:
    assert_study_refused(capsys, analytic, extra, status, words)


def test_data_that_is_not_a_mixture_is_refused(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "moons.toml"
    assert main(["init", str(cfg), "--preset", "moons"]) == 0
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run), "--steps", "3", "-q"]) == 0
    capsys.readouterr()
    out = tmp_path / "m.h5"
    status = main(["study", str(run), "--class", "0", "--guidance", "1", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 1 and "not a Gaussian mixture" in err[0]
    assert not out.exists()


def test_a_network_trained_without_labels_has_no_class(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "exp.toml"
    assert main(["init", str(cfg), "--preset", "gmm1d"]) == 0
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run), "--steps", "3", "-q"]) == 0
    capsys.readouterr()
    out = tmp_path / "u.h5"
    status = main(["study", str(run), "--class", "0", "--guidance", "1", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 1 and "trained without labels" in err[0]
    assert not out.exists()
