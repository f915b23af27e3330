import pytest
import torch

from workbench.core.empirical import EmpiricalMarginal
from workbench.core.mixture import GaussianMixture
from workbench.core.sde import build_sde
from workbench.errors import WorkbenchError

F64 = torch.float64


def data(n: int = 50, d: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("kind", ["vp", "ve", "subvp"])
def test_log_prob_is_the_noised_empirical_mixture(kind: str) -> None:
    sde = build_sde(kind)
    x_data = data()
    ref = EmpiricalMarginal(x_data, sde)
    t = 0.3
    m, s = (float(v) for v in sde.marginal_coeffs(torch.tensor(t, dtype=F64)))
    mixture = GaussianMixture.isotropic(x_data, 0.0).noised(m, s)  # point masses, noised
    x = torch.randn(40, 2, dtype=F64) * 2
    torch.testing.assert_close(ref.log_prob(x, t), mixture.log_prob(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("d", [1, 2, 5])
def test_score_is_the_gradient_of_log_prob(d: int) -> None:
    ref = EmpiricalMarginal(data(80, d), build_sde("vp"), block=7)
    x = (torch.randn(30, d, dtype=F64) * 2).requires_grad_(True)
    t = torch.rand(30, dtype=F64) * 0.9 + 0.05
    (grad,) = torch.autograd.grad(ref.log_prob(x, t).sum(), x)
    torch.testing.assert_close(ref.score(x.detach(), t), grad, rtol=1e-9, atol=1e-9)


def test_blocks_do_not_change_the_answer() -> None:
    x_data = data(1000)
    x = torch.randn(20, 2, dtype=F64)
    a = EmpiricalMarginal(x_data, build_sde("vp"), block=33)
    b = EmpiricalMarginal(x_data, build_sde("vp"), block=4096)
    torch.testing.assert_close(a.score(x, 0.2), b.score(x, 0.2))
    torch.testing.assert_close(a.log_prob(x, 0.2), b.log_prob(x, 0.2))


def test_at_small_t_the_score_points_to_the_nearest_training_point() -> None:
    """Why an unlimited-capacity DSM solution memorises its data."""
    sde = build_sde("vp")
    x_data = data(20)
    ref = EmpiricalMarginal(x_data, sde)
    t = 1e-3
    m, s = (float(v) for v in sde.marginal_coeffs(torch.tensor(t, dtype=F64)))
    x = m * x_data[:5] + 0.3 * s * torch.randn(5, 2, dtype=F64)
    step = ref.score(x, t) * s * s  # the denoising step E[m x_i | x] - x
    torch.testing.assert_close(x + step, m * x_data[:5], rtol=0, atol=1e-6)


def test_non_linear_sde_refused() -> None:
    from workbench.core.sde import SDE

    class Cubic(SDE):
        def drift(self, x, t):
            return -(x**3)

        def diffusion(self, t):
            return torch.ones_like(torch.as_tensor(t))

        def prior_sample(self, shape, generator=None, **kw):
            return torch.randn(shape, generator=generator)

        def prior_logp(self, z):
            return -0.5 * (z**2).sum(-1)

    with pytest.raises(WorkbenchError, match="linear SDE"):
        EmpiricalMarginal(data(), Cubic())
