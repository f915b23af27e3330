"""The drawing model behind the Data panel's draw mode: points, brush strokes, undo, clear."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.core.drawing import MIN_POINTS, Drawing, drawing_problem


def test_clicks_place_exact_points_and_each_is_one_undo_step() -> None:
    d = Drawing(2)
    d.place((0.5, -1.25))
    d.place(np.array([3.0, 2.0]))
    assert d.points().tolist() == [[0.5, -1.25], [3.0, 2.0]]
    assert d.points().dtype == np.float64 and len(d) == 2
    assert d.undo() and d.points().tolist() == [[0.5, -1.25]]
    assert d.undo() and len(d) == 0
    assert not d.undo() and not d.can_undo()


def _stroke(d: Drawing, path: list[tuple[float, float]], radius: float, density: float) -> None:
    d.begin_brush(path[0], radius, density)
    for p in path[1:]:
        d.brush_to(p)
    d.end_stroke()


def test_brush_lays_a_steady_number_per_length_however_the_moves_come() -> None:
    """One long move and 1000 small ones along the same path lay the same points: the count
    is floor(density * length) + the one at the start, and the places are the same."""
    density, length = 37.0, 5.3
    whole, pieces = Drawing(2, seed=4), Drawing(2, seed=4)
    _stroke(whole, [(0.0, 0.0), (length, 0.0)], 0.2, density)
    xs = np.linspace(0.0, length, 1001)
    _stroke(pieces, [(float(x), 0.0) for x in xs], 0.2, density)
    expected = math.floor(density * length) + 1
    assert len(whole) == expected and len(pieces) == expected
    np.testing.assert_allclose(pieces.points(), whole.points(), atol=1e-9)
    assert len(whole.strokes) == 1  # a stroke, however long, is one undo step


def test_brush_with_no_size_puts_points_on_the_path_at_even_spacing() -> None:
    d = Drawing(2)
    _stroke(d, [(0.0, 1.0), (1.0, 1.0), (1.0, 2.0)], 0.0, 10.0)
    pts = d.points()
    assert pts.shape == (21, 2)
    # along the L-shaped path: arc length k / 10 for k = 0..20
    arc = np.where(pts[:, 1] == 1.0, pts[:, 0], 1.0 + (pts[:, 1] - 1.0))
    np.testing.assert_allclose(arc, np.arange(21) / 10.0, atol=1e-12)


def test_brush_spread_is_a_gaussian_of_the_brush_size() -> None:
    """Across a straight stroke the offsets are N(0, radius^2): their mean and std agree
    within a few standard errors of n samples (seeded)."""
    radius, density, length = 0.4, 400.0, 10.0
    d = Drawing(2, seed=11)
    _stroke(d, [(0.0, 0.0), (length, 0.0)], radius, density)
    offsets = d.points()[:, 1]
    n = offsets.size
    assert n == 4001
    assert abs(offsets.mean()) < 5 * radius / math.sqrt(n)
    # the sample std's standard error is about radius / sqrt(2 n)
    assert abs(offsets.std() - radius) < 5 * radius / math.sqrt(2 * n)


def test_strokes_are_reproducible_from_the_seed() -> None:
    def draw(seed: int) -> np.ndarray:
        d = Drawing(2, seed=seed)
        _stroke(d, [(-1.0, 0.0), (1.0, 0.5)], 0.3, 50.0)
        d.place((2.0, 2.0))
        _stroke(d, [(0.0, -1.0), (0.0, 1.0)], 0.3, 50.0)
        return d.points()

    np.testing.assert_array_equal(draw(3), draw(3))
    assert not np.allclose(draw(3), draw(4))


def test_undo_takes_back_exactly_the_last_stroke() -> None:
    d = Drawing(2)
    d.place((0.0, 0.0))
    _stroke(d, [(0.0, 0.0), (2.0, 0.0)], 0.1, 20.0)
    before = d.points()[:1].copy()
    assert len(d) == 1 + 41
    assert d.undo()
    np.testing.assert_array_equal(d.points(), before)


def test_undo_during_a_stroke_closes_it_and_takes_it_back() -> None:
    d = Drawing(2)
    d.place((1.0, 1.0))
    d.begin_brush((0.0, 0.0), 0.1, 10.0)
    d.brush_to((1.0, 0.0))
    assert d.painting and len(d) == 1 + 11
    assert d.undo()
    assert not d.painting and d.points().tolist() == [[1.0, 1.0]]


def test_clear_is_one_undoable_step() -> None:
    d = Drawing(2)
    d.place((0.0, 0.0))
    d.place((1.0, 0.0))
    assert d.clear() and len(d) == 0
    assert not d.clear()  # nothing left: not another step
    assert d.undo() and d.points().tolist() == [[0.0, 0.0], [1.0, 0.0]]
    assert d.undo() and len(d) == 1


def test_one_dimensional_drawing_acts_along_x_only() -> None:
    d = Drawing(1, seed=2)
    d.place((0.25, 9.0))  # the y of the pointer is ignored
    _stroke(d, [(-1.0, 0.0), (1.0, 3.0)], 0.0, 5.0)
    pts = d.points()
    assert pts.shape == (12, 1)
    assert pts[0, 0] == 0.25
    np.testing.assert_allclose(pts[1:, 0], np.linspace(-1.0, 1.0, 11), atol=1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: Drawing(3), "1-D or 2-D"),
        (lambda: Drawing(2).place((float("nan"), 0.0)), "finite"),
        (lambda: Drawing(2).place((1.0,)), "needs 2 coordinates"),
        (lambda: Drawing(2).begin_brush((0, 0), -1.0, 10.0), "radius"),
        (lambda: Drawing(2).begin_brush((0, 0), 0.1, 0.0), "density"),
        (lambda: Drawing(2).begin_brush((0, 0), float("inf"), 1.0), "radius"),
    ],
)
def test_bad_arguments_are_refused(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_drawing_problem_names_too_few_and_degenerate_drawings() -> None:
    assert MIN_POINTS == 2
    empty = drawing_problem(np.zeros((0, 2)))
    assert empty is not None and "at least 2 points" in empty and "has 0" in empty
    one = drawing_problem(np.array([[1.0, 2.0]]))
    assert one is not None and "has 1" in one
    same = drawing_problem(np.array([[1.0, 2.0]] * 5))
    assert same is not None and "one place" in same
    assert drawing_problem(np.array([[1.0, 2.0], [1.0, 2.5]])) is None
    assert drawing_problem(np.array([[0.0], [1.0]])) is None
    assert "at least 10" in (drawing_problem(np.zeros((3, 1)), minimum=10) or "")
