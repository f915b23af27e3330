"""Grid numerics of the views: cell centres, histograms, coarsening, L1 with its noise yardstick,
(bi)linear interpolation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.core.grids import (
    coarsen,
    grid_centres,
    grid_points,
    histogram,
    interpolate_grid,
    l1_distance,
    marginals,
)


def test_centres_points_and_histogram_agree() -> None:
    c = grid_centres(2.0, 4)
    assert np.allclose(c, [-1.5, -0.5, 0.5, 1.5])
    pts = grid_points(2.0, 4, 2)
    # one point per cell, in the order of a (4, 4) array indexed [i, j]
    counts = histogram(pts, 2.0, 4)
    assert (counts == 1).all()
    assert np.allclose(pts.reshape(4, 4, 2)[2, 1], [c[2], c[1]])
    assert grid_points(2.0, 4, 1).shape == (4, 1)


def test_histogram_skips_outside_and_non_finite_points() -> None:
    pts = np.array([[0.0, 0.0], [0.99, -0.99], [1.0, 0.0], [np.nan, 0.0], [-1.0, -1.0]])
    counts = histogram(pts, 1.0, 4)
    assert counts.sum() == 3 and counts[2, 2] == 1 and counts[3, 0] == 1 and counts[0, 0] == 1


def test_coarsen_keeps_the_mass() -> None:
    a = np.arange(64.0).reshape(8, 8)
    b = coarsen(a, 4)
    assert b.shape == (2, 2) and b.sum() == a.sum() and b[0, 0] == a[:4, :4].sum()
    assert np.array_equal(coarsen(np.arange(6.0), 2), [1.0, 5.0, 9.0])


def test_l1_distance_matches_its_noise_yardstick() -> None:
    p = np.full(100, 0.01)
    rng = np.random.default_rng(1)
    n = 10000
    dists = [l1_distance(np.bincount(rng.integers(0, 100, n), minlength=100), p) for _ in range(50)]
    mean = np.mean([d for d, _ in dists])
    noise = dists[0][1]
    assert noise == pytest.approx(math.sqrt(2 / (math.pi * n)) * 100 * math.sqrt(0.01 * 0.99))
    assert mean == pytest.approx(noise, rel=0.1)
    assert all(math.isnan(v) for v in l1_distance(np.zeros(3), np.ones(3)))


def test_interpolation_is_exact_for_linear_functions() -> None:
    axes = [np.linspace(-1, 1, 5), np.linspace(0, 2, 7)]
    X, Y = np.meshgrid(*axes, indexing="ij")
    values = 2 * X - 3 * Y + 1
    rng = np.random.default_rng(0)
    pts = np.stack([rng.uniform(-1, 1, 50), rng.uniform(0, 2, 50)], 1)
    got = interpolate_grid(axes, values, pts, math.nan)
    assert np.allclose(got, 2 * pts[:, 0] - 3 * pts[:, 1] + 1)
    outside = interpolate_grid(axes, values, np.array([[1.5, 1.0]]), 0.0)
    assert outside[0] == 0.0
    masked = values.copy()
    masked[2, 3] = np.nan
    got = interpolate_grid(axes, masked, np.array([[0.1, 1.0], [-0.9, 0.1]]), 0.0)
    assert np.isnan(got[0]) and np.isfinite(got[1])


def test_marginals_of_a_product_density_are_its_factors_with_the_mass_kept() -> None:
    # p(x1, x2) = N(x1; 1, 0.5^2) N(x2; -2, 1.5^2) on an unequal box (a window in data units)
    low, high, bins = np.array([-1.0, -9.0]), np.array([3.0, 5.0]), 200
    c1 = low[0] + (np.arange(bins) + 0.5) * (high[0] - low[0]) / bins
    c2 = low[1] + (np.arange(bins) + 0.5) * (high[1] - low[1]) / bins

    def normal(x: np.ndarray, m: float, s: float) -> np.ndarray:
        return np.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))

    f1, f2 = normal(c1, 1.0, 0.5), normal(c2, -2.0, 1.5)
    p = f1[:, None] * f2[None, :]
    (x1, m1), (x2, m2) = marginals(p, low, high)
    assert np.allclose(x1, c1) and np.allclose(x2, c2)
    # each marginal is its factor times the other factor's mass on the window (~1 here)
    dx1, dx2 = (high - low) / bins
    assert np.allclose(m1, f1 * f2.sum() * dx2) and np.allclose(m2, f2 * f1.sum() * dx1)
    assert np.allclose(m1, f1, atol=1e-3) and np.allclose(m2, f2, atol=1e-3)
    total = p.sum() * dx1 * dx2
    assert m1.sum() * dx1 == pytest.approx(total) and m2.sum() * dx2 == pytest.approx(total)
