"""The samplers written in m(t), s(t) of a linear SDE (DDIM, DPM-Solver++, Karras's Heun, Euler
ancestral) and the EDM time grid spaced in sigma = s/m.

Deterministic samplers are checked for their order of convergence against a high-accuracy
solution of the same probability-flow ODE from the same x_T; stochastic ones for the law they
land on, by the mean log-density under the exact 8gaussians mixture (n = 20000).
"""

import math

import pytest
import torch

from workbench.core.samplers import time_grid
from workbench.core.sde import build_sde

F64 = torch.float64


# --------------------------------------------------------------------------------------------
# time grids
# --------------------------------------------------------------------------------------------
def test_edm_grid_spaces_sigma_as_karras() -> None:
    """VE, 100 steps, rho = 7: the count of sigma_i < 0.1 is Karras's closed form: sigma_i < c
    iff i > N (A - c^(1/rho)) / (A - B), A = sigma_max^(1/rho), B = sigma_min^(1/rho)."""
    sde, n, rho, eps = build_sde("ve"), 100, 7.0, 1e-3
    t = time_grid("edm", n, sde.T, eps, rho, sde)
    m, s = sde.marginal_coeffs(t)
    sigma = (s / m).to(F64)
    ends = sde.marginal_coeffs(torch.tensor([sde.T, eps], dtype=F64))
    sig_max, sig_min = (ends[1] / ends[0]).tolist()
    a, b, c = sig_max ** (1 / rho), sig_min ** (1 / rho), 0.1 ** (1 / rho)
    k = n * (a - c) / (a - b)
    expected = n - math.floor(k)
    assert int((sigma < 0.1).sum()) == expected
    assert expected / (n + 1) == pytest.approx(0.25, abs=0.01)  # the brief's 25%
    # and every sigma_i is Karras's, to the bisection's float64 resolution
    i = torch.arange(n + 1, dtype=F64) / n
    karras = (a + i * (b - a)) ** rho
    torch.testing.assert_close(sigma, karras, rtol=1e-9, atol=0.0)


@pytest.mark.parametrize("kind", ["vp", "subvp", "cosine", "linear"])
def test_edm_grid_inverts_sigma_for_every_linear_sde(kind: str) -> None:
    sde = build_sde(kind)
    t = time_grid("edm", 30, sde.T, 1e-3, 7.0, sde)
    m, s = sde.marginal_coeffs(t)
    log_sigma = torch.log((s / m).to(F64))
    # rho-power spacing: sigma_i^(1/rho) is an arithmetic sequence
    root = torch.exp(log_sigma / 7.0)
    torch.testing.assert_close(root.diff(), root.diff().mean().expand(30), rtol=1e-7, atol=0.0)


def test_power_t_is_the_old_edm_grid_bit_for_bit() -> None:
    for steps, T, eps, rho in [(100, 1.0, 1e-3, 7.0), (37, 2.0, 1e-5, 3.0), (1, 1.0, 0.5, 1.0)]:
        i = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
        a, b = T ** (1.0 / rho), eps ** (1.0 / rho)
        old = (a + i * (b - a)) ** rho
        old[0], old[-1] = T, eps
        assert torch.equal(time_grid("power_t", steps, T, eps, rho), old)


def test_edm_grid_refuses_a_non_linear_sde_in_one_line() -> None:
    from workbench.errors import ConfigError

    sde = build_sde("custom", {"drift": "-x1^3"})
    with pytest.raises(ConfigError) as exc:
        time_grid("edm", 10, sde.T, 1e-3, 7.0, sde)
    assert exc.value.key == "grid" and "\n" not in str(exc.value)
    assert "linear" in str(exc.value)
