"""The study job on gmm1d with the exact score: the measured errors order the samplers as the
theory says, one x_T is shared per budget, entries are stored as they finish and a rerun
resumes; and a short loss study writes finite error curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from workbench.errors import WorkbenchError
from workbench.io.study_file import csv_path
from workbench.jobs.sample import load_model
from workbench.jobs.study import loss_study, sampler_study
from workbench.presets import preset_config


def _analytic() -> tuple[Any, Any, Any]:
    return load_model(preset_config("gmm1d").with_overrides({"model.kind": "analytic"}))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    config, model, dataset = _analytic()
    out = tmp_path_factory.mktemp("study") / "study.h5"
    result = sampler_study(
        config,
        model,
        dataset,
        out,
        samplers=["em", "ode", "ode:rk45"],
        nfe=[5, 50],
        n=1000,
        seed=0,
    )
    return out, result


def _table(out: Path) -> dict[str, np.ndarray]:
    with h5py.File(out, "r") as f:
        g = f["entry/samplers"]
        return {k: g[k][()] for k in g}


def test_em_is_worse_than_rk45_and_improves_with_nfe(sweep: tuple[Path, Any]) -> None:
    out, result = sweep
    assert result.status == "done" and result.ran == 6 and result.skipped == 0
    t = _table(out)
    assert [s.decode() if isinstance(s, bytes) else s for s in t["sampler"]] == [
        "em",
        "ode",
        "ode:rk45",
    ]
    assert t["done"].all()
    gap, floor = t["log_density_gap"], float(t["log_density_gap_floor_std"])
    em, rk45 = 0, 2
    # NFE 5 leaves Euler-Maruyama far from the data; rk45 at its tolerance is within the noise
    assert gap[em, 0] < gap[rk45, 0] - 10 * floor
    assert abs(gap[rk45, 0]) < 5 * floor
    # and the errors shrink with the budget
    assert abs(gap[em, 1]) < abs(gap[em, 0])
    for metric in ("sw", "energy"):
        assert t[metric][em, 1] < t[metric][em, 0], metric
    # the budgets are counted: em hits them exactly, rk45 records what it used
    assert t["nfe_actual"][em].tolist() == [5, 50]
    assert t["nfe_actual"][1].tolist()[0] == 5 and t["nfe_actual"][1][1] <= 50
    assert t["steps"][rk45].tolist() == [-1, -1] and (t["nfe_actual"][rk45] > 50).all()
    assert np.isfinite(t["seconds"]).all() and (t["seconds"] > 0).all()


def test_pathwise_error_for_deterministic_samplers_only(sweep: tuple[Path, Any]) -> None:
    out, _ = sweep
    t = _table(out)
    pw = t["pathwise_error"]
    assert np.isnan(pw[0]).all()  # em draws noise: no pathwise error is claimed
    assert pw[1, 1] < 0.1 * pw[1, 0]  # Heun at 50 NFE vs at 5, from the same x_T
    assert (pw[2] < 0.2 * pw[1, 1]).all()  # rk45 at 1e-5 is nearly the 1e-6 solution


def test_csv_has_one_row_per_run(sweep: tuple[Path, Any]) -> None:
    out, result = sweep
    lines = csv_path(out).read_text().splitlines()
    assert lines[0].startswith("sampler,nfe_budget,nfe,steps,log_density_gap")
    assert len(lines) == 1 + 6
    em5 = lines[1].split(",")
    assert em5[:4] == ["em", "5", "5", "4"] and em5[9] == ""  # no pathwise error for em
    assert [r["sampler"] for r in result.rows] == ["em", "em", "ode", "ode"] + ["ode:rk45"] * 2


def test_resume_skips_finished_entries_and_refuses_other_arguments(tmp_path: Path) -> None:
    """Also: rk45 at the reference's own tolerance reproduces the reference exactly, so the
    sampler and its reference start from the one x_T of the budget."""
    config, model, dataset = _analytic()
    tol = config.sample.rtol
    assert config.sample.atol == tol
    out = tmp_path / "resume.h5"
    args: dict[str, Any] = {
        "samplers": ["em", "ode:rk45"],
        "nfe": [5],
        "n": 300,
        "seed": 1,
        "reference_tol": tol,
    }
    seen: list[str] = []

    def progress(fraction: float, what: str) -> None:
        seen.append(what)

    first = sampler_study(
        config,
        model,
        dataset,
        out,
        progress=progress,
        cancel=lambda: any(w.startswith("ode") for w in seen),
        **args,
    )
    assert first.status == "cancelled" and first.ran == 1
    t = _table(out)
    assert t["done"].tolist() == [[True], [False]]
    stamp = float(t["finished_at"][0, 0])
    again = sampler_study(config, model, dataset, out, **args)
    assert again.status == "done" and (again.ran, again.skipped) == (1, 1)
    t = _table(out)
    assert t["done"].all() and float(t["finished_at"][0, 0]) == stamp
    assert t["pathwise_error"][1, 0] == 0.0
    done = sampler_study(config, model, dataset, out, **args)
    assert (done.ran, done.skipped) == (0, 2)
    with pytest.raises(WorkbenchError, match="nfe = 5, not 5,10") as info:
        sampler_study(config, model, dataset, out, **{**args, "nfe": [5, 10]})
    assert "\n" not in str(info.value)
    with pytest.raises(WorkbenchError, match="unknown sampler 'bogus'"):
        sampler_study(config, model, dataset, out, **{**args, "samplers": ["em", "bogus"]})
    with h5py.File(out, "r") as f:
        assert json.loads(f.attrs["arguments"])["nfe"] == [5]


def test_loss_study_writes_error_curves(tmp_path: Path) -> None:
    config = preset_config("gmm1d").with_overrides(
        {"data.n": 2000, "train.batch_size": 128, "model.hidden": 32, "model.depth": 2}
    )
    out = tmp_path / "losses.h5"
    result = loss_study(config, out, losses=["dsm", "ssm"], steps=20, n_eval=500)
    assert result.status == "done" and result.ran == 2
    with h5py.File(out, "r") as f:
        g = f["entry/losses"]
        assert g.attrs["signal"] == "error" and f["entry"].attrs["default"] == "losses"
        error, t = g["error"][()], g["t"][()]
        assert error.shape == (2, len(t)) and np.isfinite(error).all() and (error > 0).all()
        assert np.all(np.diff(t) > 0)
        curve = g["loss_curve"][()]
        assert curve.shape[0] == 2 and np.isfinite(curve).all()
        assert g["loss_step"][()][-1] == 20
        assert (g["seconds"][()] > 0).all()
    assert len(csv_path(out).read_text().splitlines()) == 3
