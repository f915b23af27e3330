"""Forward particles: the linear cloud draws p_t exactly, reuses its draws, and the simulated
cloud serves the nearest snapshot."""

from __future__ import annotations

import numpy as np

from tests.core.conftest import experiment
from workbench.core.clouds import ForwardCloud, SimulatedCloud


def test_forward_cloud_moments_match_the_exact_marginal() -> None:
    state = experiment(**{"data.name": "8gaussians"})
    n = 20000
    cloud = ForwardCloud(state, n=n, seed=1)
    for t in (0.0, 0.3, 1.0):
        law = state.truth.mixture_at(t)
        x = cloud.at(t)
        se = np.sqrt(law.covariance().diagonal().numpy() / n)
        assert np.all(np.abs(x.mean(0) - law.mean().numpy()) < 5 * se)
        assert np.allclose(np.cov(x.T), law.covariance().numpy(), rtol=0.05, atol=0.02)
    times = np.array([0.1, 0.6])
    assert np.allclose(cloud.at_many(times)[1], cloud.at(0.6))
    m, s = cloud.coeffs(0.6)
    assert np.isclose(cloud.half_width(0.6), 1.1 * m * cloud.q + 4 * s)
    # another SDE on the same data: the same draws, nothing recomputed
    other = experiment(**{"data.name": "8gaussians", "sde.kind": "ve"})
    again = ForwardCloud(other, n=n, seed=1, reuse=cloud)
    assert again.x0 is cloud.x0 and again.z is cloud.z


def test_simulated_cloud_gives_the_nearest_snapshot() -> None:
    x0 = np.zeros((5, 1))
    times = np.array([0.5, 1.0])
    states = np.stack([np.full((5, 1), 1.0), np.full((5, 1), 2.0)])
    cloud = SimulatedCloud(x0, times, states)
    assert cloud.at(0.2)[0, 0] == 0.0 and cloud.at(0.3)[0, 0] == 1.0 and cloud.at(0.9)[0, 0] == 2.0
    assert cloud.at_many(np.array([0.0, 1.0]))[:, 0, 0].tolist() == [0.0, 2.0]
    m, s = cloud.coeffs(np.array([0.1, 0.2]))
    assert (m == 1).all() and (s == 0).all()
    assert cloud.half_width(1.0) > 2.0 and np.array_equal(cloud.x0, x0)
