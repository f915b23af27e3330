"""Log-likelihoods through the probability-flow ODE, checked against exact mixture densities.

With the analytic score the probability-flow ODE is exact, so log p_eps(x) from the ODE must
match the mixture's own log-density (eps = 1e-5 makes p_eps and p_0 indistinguishable here) up
to the ODE solver's tolerance, for every sample. Hutchinson's estimator is unbiased, with a
per-sample sd of ~1 nat in 2-D: its mean over n samples has a standard error ~1/sqrt(n).
"""

import math

import pytest
import torch

from workbench.core.data import build_dataset
from workbench.core.likelihood import (
    Cancelled,
    LikelihoodResult,
    bits_per_dim,
    data_units_logp,
    log_likelihood,
)
from workbench.core.mixture import GaussianMixture
from workbench.core.nets import AnalyticScoreModel
from workbench.core.sde import build_sde
from workbench.errors import ConfigError

F64 = torch.float64
DATA = build_dataset("8gaussians")
NORM = DATA.normalizer()
MIX = NORM.to_model_mixture(DATA.mixture())


@pytest.fixture(autouse=True)
def one_thread():
    """Small batches: a second intra-op thread gains little, and where the cores are shared its
    spin-waiting can make a solve many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def data_points(n: int, seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    return MIX.sample(n, torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("kind", ["vp", "ve", "subvp"])
def test_exact_divergence_matches_the_mixture_density(kind: str) -> None:
    sde = build_sde(kind)
    x = data_points(1000)
    result = log_likelihood(sde, AnalyticScoreModel(MIX, sde), x, divergence="exact")
    truth = MIX.log_prob(x)
    assert isinstance(result, LikelihoodResult) and result.logp.shape == (1000,)
    assert abs(float((result.logp - truth).mean())) / 2 < 0.02  # nats per dimension
    assert float((result.logp - truth).abs().max()) < 5e-3  # in fact each sample is exact
    assert float(torch.corrcoef(torch.stack([result.logp, truth]))[0, 1]) > 0.9999
    assert 20 < result.nfe < 500


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(probe: str) -> None:
    sde = build_sde("vp")
    n = 4000
    x = data_points(n, seed=1)
    gen = torch.Generator().manual_seed(2)
    result = log_likelihood(
        sde, AnalyticScoreModel(MIX, sde), x, divergence="hutchinson", probe=probe, generator=gen
    )
    err = result.logp - MIX.log_prob(x)
    se = float(err.std()) / math.sqrt(n)
    assert abs(float(err.mean())) / 2 < 0.05
    assert abs(float(err.mean())) < 4 * se  # unbiased: the mean error is noise
    # one probe per sample: each estimate is noisy (sd ~1 nat for Rademacher, ~1.5 Gaussian)
    assert float(torch.corrcoef(torch.stack([result.logp, MIX.log_prob(x)]))[0, 1]) > 0.3


def test_float32_and_fixed_step_methods() -> None:
    sde = build_sde("ve")
    model = AnalyticScoreModel(MIX, sde)
    x = data_points(300, seed=3)
    truth = MIX.log_prob(x)
    r32 = log_likelihood(sde, model, x.float())
    assert r32.logp.dtype == torch.float32
    assert float((r32.logp.double() - truth).abs().max()) < 5e-3
    errors = {}
    for method in ("euler", "heun", "rk4"):
        r = log_likelihood(sde, model, x, method=method, steps=50)
        assert r.nfe == 50 * {"euler": 1, "heun": 2, "rk4": 4}[method]
        errors[method] = float((r.logp - truth).abs().mean())
    assert errors["rk4"] < errors["heun"] < errors["euler"] and errors["rk4"] < 1e-3


def test_auto_is_exact_in_low_and_hutchinson_in_high_dimension() -> None:
    sde = build_sde("vp")
    x = data_points(50, seed=4)
    model = AnalyticScoreModel(MIX, sde)
    auto = log_likelihood(sde, model, x, generator=torch.Generator().manual_seed(0))
    exact = log_likelihood(sde, model, x, divergence="exact")
    torch.testing.assert_close(auto.logp, exact.logp)

    d = 12  # a full covariance: with an isotropic one a Rademacher probe would be exact
    a = torch.randn(d, d, generator=torch.Generator().manual_seed(3), dtype=F64)
    gauss = GaussianMixture.full(
        torch.zeros(1, d, dtype=F64), (a @ a.T / d + 0.1 * torch.eye(d, dtype=F64))[None]
    )
    x12 = gauss.sample(40, torch.Generator().manual_seed(5), dtype=F64)
    model12 = AnalyticScoreModel(gauss, sde)
    r1 = log_likelihood(sde, model12, x12, generator=torch.Generator().manual_seed(1))
    r2 = log_likelihood(sde, model12, x12, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(r1.logp, r2.logp)  # random probes: Hutchinson
    exact12 = log_likelihood(sde, model12, x12, divergence="exact")
    torch.testing.assert_close(exact12.logp, gauss.log_prob(x12), rtol=0, atol=5e-3)


def test_image_shaped_samples() -> None:
    sde = build_sde("vp")
    gauss = GaussianMixture.isotropic(torch.zeros(1, 4, dtype=F64), 0.5)
    x = gauss.sample(30, torch.Generator().manual_seed(0), dtype=F64)
    result = log_likelihood(sde, AnalyticScoreModel(gauss, sde), x.reshape(30, 1, 2, 2))
    torch.testing.assert_close(result.logp, gauss.log_prob(x), rtol=0, atol=5e-3)


def test_chunks_progress_and_cancel() -> None:
    sde = build_sde("vp")
    model = AnalyticScoreModel(MIX, sde)
    x = data_points(100, seed=6)
    whole = log_likelihood(sde, model, x)
    seen: list[float] = []
    chunked = log_likelihood(sde, model, x, chunk_size=30, progress=seen.append)
    assert chunked.logp.shape == (100,)
    torch.testing.assert_close(chunked.logp, whole.logp, rtol=0, atol=2e-3)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0) and 0 < seen[0] < 0.25

    state = {"rows": 0}

    def cancel() -> bool:  # stop in the third chunk
        state["rows"] += 1
        return state["rows"] > len(seen) // 4 * 2 + 2

    with pytest.raises(Cancelled) as exc:
        log_likelihood(sde, model, x, chunk_size=30, cancel=cancel)
    partial = exc.value.partial
    assert partial.logp.shape[0] in (30, 60)
    torch.testing.assert_close(partial.logp, chunked.logp[: partial.logp.shape[0]])


def test_units_and_bits() -> None:
    sde = build_sde("vp")
    x_data = DATA.sample(200, torch.Generator().manual_seed(7)).to(F64)
    logp_model = log_likelihood(sde, AnalyticScoreModel(MIX, sde), NORM.to_model(x_data)).logp
    logp_data = data_units_logp(logp_model, NORM)
    torch.testing.assert_close(logp_data, DATA.log_prob(x_data).to(F64), rtol=0, atol=5e-3)
    bpd = bits_per_dim(logp_data, 2)
    torch.testing.assert_close(bpd, -logp_data / (2 * math.log(2)))
    assert bits_per_dim(-math.log(2) * 6, 3) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        ({"divergence": "trace"}, "divergence"),
        ({"probe": "sphere"}, "probe"),
        ({"method": "dopri8"}, "integrator"),
        ({"eps": 0.0}, "eps"),
        ({"method": "rk4", "steps": 0}, "steps"),
    ],
)
def test_bad_settings_name_their_key(kw: dict, key: str) -> None:
    sde = build_sde("vp")
    with pytest.raises(ConfigError) as exc:
        log_likelihood(sde, AnalyticScoreModel(MIX, sde), data_points(4), **kw)
    assert exc.value.key == key
