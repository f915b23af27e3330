"""Each sampler's own time grid: ``[sample] grid = "auto"`` (the default) is the sampler's
``default_grid``; a grid named in the config is that grid, whatever the sampler; the grid that
ran is on the sampler and in the trajectory file's config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.config import default_config, parse_config, to_toml
from workbench.core.data import build_dataset
from workbench.core.nets import AnalyticScoreModel
from workbench.core.samplers import (
    AUTO_GRID,
    SAMPLER_DEFAULTS,
    SAMPLERS,
    TIME_GRIDS,
    build_sampler,
    time_grid,
)
from workbench.core.sde import build_sde
from workbench.errors import ConfigError
from workbench.io.trajectories import TrajectoryFile
from workbench.jobs.sample import sample_params, sample_to_file


def _score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return -x


@pytest.fixture(scope="module")
def vp():
    return build_sde("vp", {})


def test_the_config_default_is_auto_and_auto_is_a_choice() -> None:
    assert SAMPLER_DEFAULTS["grid"] == AUTO_GRID
    assert default_config().sample.grid == AUTO_GRID
    cfg = parse_config('[sample]\ngrid = "auto"\n')
    assert parse_config(to_toml(cfg)).sample.grid == AUTO_GRID
    with pytest.raises(ConfigError, match="'auto'"):
        parse_config('[sample]\ngrid = "autoo"\n')


def test_every_sampler_default_grid_is_a_registered_grid() -> None:
    for name in SAMPLERS.names():
        assert SAMPLERS.get(name).default_grid in TIME_GRIDS.names(), name


def test_auto_is_the_sampler_own_grid(vp) -> None:
    """dpmpp_2m crowds its steps towards eps (quadratic); em keeps the uniform grid."""
    dpm = build_sampler(vp, _score, {"sampler": "dpmpp_2m", "steps": 12})
    assert dpm.grid == "quadratic"
    torch.testing.assert_close(dpm.times, time_grid("quadratic", 12, vp.T, 1e-3, 7.0, vp))
    em = build_sampler(vp, _score, {"sampler": "em", "steps": 12})
    assert em.grid == "uniform"
    torch.testing.assert_close(em.times, time_grid("uniform", 12, vp.T, 1e-3, 7.0, vp))


@pytest.mark.parametrize("grid", ["uniform", "power_t", "edm"])
def test_a_named_grid_is_kept_whatever_the_sampler(vp, grid: str) -> None:
    """A file that set a grid means what it meant before samplers had their own."""
    for name in ("dpmpp_2m", "em", "ddim"):
        s = build_sampler(vp, _score, {"sampler": name, "steps": 9, "grid": grid})
        assert s.grid == grid
        torch.testing.assert_close(s.times, time_grid(grid, 9, vp.T, 1e-3, 7.0, vp))


def test_the_adaptive_ode_builds_no_grid(vp) -> None:
    assert build_sampler(vp, _score, {"sampler": "ode", "integrator": "rk45"}).grid == ""
    heun = build_sampler(vp, _score, {"sampler": "ode", "integrator": "heun", "steps": 4})
    assert heun.grid == "uniform"


@pytest.mark.parametrize(("sampler", "ran"), [("dpmpp_2m", "quadratic"), ("em", "uniform")])
def test_the_trajectory_file_names_the_grid_that_ran(
    tmp_path: Path, sampler: str, ran: str
) -> None:
    """ "auto" is resolved before the file is written: its config says which grid ran, and
    sampling that config again gives the same rows."""
    cfg = default_config().with_overrides(
        {
            "data.name": "8gaussians",
            "model.kind": "analytic",
            "train.device": "cpu",
            "sample.sampler": sampler,
            "sample.n": 50,
            "sample.steps": 10,
            "sample.record_every": 0,
        }
    )
    assert cfg.sample.grid == AUTO_GRID
    data = build_dataset("8gaussians", {})
    sde = build_sde("vp", {})
    model = AnalyticScoreModel(data.normalizer().to_model_mixture(data.mixture()), sde)
    sample_to_file(cfg, model, tmp_path / "a.h5")
    with TrajectoryFile(tmp_path / "a.h5") as f:
        recorded = f.read_config()
        first = f.samples()
    assert recorded.sample.grid == ran
    assert build_sampler(sde, model, sample_params(recorded)).grid == ran
    sample_to_file(recorded, model, tmp_path / "b.h5")
    with TrajectoryFile(tmp_path / "b.h5") as f:
        torch.testing.assert_close(torch.as_tensor(f.samples()), torch.as_tensor(first))
