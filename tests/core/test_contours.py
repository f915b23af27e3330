"""The one level finder (highest-density regions) and the one contour algorithm."""

from __future__ import annotations

import numpy as np

from workbench.core.contours import contour_segments, hdr_levels
from workbench.core.grids import grid_centres


def test_levels_hold_the_asked_mass() -> None:
    density = np.array([4.0, 3.0, 2.0, 1.0])
    assert hdr_levels(density, (0.5, 0.8)) == [3.0, 2.0]  # upper sets of 70 %, 90 %
    assert hdr_levels(np.zeros((4, 4))) == []  # no mass: nothing to outline
    assert hdr_levels(np.array([1.0, np.nan])) == []
    # a standard normal on a fine grid: the 50 % region is the disc of radius sqrt(2 ln 2)
    c = grid_centres(5.0, 200)
    X, Y = np.meshgrid(c, c, indexing="ij")
    p = np.exp(-0.5 * (X**2 + Y**2)) / (2 * np.pi)
    level50, level90 = hdr_levels(p)
    assert level50 > level90
    inside = p >= level50
    assert abs(p[inside].sum() * (c[1] - c[0]) ** 2 - 0.5) < 0.01
    sx, sy = contour_segments(p, c, c, level50)
    assert np.allclose(np.hypot(sx, sy), np.sqrt(2 * np.log(2)), atol=0.03)


def test_contour_segments_lie_on_the_level_set() -> None:
    xs = np.linspace(-2, 2, 81)
    X, Y = np.meshgrid(xs, xs, indexing="ij")
    sx, sy = contour_segments(X**2 + Y**2, xs, xs, 1.0)
    assert len(sx) % 2 == 0 and len(sx) > 40 and np.allclose(np.hypot(sx, sy), 1.0, atol=2e-3)
    sx, sy = contour_segments(X * Y, xs, xs, 0.5)  # saddles included
    assert len(sx) > 0 and np.allclose(sx * sy, 0.5, atol=1e-9)
    # axes of different lengths and spacings: z[i, j] sits at (xs[i], ys[j])
    ys = np.linspace(-1, 3, 41)
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    sx, sy = contour_segments(X + 2 * Y, xs, ys, 1.0)
    assert len(sx) > 0 and np.allclose(sx + 2 * sy, 1.0, atol=1e-9)
    assert contour_segments(X, xs, ys, 10.0)[0].size == 0
