"""Level sets of a density on a grid: the levels holding given masses, and their contours.

The views outline the highest-density regions of p_t: the super-level set {p >= c} holding a
mass q of p is the smallest region with that mass, and its boundary is the contour {p = c}.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HDR_MASSES", "hdr_levels", "contour_segments"]

HDR_MASSES = (0.5, 0.9)


def hdr_levels(density: np.ndarray, masses: tuple[float, ...] = HDR_MASSES) -> list[float]:
    """Density levels whose super-level sets hold ``masses`` of the mass on the grid.

    Cells are taken equal-sized: sorted by value from the top, level c_q is the value of the
    first cell at which the cumulative mass reaches q. An empty list when the grid holds no
    (finite, positive) mass: there is nothing to outline.
    """
    values = np.sort(np.asarray(density, dtype=np.float64).ravel())[::-1]
    total = values.sum()
    if not np.isfinite(total) or total <= 0:
        return []
    cum = np.cumsum(values) / total
    return [float(values[min(int(np.searchsorted(cum, m)), values.size - 1)]) for m in masses]


def contour_segments(
    z: np.ndarray, xs: np.ndarray, ys: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """The level set {z = level} by vectorised marching squares, as line segments.

    ``z[i, j]`` is the value at (xs[i], ys[j]). Returns x and y arrays of segment end points,
    two per segment, for a ``PlotDataItem(connect="pairs")``.
    """
    a, b, c, d = z[:-1, :-1], z[1:, :-1], z[1:, 1:], z[:-1, 1:]
    x0, x1 = xs[:-1, None], xs[1:, None]
    y0, y1 = ys[None, :-1], ys[None, 1:]
    shape = a.shape

    def crossing(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hit = (p >= level) != (q >= level)
        # np.where evaluates the quotient everywhere; only where an edge is crossed is it kept,
        # and there |level - p| <= |q - p|, so the discarded entries alone can overflow
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            frac = np.where(hit, (level - p) / (q - p), 0.0)
        return hit, frac

    # edges: 0 = (a, b) at y0, 1 = (b, c) at x1, 2 = (d, c) at y1, 3 = (a, d) at x0
    h0, f0 = crossing(a, b)
    h1, f1 = crossing(b, c)
    h2, f2 = crossing(d, c)
    h3, f3 = crossing(a, d)
    H = np.stack([h0, h1, h2, h3], axis=-1)
    X = np.stack(
        [
            x0 + f0 * (x1 - x0),
            np.broadcast_to(x1, shape),
            x0 + f2 * (x1 - x0),
            np.broadcast_to(x0, shape),
        ],
        axis=-1,
    )
    Y = np.stack(
        [
            np.broadcast_to(y0, shape),
            y0 + f1 * (y1 - y0),
            np.broadcast_to(y1, shape),
            y0 + f3 * (y1 - y0),
        ],
        axis=-1,
    )
    count = H.sum(-1)

    seg_x, seg_y = [], []
    two = np.nonzero(count == 2)
    if two[0].size:
        Hs = H[two]
        first = np.argmax(Hs, axis=1)
        last = 3 - np.argmax(Hs[:, ::-1], axis=1)
        k = np.arange(Hs.shape[0])
        Xs, Ys = X[two], Y[two]
        seg_x.append(np.stack([Xs[k, first], Xs[k, last]], axis=1))
        seg_y.append(np.stack([Ys[k, first], Ys[k, last]], axis=1))
    four = np.nonzero(count == 4)
    if four[0].size:
        # a saddle: a and c are on one side, b and d on the other. If the centre is on a's side,
        # a and c connect and the curves cut off b and d (edges 0-1 and 2-3), else a and c
        # (edges 3-0 and 1-2)
        centre_up = ((a + b + c + d)[four] / 4.0) >= level
        join_ac = centre_up == (a[four] >= level)
        Xf, Yf = X[four], Y[four]
        k = np.arange(Xf.shape[0])
        for e1, e2, e3, e4 in ((0, 1, 3, 0), (2, 3, 1, 2)):
            p = np.where(join_ac, e1, e3)
            q = np.where(join_ac, e2, e4)
            seg_x.append(np.stack([Xf[k, p], Xf[k, q]], axis=1))
            seg_y.append(np.stack([Yf[k, p], Yf[k, q]], axis=1))
    if not seg_x:
        return np.empty(0), np.empty(0)
    return np.concatenate(seg_x).ravel(), np.concatenate(seg_y).ravel()
