"""The score field's numbers without any widget: the exact model against the analytic reference,
a shifted model's error, the arrows' geometry, the 1-D curves."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tests.core.conftest import experiment
from workbench.core.clouds import ForwardCloud
from workbench.core.nets import AnalyticScoreModel
from workbench.core.reference import AnalyticReference
from workbench.core.score_field import (
    ARROWS,
    ERROR_GRID,
    FieldRequest,
    arrow_segments,
    compute_field,
    weighted_mean,
)


class Shifted(nn.Module):
    def __init__(self, model: nn.Module, shift: list[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float64))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.model(x, t) + self.shift.to(x.dtype)


def test_exact_model_has_no_error_and_a_shift_shows() -> None:
    state = experiment(**{"model.kind": "analytic"})
    model = AnalyticScoreModel(state.truth.mixture, state.sde)
    ref = AnalyticReference(state)
    cloud = ForwardCloud(state, n=2000)
    r = compute_field(FieldRequest(state, model, 0.3, cloud, ref))
    assert r["learned"].shape == r["true"].shape == (ARROWS * ARROWS, 2)
    assert np.allclose(r["learned"], r["true"], rtol=1e-9, atol=1e-9)
    assert r["error"].shape == (ERROR_GRID, ERROR_GRID) and r["mean_error"] < 1e-9
    assert len(r["contours"]) == 2 and all(len(x) > 0 for x, _ in r["contours"])
    assert r["background"].shape == (128, 128)
    shifted = compute_field(FieldRequest(state, Shifted(model, [0.5, 0.0]), 0.3, cloud, ref))
    assert np.isclose(shifted["mean_raw_error"], 0.5) and np.isclose(
        shifted["mean_error"], 0.5 * shifted["s"]
    )
    # no model and no reference: the forward particles' histogram behind nothing
    bare = compute_field(FieldRequest(state, None, 0.0, cloud, None))
    assert bare["learned_segments"] is None and bare["t"] > 0  # t >= 1e-3 T is shown
    assert bare["background_kind"] == "forward particles' histogram"


def test_one_dimensional_curves() -> None:
    state = experiment(**{"data.name": "gmm1d", "model.kind": "analytic"})
    model = AnalyticScoreModel(state.truth.mixture, state.sde)
    r = compute_field(FieldRequest(state, model, 0.5, ForwardCloud(state, n=500), None))
    assert r["x"].shape == r["learned"].shape and r["true"] is None
    assert r["density"].sum() > 0 and "density_edges" in r


def test_arrows_are_capped_and_point_along_the_vector() -> None:
    origins = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    vectors = np.array([[1.0, 0.0], [0.0, 10.0], [np.nan, 0.0]])
    xs, ys = arrow_segments(origins, vectors, unit=0.5, cap=1.0)
    # shafts and two head strokes for the two non-zero arrows: 6 segments, 12 end points
    assert len(xs) == len(ys) == 12
    assert np.allclose([xs[1], ys[1]], [0.5, 0.0])  # 0.5 per unit of |v|
    assert np.allclose([xs[3], ys[3]], [1.0, 2.0])  # capped at 1 long
    mean, masked = weighted_mean(np.array([1.0, 1.0, 2.0]), np.array([1.0, np.nan, 3.0]))
    assert np.isclose(mean, 7.0 / 3.0) and np.isclose(masked, 0.25)
