"""The normaliser's plotting maps: points, densities and scores in data units."""

from __future__ import annotations

import numpy as np
import torch

from workbench.core.data import Normalizer
from workbench.core.mixture import GaussianMixture


def test_density_and_score_in_data_units_match_the_data_law() -> None:
    norm = Normalizer.standardise(torch.tensor([3.0, -1.0]), torch.tensor([2.0, 0.5]), (2,))
    # the mixture built from float32 tensors: agreement to float32 precision
    data_law = GaussianMixture(
        torch.tensor([1.0]), torch.tensor([[4.0, -2.0]]), torch.tensor([[[1.5, 0.3], [0.3, 0.8]]])
    )
    model_law = norm.to_model_mixture(data_law)
    y = np.random.default_rng(0).normal(size=(50, 2))
    x = norm.points_to_data(y)
    assert np.allclose(norm.to_model(torch.from_numpy(x)).numpy(), y)
    p_model = model_law.density_np(y)
    assert np.allclose(norm.density_to_data(p_model, 2), data_law.density_np(x), rtol=1e-6)
    s_model = model_law.score_np(y)
    assert np.allclose(norm.score_to_data(s_model), data_law.score_np(x), rtol=1e-6)
    lo, hi = norm.rect_to_data(1.0, 2)
    assert np.allclose(lo, [1.0, -1.5]) and np.allclose(hi, [5.0, -0.5])
