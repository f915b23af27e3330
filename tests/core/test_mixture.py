import math

import pytest
import torch

from workbench.core.mixture import GaussianMixture

F64 = torch.float64


def random_spd(k: int, d: int, gen: torch.Generator) -> torch.Tensor:
    a = torch.randn(k, d, d, generator=gen, dtype=F64)
    return a @ a.transpose(-1, -2) / d + 0.1 * torch.eye(d, dtype=F64)


def random_mixture(d: int, k: int = 3, seed: int = 0) -> GaussianMixture:
    gen = torch.Generator().manual_seed(seed)
    means = 2 * torch.randn(k, d, generator=gen, dtype=F64)
    weights = torch.rand(k, generator=gen, dtype=F64) + 0.2
    return GaussianMixture.full(means, random_spd(k, d, gen), weights)


@pytest.mark.parametrize("d", [1, 2, 5])
def test_log_prob_matches_torch_distributions(d: int) -> None:
    gmm = random_mixture(d)
    comps = torch.distributions.MultivariateNormal(gmm.means, covariance_matrix=gmm.covs)
    ref = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(gmm.weights), comps)
    x = torch.randn(50, d, dtype=F64) * 3
    torch.testing.assert_close(gmm.log_prob(x), ref.log_prob(x))


@pytest.mark.parametrize("d", [1, 2, 5])
def test_score_is_gradient_of_log_prob(d: int) -> None:
    gmm = random_mixture(d, seed=d)
    x = (torch.randn(40, d, dtype=F64) * 2).requires_grad_(True)
    (grad,) = torch.autograd.grad(gmm.log_prob(x).sum(), x)
    torch.testing.assert_close(gmm.score(x.detach()), grad, rtol=1e-10, atol=1e-12)


def test_moments_and_proportions_of_samples() -> None:
    gmm = random_mixture(3, k=4, seed=3)
    n = 200_000
    x, labels = gmm.sample_with_labels(n, torch.Generator().manual_seed(0), dtype=F64)
    cov = gmm.covariance()
    se_mean = torch.sqrt(torch.diagonal(cov) / n)
    assert torch.all((x.mean(0) - gmm.mean()).abs() < 5 * se_mean)
    # var of a sample covariance entry <= (C_ii C_jj + C_ij^2) * kurtosis-ish factor; 8 s.e. bound
    sd = torch.sqrt(torch.diagonal(cov))
    se_cov = 3 * torch.outer(sd, sd) / math.sqrt(n)
    assert torch.all((torch.cov(x.T) - cov).abs() < 5 * se_cov)
    props = torch.bincount(labels, minlength=4).to(F64) / n
    se_p = torch.sqrt(gmm.weights * (1 - gmm.weights) / n)
    assert torch.all((props - gmm.weights).abs() < 5 * se_p)


def test_affine_map_is_the_law_of_the_mapped_points() -> None:
    gmm = random_mixture(2, seed=5)
    shift = torch.tensor([1.0, -2.0], dtype=F64)
    scale = torch.tensor([2.0, 0.5], dtype=F64)
    y = torch.randn(30, 2, dtype=F64)
    x = y * scale + shift
    mapped = gmm.affine(shift, scale)
    # change of variables: log p_y(y) = log p_x(x) + sum log scale
    torch.testing.assert_close(mapped.log_prob(y), gmm.log_prob(x) + torch.log(scale).sum())


def test_noised_equals_per_point_coefficients() -> None:
    gmm = random_mixture(2, seed=7)
    x = torch.randn(20, 2, dtype=F64)
    m, s = 0.6, 0.9
    torch.testing.assert_close(gmm.noised(m, s).log_prob(x), gmm.log_prob(x, m, s))
    ms = torch.full((20,), m, dtype=F64)
    torch.testing.assert_close(
        gmm.score(x, ms, torch.full((20,), s, dtype=F64)), gmm.score(x, m, s)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(weights=[1.0], means=[[0.0, 0.0]], covs=[[[1.0, 0.5], [0.0, 1.0]]]), "symmetric"),
        (dict(weights=[1.0], means=[[0.0, 0.0]], covs=[[[1.0, 2.0], [2.0, 1.0]]]), "semi-definite"),
        (dict(weights=[1.0, 1.0], means=[[0.0, 0.0]], covs=[[[1.0, 0], [0, 1.0]]]), "disagree"),
        (dict(weights=[-1.0], means=[[0.0, 0.0]], covs=[[[1.0, 0], [0, 1.0]]]), "non-negative"),
    ],
)
def test_bad_mixtures(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GaussianMixture(*(torch.tensor(kwargs[k], dtype=F64) for k in ("weights", "means", "covs")))


def test_numpy_evaluation_is_the_torch_one_on_numpy_points() -> None:
    import numpy as np

    gmm = random_mixture(2, k=4, seed=2)
    pts = np.random.default_rng(0).normal(size=(300, 2)) * 3
    x = torch.from_numpy(pts)
    for m, s in ((1.0, 0.0), (0.6, 0.8)):
        p = gmm.density_np(pts, m, s)
        assert isinstance(p, np.ndarray) and p.dtype == np.float64 and p.shape == (300,)
        assert np.allclose(p, torch.exp(gmm.log_prob(x, m, s)).numpy(), rtol=1e-12)
        # the noised mixture, built on its own, has the same density and score
        noised = gmm.noised(m, s)
        assert np.allclose(p, noised.density_np(pts), rtol=1e-10)
        assert np.allclose(gmm.score_np(pts, m, s), noised.score_np(pts), rtol=1e-9, atol=1e-12)
    # one (m, s) per point
    m = np.linspace(0.2, 1.0, 300)
    s = np.sqrt(1 - m**2)
    got = gmm.score_np(pts, m, s)
    for i in (0, 150, 299):
        one = gmm.score_np(pts[i : i + 1], float(m[i]), float(s[i]))
        assert np.allclose(got[i], one[0], rtol=1e-12)


def test_score_is_the_gradient_of_log_prob() -> None:
    gmm = random_mixture(3, k=3, seed=4)
    x = (torch.randn(20, 3, dtype=F64) * 2).requires_grad_(True)
    grad = torch.autograd.grad(gmm.log_prob(x, 0.7, 0.5).sum(), x)[0]
    torch.testing.assert_close(gmm.score(x.detach(), 0.7, 0.5), grad)


def test_marginal_keeps_the_chosen_coordinates() -> None:
    gmm = random_mixture(3, k=2, seed=5)
    sub = gmm.marginal([0, 2])
    assert sub.dim == 2
    comps = torch.distributions.MultivariateNormal(
        gmm.means[:, [0, 2]], covariance_matrix=gmm.covs[:, [0, 2]][:, :, [0, 2]]
    )
    ref = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(gmm.weights), comps)
    x = torch.randn(40, 2, dtype=F64) * 2
    torch.testing.assert_close(sub.log_prob(x), ref.log_prob(x))
