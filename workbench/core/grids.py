"""Regular grids of the views: cell centres, histograms, (bi)linear interpolation, L1 distances.

Every view shows p_t on [-h, h]^d cut into ``bins`` equal cells per axis (d = 1 or 2), axis 0
being x1. The functions here are the numerics behind those pictures, in numpy.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "grid_centres",
    "grid_points",
    "histogram",
    "coarsen",
    "l1_distance",
    "interpolate_grid",
    "marginals",
]


def grid_centres(half: float, bins: int) -> np.ndarray:
    """The centres of ``bins`` equal cells on [-half, half]."""
    return -half + (np.arange(bins) + 0.5) * (2.0 * half / bins)


def grid_points(half: float, bins: int, dim: int) -> np.ndarray:
    """The cell centres of [-half, half]^dim (dim 1 or 2) as points (bins**dim, dim), in the
    order of a (bins,) * dim array indexed [i, j] (x1 along axis 0)."""
    c = grid_centres(half, bins)
    if dim == 1:
        return c[:, None]
    X, Y = np.meshgrid(c, c, indexing="ij")
    return np.stack([X.ravel(), Y.ravel()], axis=1)


def histogram(points: np.ndarray, half: float, bins: int) -> np.ndarray:
    """Counts of 1-D or 2-D ``points`` (n, d) in ``bins`` cells per axis on [-half, half]^d.

    Axis 0 is x1 (pyqtgraph's ImageItem shows axis 0 horizontally). Points outside the window,
    and non-finite ones, are not counted. A bincount: a few times faster than histogram2d.
    """
    points = np.asarray(points, dtype=np.float64)
    d = points.shape[1]
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.floor((points + half) * (bins / (2.0 * half)))
        ok = np.all((scaled >= 0) & (scaled < bins), axis=1)
    idx = scaled[ok].astype(np.int64)
    flat = idx[:, 0] if d == 1 else idx[:, 0] * bins + idx[:, 1]
    return np.bincount(flat, minlength=bins**d).reshape((bins,) * d)


def coarsen(a: np.ndarray, factor: int) -> np.ndarray:
    """Sums of ``factor`` (1-D) or ``factor`` x ``factor`` (2-D) blocks of cells."""
    if a.ndim == 1:
        return a.reshape(-1, factor).sum(1)
    n = a.shape[0] // factor
    return a.reshape(n, factor, n, factor).sum(axis=(1, 3))


def l1_distance(counts: np.ndarray, exact_mass: np.ndarray) -> tuple[float, float]:
    """(L1 distance, its expectation under pure sampling noise) of two binnings on one grid.

    Both are normalised to mass 1 on the grid. The noise yardstick is the mean L1 distance of a
    multinomial histogram of the same size from its own probabilities,
    sqrt(2 / (pi n)) sum_i sqrt(p_i (1 - p_i)) (normal approximation per cell).
    """
    n = float(counts.sum())
    total = float(exact_mass.sum())
    if n <= 0 or total <= 0:
        return float("nan"), float("nan")
    p = exact_mass / total
    dist = float(np.abs(counts / n - p).sum())
    noise = math.sqrt(2.0 / (math.pi * n)) * float(np.sqrt(p * (1.0 - p)).sum())
    return dist, noise


def interpolate_grid(
    axes: list[np.ndarray], values: np.ndarray, pts: np.ndarray, outside: float
) -> np.ndarray:
    """(Bi)linear interpolation of cell-centre ``values`` (*grid) or (*grid, k) at points
    (n, d); ``outside`` beyond the outermost centres. NaN values propagate (a masked cell
    masks every point that leans on it)."""
    pts = np.asarray(pts, dtype=np.float64)
    d = len(axes)
    idx, frac, ok = [], [], np.ones(len(pts), dtype=bool)
    for a, axis in enumerate(axes):
        h = axis[1] - axis[0]
        u = (pts[:, a] - axis[0]) / h
        ok &= (u >= 0) & (u <= len(axis) - 1)
        i = np.clip(np.floor(u), 0, len(axis) - 2).astype(np.int64)
        idx.append(i)
        frac.append(np.clip(u - i, 0.0, 1.0))
    extra = values.shape[d:]
    out = np.zeros((len(pts), *extra))
    for corner in range(2**d):
        weight = np.ones(len(pts))
        sel = []
        for a in range(d):
            bit = (corner >> a) & 1
            weight = weight * (frac[a] if bit else 1.0 - frac[a])
            sel.append(idx[a] + bit)
        w = weight.reshape(-1, *([1] * len(extra)))
        v = values[tuple(sel)]
        out += np.where(w > 0, w * v, 0.0)  # a zero weight never brings in a neighbour's NaN
    out[~ok] = outside
    return out


def marginals(
    density: np.ndarray, low: np.ndarray, high: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two 1-D marginals of a 2-D density on equal cells covering the box [low, high]:
    ``[(centres of x1, p(x1)), (centres of x2, p(x2))]`` with p(x1_i) = sum_j p(x1_i, x2_j) dx2
    (and likewise for x2), so each keeps the grid's mass: sum_i p(x1_i) dx1 = sum p dx1 dx2.

    The box may be any axis-aligned rectangle (a view's window in data units), with the cell
    widths dx_a = (high_a - low_a) / bins_a of each axis.
    """
    p = np.asarray(density, dtype=np.float64)
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    widths = (high - low) / np.asarray(p.shape, dtype=np.float64)
    out = []
    for axis in range(2):
        other = 1 - axis
        centres = low[axis] + (np.arange(p.shape[axis]) + 0.5) * widths[axis]
        out.append((centres, p.sum(axis=other) * widths[other]))
    return out
