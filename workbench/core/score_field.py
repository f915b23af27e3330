"""The score field at one time: the learned score s_theta(x, t) beside the reference's
grad log p_t, and what the views draw of them, as numpy arrays.

2-D data: arrows on an ``ARROWS`` x ``ARROWS`` grid, lengths proportional to |score| and capped
(the ``CAP_QUANTILE`` quantile of |true score|, of the learned one without a truth, is drawn 0.9
grid spacings long); the error s(t) |s_theta - grad log p_t| on an ``ERROR_GRID`` grid (times
s(t) it is the noise-prediction error |eps_theta - eps|, on one scale at every t) and its mean
weighted by p_t. 1-D data: both scores and p_t along x. The reference's NaN (an FPK score below
its floor) is left out of arrows and means; the mass of p_t left out is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workbench.core.contours import contour_segments, hdr_levels
from workbench.core.grids import grid_centres, histogram
from workbench.core.reference import reference_grid
from workbench.core.sde import LinearSDE

__all__ = [
    "FieldRequest",
    "compute_field",
    "arrows_in_units",
    "arrow_segments",
    "evaluate_model",
    "weighted_mean",
    "ARROWS",
    "ERROR_GRID",
    "BACKGROUND_GRID",
    "CURVE_POINTS",
    "CAP_QUANTILE",
    "T_MIN_FRACTION",
]

ARROWS = 25
ERROR_GRID = 64
BACKGROUND_GRID = 128
CURVE_POINTS = 400
CAP_QUANTILE = 0.95
T_MIN_FRACTION = 1e-3  # the field is evaluated at t >= 1e-3 T (s(0) = 0: eps models divide by it)


@dataclass(frozen=True, eq=False)
class FieldRequest:
    """A snapshot of what one refresh needs; computed from in a worker thread."""

    state: Any
    model: Any
    t: float
    cloud: Any
    reference: Any = None  # workbench.core.reference.Reference, or None


def evaluate_model(model: Any, points: np.ndarray, t: float, sample_shape: tuple) -> np.ndarray:
    """The model's score at points (n, dim) and time t, as float64 numpy (n, dim)."""
    params = list(model.parameters())
    tensors = params or list(model.buffers())
    device = tensors[0].device if tensors else torch.device("cpu")
    # a network computes in its parameters' dtype; a model without parameters (the analytic
    # one) is given float64, so that agreement with the truth is to rounding
    dtype = params[0].dtype if params else torch.float64
    x = torch.from_numpy(points).to(device=device, dtype=dtype).reshape(-1, *sample_shape)
    tt = torch.full((x.shape[0],), float(t), dtype=dtype, device=device)
    with torch.no_grad():
        out = model(x, tt)
    return out.reshape(points.shape[0], -1).to(device="cpu", dtype=torch.float64).numpy()


def arrow_segments(
    origins: np.ndarray, vectors: np.ndarray, unit: float, cap: float
) -> tuple[np.ndarray, np.ndarray]:
    """Arrows as line segments (shaft and two head strokes) for ``connect="pairs"``.

    An arrow from each origin along its vector, ``unit`` long per unit of |vector|, at most
    ``cap`` long. Returns x and y arrays of segment end points.
    """
    v = np.nan_to_num(vectors, nan=0.0, posinf=0.0, neginf=0.0)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    length = np.minimum(norm * unit, cap)
    with np.errstate(invalid="ignore", divide="ignore"):
        direction = np.where(norm > 0, v / np.where(norm > 0, norm, 1.0), 0.0)
    tips = origins + direction * length
    head = 0.35 * length
    cos, sin = math.cos(math.radians(28)), math.sin(math.radians(28))
    back = -direction
    left = np.stack([cos * back[:, 0] - sin * back[:, 1], sin * back[:, 0] + cos * back[:, 1]], 1)
    right = np.stack([cos * back[:, 0] + sin * back[:, 1], -sin * back[:, 0] + cos * back[:, 1]], 1)
    starts = np.concatenate([origins, tips, tips])
    ends = np.concatenate([tips, tips + left * head, tips + right * head])
    pts = np.stack([starts, ends], axis=1)  # (segments, 2 ends, 2 coords)
    keep = np.concatenate([length[:, 0] > 0] * 3)
    pts = pts[keep]
    return pts[..., 0].ravel(), pts[..., 1].ravel()


def compute_field(request: FieldRequest) -> dict[str, Any]:
    """Everything one redraw shows, as numpy arrays (runs in a worker thread)."""
    state, model, truth = request.state, request.model, request.reference
    cloud = request.cloud if request.cloud is not None else getattr(truth, "cloud", None)
    sde = state.sde
    T = float(sde.T)
    t = max(float(request.t), T_MIN_FRACTION * T)
    linear = isinstance(sde, LinearSDE)
    s_t = float(sde.std(torch.tensor(t, dtype=torch.float64))) if linear else 1.0
    out: dict[str, Any] = {"state": state, "t": t, "t_requested": float(request.t), "s": s_t}
    out["has_model"] = model is not None
    out["linear"] = linear
    out["reference"] = truth
    shape = tuple(state.dataset.sample_shape)
    h = cloud.half_width(t) if cloud is not None else 4.0
    out["half"] = h
    if state.dim == 1:
        x = np.linspace(-h, h, CURVE_POINTS)[:, None]
        out["x"] = x[:, 0]
        out["learned"] = evaluate_model(model, x, t, shape)[:, 0] if model is not None else None
        out["true"] = truth.score(t, x)[:, 0] if truth is not None else None
        if truth is not None:
            out["density"] = truth.density(t, x)
        elif cloud is not None:
            bins = CURVE_POINTS // 4
            counts = histogram(cloud.at(t), h, bins)
            out["density_edges"] = np.linspace(-h, h, bins + 1)
            out["density"] = counts / (cloud.n * 2 * h / bins)
        if out["learned"] is not None and out["true"] is not None:
            err = s_t * np.abs(out["learned"] - out["true"])
            out["error"] = err
            out["mean_error"], out["masked"] = weighted_mean(out["density"], err)
        return out

    # 2-D: arrows on a coarse grid, the error on a finer one (one model call for both)
    c = grid_centres(h, ARROWS)
    origins = np.stack([a.ravel() for a in np.meshgrid(c, c, indexing="ij")], axis=1)
    ce = grid_centres(h, ERROR_GRID) if truth is not None else np.empty(0)
    fine = np.stack([a.ravel() for a in np.meshgrid(ce, ce, indexing="ij")], axis=1)
    points = np.concatenate([origins, fine])
    n = len(origins)
    learned_all = evaluate_model(model, points, t, shape) if model is not None else None
    true_all = truth.score(t, points) if truth is not None else None
    learned = learned_all[:n] if learned_all is not None else None
    true = true_all[:n] if true_all is not None else None

    reference = true if true is not None else learned
    spacing = 2 * h / ARROWS
    cap = 0.9 * spacing
    ref = 1.0
    if reference is not None:
        q = float(np.quantile(np.linalg.norm(np.nan_to_num(reference), axis=1), CAP_QUANTILE))
        ref = q if q > 0 and np.isfinite(q) else 1.0
    unit = cap / ref
    out.update(cap_score=ref, spacing=spacing, learned=learned, true=true)
    out["learned_segments"] = (
        arrow_segments(origins, learned, unit, cap) if learned is not None else None
    )
    out["true_segments"] = arrow_segments(origins, true, unit, cap) if true is not None else None
    if truth is not None:
        out["background"] = reference_grid(truth, t, h, BACKGROUND_GRID)
        out["background_kind"] = truth.label
    elif cloud is not None:
        bins = BACKGROUND_GRID // 2  # a coarser histogram: less sampling noise behind arrows
        area = (2 * h / bins) ** 2
        out["background"] = histogram(cloud.at(t), h, bins) / (cloud.n * area)
        out["background_kind"] = "forward particles' histogram"
    if truth is not None:
        p = truth.density(t, fine)
        grid = p.reshape(ERROR_GRID, ERROR_GRID)
        out["contours"] = [contour_segments(grid, ce, ce, lv) for lv in hdr_levels(grid)]
        if learned_all is not None and true_all is not None:  # true_all: truth is given
            raw = np.linalg.norm(learned_all[n:] - true_all[n:], axis=1)
            err = s_t * raw
            out["error"] = err.reshape(ERROR_GRID, ERROR_GRID)
            out["mean_error"], out["masked"] = weighted_mean(p, err)
            out["mean_raw_error"] = weighted_mean(p, raw)[0]
    return out


def arrows_in_units(
    r: dict[str, Any],
    to_points: Any,
    to_score: Any,
) -> dict[str, Any]:
    """The 2-D arrows of :func:`compute_field`'s result ``r`` redrawn in other units.

    ``to_points`` maps (n, 2) model-unit points to the units shown (x = shift + scale y),
    ``to_score`` maps model-unit scores (s_data = s_model / scale). The origins are the same
    grid, mapped; lengths are again proportional to the mapped |score| with the CAP_QUANTILE
    quantile drawn 0.9 of the (smaller) mapped grid spacing, so the arrows read the same way in
    any units. Returns learned_segments, true_segments, cap_score and spacing.
    """
    h = float(r["half"])
    c = grid_centres(h, ARROWS)
    origins = to_points(np.stack([a.ravel() for a in np.meshgrid(c, c, indexing="ij")], axis=1))
    corner = to_points(np.array([[-h, -h], [h, h]]))
    spacing = float(np.min(np.abs(corner[1] - corner[0]))) / ARROWS
    learned = None if r.get("learned") is None else to_score(r["learned"])
    true = None if r.get("true") is None else to_score(r["true"])
    reference = true if true is not None else learned
    cap, ref = 0.9 * spacing, 1.0
    if reference is not None:
        q = float(np.quantile(np.linalg.norm(np.nan_to_num(reference), axis=1), CAP_QUANTILE))
        ref = q if q > 0 and np.isfinite(q) else 1.0
    unit = cap / ref
    return {
        "learned_segments": (
            arrow_segments(origins, learned, unit, cap) if learned is not None else None
        ),
        "true_segments": arrow_segments(origins, true, unit, cap) if true is not None else None,
        "cap_score": ref,
        "spacing": spacing,
    }


def weighted_mean(p: np.ndarray, err: np.ndarray) -> tuple[float, float]:
    """(the p-weighted mean of err where the reference knows the score, the mass of p where it
    does not: cells below the FPK solver's floor are NaN and left out)."""
    known = np.isfinite(err)
    total = float(p.sum())
    weight = float(p[known].sum())
    if weight <= 0:
        return float("nan"), 1.0
    mean = float((p[known] * err[known]).sum() / weight)
    return mean, (total - weight) / total if total > 0 else 0.0
