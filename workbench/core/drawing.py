"""A data set drawn by hand: clicks that place one point each and brush strokes that spray
points, kept as a list of strokes so that each stroke is one undo step.

The brush. Moving it along a path lays points down at a steady ``density`` points per data
unit of path length, whatever the mouse's speed or how finely its moves are reported: along a
segment of length L the points fall at the arc lengths where ``carry + density * s`` crosses
an integer, and the fractional remainder is carried into the next segment. A path of length
L therefore holds ``floor(density * L)`` points (plus the one at the stroke's start) whether
it came as one move or as a hundred. Each point is its place on the path plus Gaussian noise
of standard deviation ``radius`` in every coordinate (the brush size), so a slow and a fast
stroke paint the same density: in 2-D, across a long straight stroke, the points per unit area
at distance d from its line are ``density * phi(d / radius) / radius`` (phi the standard
normal density), ``density / (sqrt(2 pi) radius)`` on the line itself.

Reproducible: each stroke draws its noise from its own generator, seeded from the drawing's
seed and the stroke's serial number (the count of strokes begun before it, undone ones
included), so the same gestures give the same points.

In 1-D a drawing's points are (n, 1): clicks and brush both act along x only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["MIN_POINTS", "Drawing", "drawing_problem"]

#: the fewest points a drawing may be used as data with: one point has no spread to learn
MIN_POINTS = 2


class Drawing:
    """Strokes of points in ``dim`` (1 or 2) dimensions, in data units, with undo.

    ``place`` adds a one-point stroke; ``begin_brush`` / ``brush_to`` / ``end_stroke`` paint
    one stroke; ``undo`` takes back the last stroke (or the last ``clear``); ``clear`` empties
    the drawing as one undoable step.
    """

    def __init__(self, dim: int = 2, seed: int = 0) -> None:
        if dim not in (1, 2):
            raise ValueError(f"a drawing is 1-D or 2-D, not {dim}-D")
        self.dim = dim
        self.seed = int(seed)
        self.strokes: list[np.ndarray] = []
        # undo log: ("stroke", None) takes the last stroke back; ("clear", strokes) restores
        self._log: list[tuple[str, list[np.ndarray] | None]] = []
        self._serial = 0
        self._open: list[np.ndarray] | None = None  # points of the stroke being painted
        self._brush: tuple[np.ndarray, float, float, float, np.random.Generator] | None = None

    # ---------------------------------------------------------------------------- reading
    def points(self) -> np.ndarray:
        """Every point, the open stroke's included: float64 (n, dim)."""
        parts = list(self.strokes)
        if self._open:
            parts.extend(self._open)
        if not parts:
            return np.zeros((0, self.dim))
        return np.concatenate(parts, axis=0)

    def __len__(self) -> int:
        return int(self.points().shape[0])

    @property
    def painting(self) -> bool:
        """True between ``begin_brush`` and ``end_stroke``."""
        return self._open is not None

    def can_undo(self) -> bool:
        return bool(self._log)

    # ---------------------------------------------------------------------------- drawing
    def _at(self, point: Sequence[float] | np.ndarray) -> np.ndarray:
        p = np.asarray(point, dtype=np.float64).reshape(-1)
        if p.shape[0] < self.dim:
            raise ValueError(f"a point of a {self.dim}-D drawing needs {self.dim} coordinates")
        p = p[: self.dim]
        if not np.isfinite(p).all():
            raise ValueError(f"a drawn point must be finite, got {p.tolist()}")
        return p

    def place(self, point: Sequence[float] | np.ndarray) -> None:
        """One point exactly at ``point`` (its first ``dim`` coordinates), one undo step."""
        self.end_stroke()
        self.strokes.append(self._at(point)[None, :].copy())
        self._log.append(("stroke", None))
        self._serial += 1

    def begin_brush(
        self, point: Sequence[float] | np.ndarray, radius: float, density: float
    ) -> np.ndarray:
        """Start a brush stroke at ``point``: one point sprayed there; the points added."""
        if not (radius >= 0 and math.isfinite(radius)):
            raise ValueError(f"the brush radius must be >= 0, got {radius}")
        if not (density > 0 and math.isfinite(density)):
            raise ValueError(f"the brush density must be > 0 points per unit, got {density}")
        self.end_stroke()
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self._serial]))
        self._serial += 1
        at = self._at(point)
        self._open = []
        # carry 0: the next point lies a full 1/density of path away
        self._brush = (at, float(radius), float(density), 0.0, rng)
        return self._spray(at[None, :])

    def brush_to(self, point: Sequence[float] | np.ndarray) -> np.ndarray:
        """Move the open brush stroke to ``point``; the points it laid down (maybe none)."""
        if self._brush is None:
            return np.zeros((0, self.dim))
        start, radius, density, carry, rng = self._brush
        end = self._at(point)
        length = float(np.linalg.norm(end - start))
        total = carry + density * length
        count = math.floor(total)
        if count > 0 and length > 0:
            # arc lengths s_k where carry + density * s crosses k = 1..count
            s = (np.arange(1, count + 1) - carry) / density
            places = start + (s / length)[:, None] * (end - start)
        else:
            places = np.zeros((0, self.dim))
        self._brush = (end, radius, density, total - count, rng)
        return self._spray(places)

    def _spray(self, places: np.ndarray) -> np.ndarray:
        assert self._brush is not None and self._open is not None
        _, radius, _, _, rng = self._brush
        added = places + radius * rng.standard_normal(places.shape)
        if added.shape[0]:
            self._open.append(added)
        return added

    def end_stroke(self) -> None:
        """Close the open brush stroke (nothing if none): it becomes one undo step."""
        if self._open is None:
            return
        parts, self._open, self._brush = self._open, None, None
        if parts:
            self.strokes.append(np.concatenate(parts, axis=0))
            self._log.append(("stroke", None))

    def undo(self) -> bool:
        """Take back the last step: a stroke, or a clear. False if there is nothing to undo."""
        self.end_stroke()
        if not self._log:
            return False
        what, kept = self._log.pop()
        if what == "clear":
            self.strokes = list(kept or [])
        else:
            self.strokes.pop()
        return True

    def clear(self) -> bool:
        """Remove every stroke, as one undoable step. False if the drawing was empty."""
        self.end_stroke()
        if not self.strokes:
            return False
        self._log.append(("clear", self.strokes))
        self.strokes = []
        return True


def drawing_problem(points: np.ndarray, minimum: int = MIN_POINTS) -> str | None:
    """Why ``points`` (n, d) cannot be used as a data set, in one line; None if they can.

    Fewer than ``minimum`` points, or all of them at one place, leave the data set without
    spread: its standardisation has nothing to scale by and the score model nothing to learn.
    """
    n = int(points.shape[0])
    if n < minimum:
        return (
            f"draw at least {minimum} points to use the drawing as data (it has {n}): click to "
            "place points, or drag with the brush"
        )
    if not np.isfinite(points).all():
        return "the drawing has non-finite points"
    if np.all(points == points[0]):
        return f"all {n} points lie at one place; draw points apart from each other"
    return None
