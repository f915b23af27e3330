"""Comparing two sample sets: seeded subsamples, metrics beside their noise floors, cancel."""

from __future__ import annotations

import numpy as np
import torch

from workbench.core.compare import COMPARE_METRICS, compare_samples, subsample
from workbench.core.data import build_dataset


def test_subsample_is_seeded_ordered_and_flattened() -> None:
    x = np.arange(200.0).reshape(100, 2)
    a, b = subsample(x, 10), subsample(x, 10)
    assert np.array_equal(a, b) and a.shape == (10, 2) and np.all(np.diff(a[:, 0]) > 0)
    assert np.array_equal(subsample(x, 500), x)
    assert subsample(np.zeros((4, 2, 3)), 10).shape == (4, 6)


def test_same_law_sits_at_its_floor_and_another_law_above_it() -> None:
    data = build_dataset("8gaussians")
    n = 400
    gen = torch.Generator().manual_seed(5)
    a = data.sample(n, gen, dtype=torch.float64).numpy()
    b = data.sample(n, gen, dtype=torch.float64).numpy()
    same = compare_samples(a, b, data, repeats=5)
    far = compare_samples(a, b + 3.0, data, repeats=5)
    assert same["n"] == n and set(same["metrics"]) == {name for name, _ in COMPARE_METRICS}
    for name in same["metrics"]:
        value, (mean, std) = same["metrics"][name]
        far_value = far["metrics"][name][0]
        assert value < mean + 5 * std + 1e-12  # two draws of one law: noise only
        assert far_value > mean + 10 * std  # a shift of 3 is far beyond the noise
    none = compare_samples(a, b, None)
    assert all(floor is None for _, floor in none["metrics"].values())
    assert compare_samples(a, b, data, cancelled=lambda: True)["metrics"] == {}
