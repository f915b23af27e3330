"""Forward simulation of non-linear SDEs: paths, blow-up detection, the training cache, p_T."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from workbench.core.losses import build_loss
from workbench.core.sde import build_sde
from workbench.core.simulation import (
    SimulationCache,
    SimulationCancelledError,
    SimulationError,
    simulate,
    terminal_bank,
)

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ou(theta: float = 1.0, mu: float = 2.0, T: float = 1.0, dt: float = 2e-3):
    """dX = -theta (X - mu) dt + sqrt(2) dW: X_t | x0 ~ N(mu + (x0 - mu) e^{-theta t}, v(t)),
    v(t) = (1 - e^{-2 theta t}) / theta."""
    return build_sde("custom", {"drift": f"-{theta}*(x - {mu})", "g": "sqrt(2)", "T": T, "dt": dt})


def ou_moments(x0: float, t: float, theta: float = 1.0, mu: float = 2.0) -> tuple[float, float]:
    return mu + (x0 - mu) * math.exp(-theta * t), (1 - math.exp(-2 * theta * t)) / theta


def close(samples: torch.Tensor, mean: float, var: float, bias: float) -> bool:
    """Mean and variance within 4 standard errors plus the scheme's O(dt) bias allowance."""
    n = samples.numel()
    m, v = float(samples.mean()), float(samples.var())
    return (
        abs(m - mean) < 4 * math.sqrt(var / n) + bias
        and abs(v - var) < 4 * var * math.sqrt(2 / n) + bias
    )


def test_paths_have_the_ou_marginals_at_every_requested_time() -> None:
    n = 20000
    x0 = torch.full((n, 1), -1.0, dtype=F64)
    times = [0.0, 0.3, 1.0]
    states = simulate(ou(), x0, times, generator=gen(0))
    assert states.shape == (3, n, 1)
    assert torch.equal(states[0], x0)
    for k, t in enumerate(times[1:], start=1):
        mean, var = ou_moments(-1.0, t)
        # EM's weak error is O(dt) = 2e-3 here: within the allowance
        assert close(states[k], mean, var, bias=5e-3), (t, states[k].mean(), states[k].var())


def test_blow_up_is_detected_and_names_the_time() -> None:
    sde = build_sde("custom", {"drift": "x^3", "g": "0.1", "T": 1.0, "dt": 1e-3})
    # from x0 = 2, dx/dt = x^3 reaches infinity at t = 1/(2 x0^2) = 0.125
    with pytest.raises(SimulationError) as info:
        simulate(sde, torch.full((10, 1), 2.0, dtype=F64), [1.0], generator=gen(1))
    message = str(info.value)
    assert "non-finite at t = " in message and "drift" in message
    t_bad = float(message.split("t = ")[1].split(":")[0])
    assert 0.12 < t_bad < 0.2


def test_cancel_and_progress() -> None:
    seen: list[float] = []
    x0 = torch.zeros(8, 1, dtype=F64)
    simulate(ou(), x0, [0.5, 1.0], generator=gen(2), progress=seen.append)
    assert seen[-1] == 1.0 and all(0 < a <= b for a, b in itertools.pairwise(seen))
    with pytest.raises(SimulationCancelledError, match="cancelled at t = 0"):
        simulate(ou(), x0, [1.0], cancel=lambda: True)


def test_bad_times_refused() -> None:
    x0 = torch.zeros(2, 1)
    with pytest.raises(ValueError, match="increasing"):
        simulate(ou(), x0, [0.5, 0.2])
    with pytest.raises(ValueError, match="exceed T"):
        simulate(ou(), x0, [3.0])


def test_terminal_bank_sets_the_prior() -> None:
    sde = ou()
    x0 = torch.full((20000, 1), -1.0, dtype=F64)
    x_T = terminal_bank(sde, x0, generator=gen(3))
    assert sde.terminal_bank is not None and torch.equal(sde.terminal_bank, x_T)
    mean, var = ou_moments(-1.0, 1.0)
    z = sde.prior_sample((20000, 1), generator=gen(4), dtype=F64)
    # resampling the bank adds its own sampling error: allow twice the usual
    assert close(z, mean, var, bias=4 * math.sqrt(var / 20000) + 5e-3)


def test_cache_draws_have_the_marginal_at_continuous_times() -> None:
    sde = ou()
    cache = SimulationCache(sde, n_paths=8192, n_times=20, refresh_every=1000)
    x0 = torch.full((64, 1), -1.0, dtype=F64)
    # times between grid points (grid step 0.05): the state below t is advanced to t
    for t_value in (0.03, 0.37, 0.93):
        t = torch.full((8192,), t_value, dtype=F64)
        noise = torch.randn(8192, 1, generator=gen(5), dtype=F64)
        x = cache.draw(x0, t, noise, gen(6))
        mean, var = ou_moments(-1.0, t_value)
        # 8192 draws with replacement from 8192 cached paths: about twice the variance of as
        # many independent samples, hence the extra 2 standard errors
        assert close(x, mean, var, bias=5e-3 + 2 * math.sqrt(var / 8192)), (t_value, x.mean())
    assert cache.draws == 3 and cache.refreshes == 0


def test_cache_refreshes_a_block_of_paths_from_the_current_batch() -> None:
    sde = ou()
    cache = SimulationCache(sde, n_paths=64, n_times=10, refresh_every=2, refresh_fraction=0.25)
    t = torch.full((4,), 0.5, dtype=F64)
    noise = torch.zeros(4, 1, dtype=F64)
    cache.draw(torch.zeros(8, 1, dtype=F64), t, noise, gen(7))
    assert cache.states is not None and torch.all(cache.states[0] == 0)
    cache.draw(torch.zeros(8, 1, dtype=F64), t, noise, gen(8))
    # the third draw refreshes 16 of the 64 paths from the batch it is given
    cache.draw(torch.full((8, 1), 5.0, dtype=F64), t, noise, gen(9))
    assert cache.refreshes == 1
    starts = cache.states[0, :, 0]
    assert int((starts == 5.0).sum()) == 16 and int((starts == 0.0).sum()) == 48


def test_sliced_loss_trains_on_the_cache_of_a_custom_sde() -> None:
    sde = build_sde("custom", {"drift": "-4*x1*(x1^2 - 1); -x2", "g": "1"})
    loss = build_loss("ssm", {"weighting": "none"}, sde)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.SiLU(), torch.nn.Linear(16, 2))

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([x, t[:, None]], -1))

    x0 = torch.randn(32, 2, generator=gen(10))
    value = loss(model, x0, gen(11))
    value.backward()
    assert torch.isfinite(value)
    assert loss.cache is not None and loss.cache.draws == 1
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
