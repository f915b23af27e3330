"""The references in core: analytic p_t and score through the one mixture, the empirical sums
against the core marginal, grids, the data-units marginal; and core's imports stay plain."""

from __future__ import annotations

import numpy as np
import torch

from tests.core.conftest import experiment
from workbench.core.data import Normalizer
from workbench.core.grids import grid_points
from workbench.core.mixture import GaussianMixture
from workbench.core.reference import (
    AnalyticReference,
    EmpiricalReference,
    data_units_marginal,
    reference_grid,
    unavailable_reason,
)
from workbench.core.sde import build_sde


def test_analytic_reference_is_the_truths_mixture() -> None:
    state = experiment(
        **{
            "data.name": "gmm",
            "data.means": [[0.0, 0.0], [2.0, 1.0]],
            "data.covs": [[[1.0, 0.5], [0.5, 1.0]], [[0.3, -0.1], [-0.1, 0.2]]],
            "sde.kind": "ve",
        }
    )
    ref, truth = AnalyticReference(state), state.truth
    pts = np.random.default_rng(0).normal(size=(500, 2)) * 3
    x = torch.from_numpy(pts)
    for t in (0.0, 0.05, 0.7):
        p = torch.exp(truth.log_prob(x, t)).numpy()
        assert np.allclose(ref.density(t, pts), p, rtol=1e-10, atol=1e-300)
        assert np.allclose(ref.score(t, pts), truth.score(x, t).numpy(), rtol=1e-9)
    times = np.linspace(0, 1, 500)  # one time per point
    p = torch.exp(truth.log_prob(x, torch.from_numpy(times))).numpy()
    assert np.allclose(ref.density(times, pts), p, rtol=1e-10, atol=1e-300)
    grid = reference_grid(ref, 0.3, 4.0, 32)
    assert grid.shape == (32, 32)
    assert np.allclose(grid.ravel(), ref.density(0.3, grid_points(4.0, 32, 2)))
    assert abs(grid.sum() * (8.0 / 32) ** 2 - 1.0) < 0.02  # a density: mass 1 on the window


def test_empirical_numpy_sums_match_the_core_marginal() -> None:
    state = experiment(**{"data.name": "moons", "data.n": 300, "train.batch_size": 256})
    ref = EmpiricalReference(state)
    x = np.random.default_rng(1).normal(size=(200, 2))
    for t in (0.05, 0.5, 1.0):
        core = torch.exp(ref.marginal.log_prob(torch.from_numpy(x), t)).numpy()
        assert np.allclose(ref.density(t, x), core, rtol=1e-6, atol=1e-300)
        score = ref.marginal.score(torch.from_numpy(x), t).numpy()
        assert np.allclose(ref.score(t, x), score, rtol=1e-5, atol=1e-6 * np.abs(score).max())


def test_unavailable_kinds_say_why() -> None:
    state = experiment(**{"data.name": "digits"})
    assert unavailable_reason("empirical", state) is None
    assert "1-D and 2-D" in unavailable_reason("fpk", state)
    assert "Gaussian-mixture" in unavailable_reason("analytic", state)
    assert "unknown reference" in unavailable_reason("nope", state)
    assert unavailable_reason("analytic", None) == "no valid experiment"


def test_data_units_marginal_is_the_law_of_the_noised_data() -> None:
    gen = torch.Generator().manual_seed(3)
    mix = GaussianMixture.full(
        [[1.0, -2.0], [4.0, 0.5]], [[[0.5, 0.2], [0.2, 0.3]], [[0.2, 0.0], [0.0, 0.6]]], [1.0, 3.0]
    )
    norm = Normalizer.standardise([2.0, -1.0], [3.0, 0.5], (2,))
    sde = build_sde("vp", {})
    t = 0.4
    m, s = (float(v) for v in sde.marginal_coeffs(torch.tensor(t, dtype=torch.float64)))
    law = data_units_marginal(mix, sde, t, norm)
    # the sampler's picture: noise in model units, rows stored in data units
    n = 200_000
    y = norm.to_model(mix.sample(n, gen, dtype=torch.float64))
    x_t = norm.to_data(m * y + s * torch.randn(n, 2, generator=gen, dtype=torch.float64))
    se = (law.covariance().diagonal() / n).sqrt()
    assert torch.all((x_t.mean(0) - law.mean()).abs() < 5 * se)
    assert torch.allclose(torch.cov(x_t.T), law.covariance(), rtol=0.02, atol=0.02)
    # the formulas: mu_t = shift + scale m (mu - shift) / scale, C_t = m^2 C + s^2 scale^2
    scale, shift = torch.tensor([3.0, 0.5], dtype=torch.float64), torch.tensor([2.0, -1.0])
    assert torch.allclose(law.means, shift + m * (mix.means - shift))
    assert torch.allclose(law.covs, m * m * mix.covs + s * s * torch.diag(scale**2))
    assert torch.allclose(norm.to_data_mixture(norm.to_model_mixture(mix)).covs, mix.covs)
    # no normaliser: the model-unit marginal itself
    plain = data_units_marginal(mix, sde, t)
    assert torch.allclose(plain.covs, m * m * mix.covs + s * s * torch.eye(2, dtype=torch.float64))


def test_a_data_file_rewritten_in_place_changes_the_process_key(tmp_path):
    """The reference of a data file is keyed by its contents' size and time too: the same
    path with new points (a drawing saved over) must not reuse the old p_t."""
    import os

    from workbench.core.reference import process_key

    path = tmp_path / "points.npy"
    rng = np.random.default_rng(0)
    np.save(path, rng.normal(size=(200, 2)))
    before = process_key(experiment(**{"data.name": "file", "data.path": str(path)}))
    np.save(path, rng.normal(size=(300, 2)))
    os.utime(path, ns=(1, 10**18))  # a distinct mtime even on a coarse clock
    after = process_key(experiment(**{"data.name": "file", "data.path": str(path)}))
    assert before != after
    again = process_key(experiment(**{"data.name": "file", "data.path": str(path)}))
    assert after == again
