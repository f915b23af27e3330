"""Where the views' truth comes from: the analytic, Fokker–Planck or empirical p_t and score.

A :class:`Reference` answers two questions in model units, in numpy: ``density(t, points)``
and ``score(t, points)`` (NaN where it does not know). Three kinds, in a registry:

- ``analytic``: Gaussian-mixture data under a linear SDE; p_t is again a mixture, exact.
- ``fpk``: the Fokker–Planck equation dp/dt = -div(f p) + 1/2 g^2 lap p solved on a grid
  (:func:`workbench.core.fpk.solve_fpk`) for 1-D and 2-D data under ANY SDE, the custom
  non-linear one included. p_t between the stored times is interpolated linearly in t (a
  mixture of two densities is a density), between cell centres (bi)linearly in x. The score is
  the central difference of log p on the grid at t, masked (NaN) where p_t is below
  ``FLOOR_REL`` times its peak: there log p is dominated by the solver's round-off and numerical
  diffusion, not by the SDE. For a non-linear SDE, whose forward particles cannot be drawn in
  closed form, the solve also simulates them (Euler–Maruyama, :func:`simulate`) and the views
  show that :class:`SimulatedCloud`.
- ``empirical``: p_t of a finite set of data points, noised (any data, linear SDE),
  (1/N) sum_i N(x; m x_i, s^2 I) on at most ``EMPIRICAL_N`` points (a data file's distinct
  rows, :func:`empirical_points`); the exact minimiser of DSM on that set
  (:class:`workbench.core.empirical.EmpiricalMarginal`).

``state`` is duck-typed: the GUI's experiment state (``config``, ``dataset``, ``normalizer``,
``sde``, ``truth``, ``dim``, ``is_image``). The GUI's ``ReferenceManager``
(:mod:`workbench.gui.reference`) chooses, solves in a worker and caches.

:func:`data_units_marginal` is the analytic p_t of a mixture in data units, for views of files
whose rows are stored in data units (the inspector).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from workbench.core.analytic import AnalyticMarginal
from workbench.core.clouds import SimulatedCloud
from workbench.core.data import Normalizer
from workbench.core.grids import grid_points, interpolate_grid
from workbench.core.mixture import GaussianMixture
from workbench.core.sde import SDE, LinearSDE
from workbench.errors import WorkbenchError

__all__ = [
    "REFERENCES",
    "Reference",
    "AnalyticReference",
    "FPKReference",
    "EmpiricalReference",
    "SimulatedCloud",
    "solve_reference",
    "interpolate_grid",
    "reference_grid",
    "unavailable_reason",
    "process_key",
    "data_units_marginal",
    "FLOOR_REL",
    "DEFAULT_GRID",
]

FLOOR_REL = 1e-4
EMPIRICAL_N = 2000
SIM_PARTICLES = 20000
SEED = 20240
DEFAULT_GRID = {1: 256, 2: 96}
N_TIMES = 41  # stored FPK times, uniform on [0, T]
SIM_TIMES = 101  # stored snapshots of the simulated forward particles


class Reference:
    """The truth the views compare against; ``density`` and ``score`` take (n, d) points."""

    kind = ""
    label = "reference p_t"  # a panel's title
    short = "reference"  # in readouts: "forward vs <short>"
    dim = 0
    cloud: Any = None  # forward particles, where the reference had to simulate them
    note = ""  # one line for the readouts (grid, floor, ...)

    def __init__(self, state: Any) -> None:
        self.state = state
        self.key = process_key(state)
        self.dim = state.dim

    @staticmethod
    def unavailable(state: Any) -> str | None:
        """Why this reference cannot serve ``state``, or None when it can."""
        raise NotImplementedError

    def density(self, t: Any, pts: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score(self, t: float, pts: np.ndarray) -> np.ndarray:
        raise NotImplementedError


REFERENCES: dict[str, type[Reference]] = {}


def register(name: str) -> Callable[[type[Reference]], type[Reference]]:
    def add(cls: type[Reference]) -> type[Reference]:
        cls.kind = name
        REFERENCES[name] = cls
        return cls

    return add


def process_key(state: Any) -> tuple:
    """What fixes p_t: the data and the SDE (not the network, the loss or the sampler).

    A data file's path does not fix its contents: a file rewritten in place (a drawing saved
    over, an edit outside the app) must not keep its old reference, so the file's size and
    modification time are part of the key (cheap, unlike the SHA-256 of the run's fingerprint).
    """
    path = getattr(getattr(state, "dataset", None), "path", None)
    stamp: tuple[int, int] | None = None
    if path is not None:
        try:
            info = os.stat(path)
            stamp = (info.st_size, info.st_mtime_ns)
        except OSError:
            stamp = None
    return (state.config.data, state.config.sde, stamp)


def unavailable_reason(kind: str, state: Any) -> str | None:
    """Why ``kind`` cannot be the reference for this experiment, or None when it can."""
    if state is None:
        return "no valid experiment"
    if kind == "none":
        return None
    if kind not in REFERENCES:
        return f"unknown reference {kind!r}"
    return REFERENCES[kind].unavailable(state)


def _per_time(t: Any, pts: np.ndarray, fn: Callable[[float, np.ndarray], np.ndarray]) -> Any:
    """fn(t, pts) for one t, or grouped by value for one t per point."""
    if np.ndim(t) == 0:
        return fn(float(t), pts)
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    out = np.empty(len(pts))
    for value in np.unique(t):
        rows = t == value
        out[rows] = fn(float(value), pts[rows])
    return out


@register("analytic")
class AnalyticReference(Reference):
    label = "exact p_t"
    short = "exact"

    @staticmethod
    def unavailable(state: Any) -> str | None:
        if state.truth is None:
            if not isinstance(state.sde, LinearSDE):
                return "needs a linear SDE"
            return "needs Gaussian-mixture data (gmm1d, 8gaussians, gmm)"
        return None

    def __init__(self, state: Any) -> None:
        super().__init__(state)
        self.truth = state.truth
        self.note = "exact (Gaussian mixture)"

    def _coeffs(self, t: Any) -> tuple[np.ndarray, np.ndarray]:
        tt = torch.from_numpy(np.asarray(t, dtype=np.float64))
        m, s = self.truth.sde.marginal_coeffs(tt)
        return m.numpy(), s.numpy()

    def density(self, t: Any, pts: np.ndarray) -> np.ndarray:
        # p_t = sum_k w_k N(m mu_k, m^2 C_k + s^2 I): the data mixture's own density, noised
        return self.truth.mixture.density_np(pts, *self._coeffs(t))

    def score(self, t: float, pts: np.ndarray) -> np.ndarray:
        return self.truth.mixture.score_np(pts, *self._coeffs(t))


def empirical_points(dataset: Any, n: int) -> tuple[torch.Tensor, str]:
    """The points (data units) whose noised empirical law is the reference, and a line saying
    what they are. A finite array (a data file, the digits) gives distinct rows: all of them
    when it has at most ``n``, else ``n`` rows drawn without replacement (sampling the set
    draws with replacement, and repeated rows would only weigh some points twice). Any other
    data set gives ``n`` fresh draws, seeded: not the trainer's batches, the same law."""
    gen = torch.Generator().manual_seed(SEED + 1)
    values = getattr(dataset, "values", None)
    if isinstance(values, torch.Tensor) and values.ndim >= 1 and len(values) > 0:
        total = len(values)
        if total <= n:
            return values.to(
                torch.float64
            ), f"empirical: all {total:,} points of the data set, noised to t"
        rows = torch.randperm(total, generator=gen)[:n]
        return (
            values[rows].to(torch.float64),
            f"empirical: {n:,} of the data set's {total:,} points (no repeats), noised to t",
        )
    x0 = dataset.sample(n, gen, dtype=torch.float64)
    return x0, f"empirical: {n:,} seeded draws of the data set, noised to t"


@register("empirical")
class EmpiricalReference(Reference):
    label = "empirical p_t"
    short = "empirical"

    @staticmethod
    def unavailable(state: Any) -> str | None:
        if not isinstance(state.sde, LinearSDE):
            return "needs a linear SDE (a Gaussian transition kernel)"
        return None

    def __init__(self, state: Any, n: int = EMPIRICAL_N) -> None:
        from workbench.core.empirical import EmpiricalMarginal

        super().__init__(state)
        x0, self.note = empirical_points(state.dataset, int(min(n, state.config.data.n)))
        x0 = state.normalizer.to_model(x0).reshape(len(x0), -1)
        self.marginal = EmpiricalMarginal(x0, state.sde)
        self.x0 = x0.numpy()

    def _terms(self, t: float, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(log sum_i exp(-|x - m x_i|^2 / 2 s^2), responsibilities-weighted m x_i, s) per
        point: :class:`EmpiricalMarginal`'s sums by matrix products, in numpy blocks, a few
        times faster for the views' grids (checked against it in the tests)."""
        tt = torch.tensor(float(t), dtype=torch.float64)
        m, s = (float(v) for v in self.state.sde.marginal_coeffs(tt))
        s = max(s, 1e-12)
        centres = m * self.x0  # (N, d)
        c2 = (centres * centres).sum(1)
        log_sum = np.empty(len(pts))
        mean = np.empty_like(pts)
        for a in range(0, len(pts), 2048):
            x = pts[a : a + 2048]
            d2 = (x * x).sum(1)[:, None] - 2.0 * x @ centres.T + c2[None]
            logits = -np.maximum(d2, 0.0) / (2.0 * s * s)
            top = logits.max(1, keepdims=True)
            w = np.exp(logits - top)
            total = w.sum(1, keepdims=True)
            log_sum[a : a + 2048] = (top + np.log(total))[:, 0]
            mean[a : a + 2048] = (w @ centres) / total
        return log_sum, mean, s

    def density(self, t: Any, pts: np.ndarray) -> np.ndarray:
        pts = np.ascontiguousarray(pts, dtype=np.float64)

        def one(tv: float, p: np.ndarray) -> np.ndarray:
            log_sum, _, s = self._terms(tv, p)
            d, n = self.dim, len(self.x0)
            return np.exp(log_sum - math.log(n) - 0.5 * d * math.log(2 * math.pi * s * s))

        return _per_time(t, pts, one)

    def score(self, t: float, pts: np.ndarray) -> np.ndarray:
        pts = np.ascontiguousarray(pts, dtype=np.float64)
        _, mean, s = self._terms(float(t), pts)
        return (mean - pts) / (s * s)


@register("fpk")
class FPKReference(Reference):
    label = "Fokker–Planck p_t"
    short = "FPK"

    @staticmethod
    def unavailable(state: Any) -> str | None:
        if state.is_image or state.dim > 2:
            return f"the Fokker–Planck solver works in 1-D and 2-D; the data are {state.dim}-D"
        return None

    def __init__(self, state: Any, solution: Any, cloud: Any = None) -> None:
        super().__init__(state)
        # p_0 is the data's own density only for mixtures; otherwise the solve starts from a
        # kernel estimate of the data (fpk.density_from_data), and says so: it is not truth
        self.from_kde = state.dataset.mixture() is None
        if self.from_kde:
            self.label = "Fokker–Planck from a kernel estimate of the data"
            self.short = "FPK (from a KDE)"
        self.solution = solution
        self.cloud = cloud
        self.axes = solution.axes
        self.times = np.asarray(solution.times, dtype=np.float64)
        self.grid_n = len(self.axes[0])
        self.mass_error = float(np.max(np.abs(solution.mass - 1.0)))
        start = "from a kernel estimate of the data, " if self.from_kde else ""
        self.note = (
            f"Fokker–Planck {start}on a {'×'.join([str(self.grid_n)] * self.dim)} grid, "
            f"{len(self.times)} times, mass error {self.mass_error:.1e}; score masked where "
            f"p_t < {FLOOR_REL:g}·max p_t"
        )
        # the solver's own doubts (e.g. a grid too coarse for p_t at small t) go to the readouts
        self.warnings = [str(w) for w in getattr(solution, "warnings", [])]
        if self.warnings:
            self.note += "   warning: " + "; ".join(self.warnings)
        self._score_cache: tuple[float, np.ndarray] | None = None

    def grid_at(self, t: float) -> np.ndarray:
        """p_t on the grid, linear in t between the two stored times around t."""
        ts = self.times
        t = float(np.clip(t, ts[0], ts[-1]))
        k = int(np.searchsorted(ts, t))
        if k == 0 or ts[k] == t:
            return self.solution.p[k]
        w = (t - ts[k - 1]) / (ts[k] - ts[k - 1])
        return (1.0 - w) * self.solution.p[k - 1] + w * self.solution.p[k]

    def density(self, t: Any, pts: np.ndarray) -> np.ndarray:
        def one(tv: float, p: np.ndarray) -> np.ndarray:
            return interpolate_grid(self.axes, self.grid_at(tv), p, 0.0)

        return _per_time(t, pts, one)

    def score_grid(self, t: float) -> np.ndarray:
        """grad log p_t on the grid, (*grid, d), NaN below the floor."""
        from workbench.core.fpk import FPKSolution, score_on_grid

        if self._score_cache is not None and self._score_cache[0] == float(t):
            return self._score_cache[1]
        p = self.grid_at(t)
        one = FPKSolution(self.axes, np.array([t]), p[None], np.ones(1), 0.0)
        grid = score_on_grid(one, 0, floor=FLOOR_REL * float(p.max()))
        self._score_cache = (float(t), grid)
        return grid

    def score(self, t: float, pts: np.ndarray) -> np.ndarray:
        return interpolate_grid(self.axes, self.score_grid(float(t)), pts, np.nan)


def reference_grid(reference: Reference, t: float, half: float, bins: int) -> np.ndarray:
    """The reference's p_t at the cell centres of [-half, half]^d ((bins,) or (bins, bins))."""
    pts = grid_points(half, bins, reference.dim)
    return reference.density(float(t), pts).reshape((bins,) * reference.dim)


def solve_reference(
    state: Any,
    grid_n: int | None = None,
    n_times: int = N_TIMES,
    progress: Callable[[float], None] | None = None,
    cancel: Any = None,
    particles: int = SIM_PARTICLES,
) -> FPKReference:
    """The Fokker–Planck reference of an experiment (long: run it in a worker).

    Linear SDEs: the grid from :func:`grid_bounds`. Other SDEs: ``particles`` data points are
    first simulated forward (the views' forward particles, ~15 % of the progress bar) and the
    grid covers them (x 1.2). The initial p_0 is exact for mixtures, else a KDE of the data.
    """
    from workbench.core.fpk import density_from_data, grid_bounds, solve_fpk

    reason = FPKReference.unavailable(state)
    if reason:
        raise WorkbenchError(reason)
    report = progress or (lambda f: None)
    sde, T = state.sde, float(state.sde.T)
    n = int(grid_n or DEFAULT_GRID[state.dim])
    times = np.linspace(0.0, T, n_times)
    gen = torch.Generator().manual_seed(SEED)
    x0 = state.dataset.sample(particles, gen, dtype=torch.float64)
    x0 = state.normalizer.to_model(x0).reshape(particles, -1)
    cloud = None
    share = 0.0
    if isinstance(sde, LinearSDE):
        bounds = grid_bounds(sde, x0.numpy(), T)
    else:
        from workbench.core.simulation import simulate

        share = 0.15
        snapshots = np.linspace(0.0, T, SIM_TIMES)[1:]  # the views take the nearest one
        states = simulate(
            sde,
            x0,
            snapshots,
            generator=gen,
            progress=lambda f: report(share * f),
            cancel=cancel,
        ).numpy()
        cloud = SimulatedCloud(x0.numpy(), snapshots, states)
        low = np.minimum(states.min(axis=(0, 1)), x0.numpy().min(0))
        high = np.maximum(states.max(axis=(0, 1)), x0.numpy().max(0))
        mid, half = 0.5 * (low + high), 0.5 * (high - low) * 1.2 + 0.5
        bounds = [(float(c - w), float(c + w)) for c, w in zip(mid, half, strict=True)]

    def initial(points: np.ndarray) -> np.ndarray:
        axes = [np.unique(points[:, i]) for i in range(points.shape[1])]
        return density_from_data(state.dataset, state.normalizer, axes).reshape(-1)

    solution = solve_fpk(
        sde,
        initial,
        n,
        times,
        bounds=bounds,
        progress=lambda f: report(share + (1.0 - share) * f),
        cancel=cancel,
    )
    return FPKReference(state, solution, cloud)


def data_units_marginal(
    mixture: GaussianMixture, sde: SDE, t: float, normalizer: Normalizer | None = None
) -> GaussianMixture:
    """p_t in data units of data that follow ``mixture`` (data units) and are noised in model
    units, as the sampler does: y = to_model(x) follows an affine image of the mixture, y_t =
    m(t) y + s(t) z follows the mixture noised there, and x_t = to_data(y_t) its affine image
    back (an affine map sends a Gaussian mixture to a Gaussian mixture)."""
    if normalizer is None:
        return AnalyticMarginal(mixture, sde).mixture_at(t)
    model = AnalyticMarginal(normalizer.to_model_mixture(mixture), sde).mixture_at(t)
    return normalizer.to_data_mixture(model)
