"""The custom (non-linear) SDE: expressions per coordinate, its prior from simulated particles,
and the experiment rules it sets (no DSM, no s(t)-based settings, one drift per coordinate)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.config import config_from_dict
from workbench.core.sde import SDES, CustomSDE, build_sde, validate_sde_params
from workbench.errors import ConfigError, WorkbenchError

F64 = torch.float64

# Everything an experiment with the custom SDE must set besides the SDE itself.
_OK = {
    "loss": {"kind": "ssm", "weighting": "none"},
    "model": {"output": "score"},
    "sample": {"denoise": False},
}


def _config(data: dict, sde: dict, **sections: dict):
    tree = {"data": data, "sde": {"kind": "custom", **sde}, **_OK}
    for name, keys in sections.items():
        tree[name] = {**tree.get(name, {}), **keys}
    return config_from_dict(tree)


def test_registered_with_documented_params() -> None:
    assert SDES.get("custom") is CustomSDE
    names = [p.name for p in CustomSDE.params]
    assert names == ["drift", "g", "T", "prior", "dt"]
    assert all(p.help for p in CustomSDE.params)


def test_drift_per_coordinate_with_x_alias_and_time() -> None:
    x = torch.tensor([[-1.5], [0.0], [0.5], [2.0]], dtype=F64)
    dw = build_sde("custom", {"drift": "-4*x*(x^2 - 1)"})
    assert dw.dim == 1
    assert torch.allclose(dw.drift(x, 0.3), -4 * x * (x * x - 1))
    same = build_sde("custom", {"drift": "-4*x1*(x1^2 - 1)"})
    assert torch.allclose(same.drift(x, 0.3), dw.drift(x, 0.3))
    # a rotation with a time-dependent pull, per-sample times
    rot = build_sde("custom", {"drift": "-t*x1 - x2; x1 - t*x2", "g": "sqrt(1 + t)"})
    y = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    t = torch.linspace(0.1, 0.9, 5, dtype=F64)
    want = torch.stack([-t * y[:, 0] - y[:, 1], y[:, 0] - t * y[:, 1]], -1)
    assert torch.allclose(rot.drift(y, t), want)
    assert torch.allclose(rot.diffusion(t), torch.sqrt(1 + t))
    # a list of components is the same SDE as the ';' form
    listed = validate_sde_params("custom", {"drift": ["-t*x1 - x2", "x1 - t*x2"]})
    assert listed["drift"] == "-t*x1 - x2; x1 - t*x2"
    # a constant component still answers one value per sample
    const = build_sde("custom", {"drift": "1; -x1"})
    assert torch.allclose(const.drift(y, 0.5)[:, 0], torch.ones(5, dtype=F64))


@pytest.mark.parametrize(
    ("params", "key", "fragment"),
    [
        ({"drift": "-x3"}, "drift", "unknown name 'x3'"),
        ({"drift": "-x1; -y"}, "drift", "component 2 of 2: unknown name 'y'"),
        ({"drift": "-x1; "}, "drift", "component 2 of 2 is empty"),
        ({"drift": "-x1 +"}, "drift", "expected"),
        ({"drift": []}, "drift", "one per coordinate"),
        ({"g": "sqrt(t - 0.5)"}, "g", "fails at t = 0"),
        ({"g": "0"}, "g", "zero on all of"),
        ({"g": "x"}, "g", "unknown name 'x'"),
        ({"prior": "flat"}, "prior", "'simulation'"),
        ({"dt": 0.5}, "dt", "<= 0.1"),
    ],
)
def test_bad_expressions_and_settings_name_their_key(params, key, fragment) -> None:
    with pytest.raises(ConfigError) as info:
        validate_sde_params("custom", params)
    assert info.value.key == key
    assert fragment in info.value.message


def test_config_refuses_dsm_with_a_suggestion_and_other_kernel_settings() -> None:
    data = {"name": "gmm1d"}
    with pytest.raises(ConfigError) as info:
        config_from_dict({"data": data, "sde": {"kind": "custom"}})
    assert info.value.key == "loss.kind"
    assert "closed form" in info.value.message and "'ssm'" in info.value.message
    for section, keys, key in [
        ("loss", {"weighting": "sigma2"}, "loss.weighting"),
        (
            "loss",
            {"weighting": "likelihood", "importance_sampling": True},
            "loss.importance_sampling",
        ),
        ("model", {"output": "eps"}, "model.output"),
        ("sample", {"denoise": True}, "sample.denoise"),
    ]:
        with pytest.raises(ConfigError) as info:
            _config(data, {}, **{section: keys})
        assert info.value.key == key, (section, keys)
    # ... and the same experiment with a linear SDE keeps its defaults
    assert config_from_dict({"data": data}).loss.kind == "dsm"


def test_config_checks_the_component_count_against_the_data() -> None:
    ok = _config({"name": "moons"}, {"drift": "-x1; -x2"})
    assert ok.sde.params["drift"] == "-x1; -x2"
    with pytest.raises(ConfigError) as info:
        _config({"name": "moons"}, {"drift": "-4*x*(x^2 - 1)"})
    assert info.value.key == "sde.drift"
    assert "1 component(s) but the data have 2" in info.value.message
    with pytest.raises(ConfigError) as info:
        _config({"name": "gmm1d"}, {"drift": "-x1; -x2"})
    assert info.value.key == "sde.drift"
    with pytest.raises(ConfigError) as info:
        _config(
            {"name": "gmm", "means": [[0, 0, 0], [1, 1, 1]], "stds": [1, 1], "weights": [1, 1]},
            {"drift": "-x1; -x2; -x3", "prior": "fpk"},
        )
    assert info.value.key == "sde.prior" and "1-D and 2-D" in info.value.message
    # at run time too, for data whose dimension the config cannot know without the file
    sde = build_sde("custom", {"drift": "-x1; -x2"})
    with pytest.raises(ConfigError, match="2 component"):
        sde.drift(torch.zeros(4, 3), 0.0)


def test_prior_needs_a_bank_then_resamples_it() -> None:
    sde = build_sde("custom", {"drift": "-x1; -x2", "g": "1"})
    with pytest.raises(WorkbenchError, match="simulated particles, and none are set"):
        sde.prior_sample((4, 2))
    gen = torch.Generator().manual_seed(1)
    bank = torch.randn(5000, 2, generator=gen, dtype=F64) * torch.tensor([1.0, 0.5]) + 3.0
    sde.set_terminal_bank(bank)
    z = sde.prior_sample((20000, 2), generator=torch.Generator().manual_seed(2), dtype=F64)
    assert z.shape == (20000, 2) and z.dtype == F64
    # every draw is one of the bank's particles
    assert torch.isin(z[:, 0], bank[:, 0]).all()
    # logp is the fitted Gaussian's: compare with the exact N(3, diag(1, 0.25)) where the fit
    # is within its sampling error (means within ~0.03, variances within ~4%)
    pts = torch.tensor([[3.0, 3.0], [4.0, 2.5]], dtype=F64)
    exact = -0.5 * (((pts - 3.0) / torch.tensor([1.0, 0.5])) ** 2).sum(-1) - math.log(
        2 * math.pi * 0.5
    )
    assert torch.allclose(sde.prior_logp(pts), exact, atol=0.1)


def test_gaussian_prior_matches_the_bank_moments() -> None:
    sde = build_sde("custom", {"drift": "-x", "prior": "gaussian"})
    bank = 2.0 + 0.5 * torch.randn(4000, 1, generator=torch.Generator().manual_seed(3))
    sde.set_terminal_bank(bank)
    z = sde.prior_sample((40000, 1), generator=torch.Generator().manual_seed(4), dtype=F64)
    # not the bank's particles but fresh Gaussian draws with its moments (4 standard errors)
    assert not torch.isin(z[:100, 0], bank[:, 0].to(F64)).any()
    se_mean = float(bank.std()) / math.sqrt(40000)
    assert abs(float(z.mean()) - float(bank.mean())) < 4 * se_mean
    assert abs(float(z.std()) / float(bank.std()) - 1) < 4 / math.sqrt(2 * 40000)


def test_bank_with_non_finite_values_refused() -> None:
    sde = build_sde("custom", {"drift": "-x"})
    with pytest.raises(WorkbenchError, match="non-finite"):
        sde.set_terminal_bank(torch.tensor([[0.0], [math.inf], [1.0]]))


def test_fpk_prior_samples_and_scores_the_grid_density() -> None:
    sde = build_sde("custom", {"drift": "-x", "prior": "fpk"})
    with pytest.raises(WorkbenchError, match="Fokker-Planck solution at T"):
        sde.prior_sample((4, 1))
    axis = np.linspace(-6.0, 8.0, 701)  # cells of 0.02 around N(1, 1.5^2)
    dens = np.exp(-0.5 * ((axis - 1.0) / 1.5) ** 2)
    sde.set_prior_density([axis], dens)
    n = 40000
    z = sde.prior_sample((n, 1), generator=torch.Generator().manual_seed(5), dtype=F64)
    # the uniform jitter within a cell adds dx^2/12 = 3e-5 to the variance: negligible
    assert abs(float(z.mean()) - 1.0) < 4 * 1.5 / math.sqrt(n)
    assert abs(float(z.std()) / 1.5 - 1) < 4 / math.sqrt(2 * n)
    exact = -0.5 * ((z[:5, 0] - 1.0) / 1.5) ** 2 - math.log(1.5 * math.sqrt(2 * math.pi))
    # log p of the cell holding z: within the density's change over half a cell
    assert torch.allclose(sde.prior_logp(z[:5]), exact, atol=0.02)
    assert float(sde.prior_logp(torch.tensor([[20.0]], dtype=F64))) < -600
