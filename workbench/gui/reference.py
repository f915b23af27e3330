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
- ``empirical``: p_t of the noised training set itself (any data, linear SDE),
  (1/N) sum_i N(x; m x_i, s^2 I) on ``EMPIRICAL_N`` data points; the exact minimiser of DSM on
  that set (:class:`workbench.core.empirical.EmpiricalMarginal`).

:class:`ReferenceManager` holds the user's choice, builds the reference for the current
experiment (the FPK solve in a :class:`~workbench.gui.workers.Task`, with progress and cancel),
caches it per (kind, data, SDE, grid) and drops it when the experiment's data or SDE change.
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PySide6 import QtCore

from workbench.core.sde import LinearSDE
from workbench.errors import WorkbenchError
from workbench.gui.workers import Task, TaskContext

__all__ = [
    "REFERENCES",
    "Reference",
    "AnalyticReference",
    "FPKReference",
    "EmpiricalReference",
    "SimulatedCloud",
    "ReferenceManager",
    "solve_reference",
    "interpolate_grid",
    "reference_grid",
    "unavailable_reason",
    "FLOOR_REL",
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
    """What fixes p_t: the data and the SDE (not the network, the loss or the sampler)."""
    return (state.config.data, state.config.sde)


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

    def density(self, t: Any, pts: np.ndarray) -> np.ndarray:
        from workbench.gui.plots.density import mixture_density

        return mixture_density(self.truth, t, pts)

    def score(self, t: float, pts: np.ndarray) -> np.ndarray:
        from workbench.gui.plots.density import mixture_score

        return mixture_score(self.truth, t, pts)


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
        gen = torch.Generator().manual_seed(SEED + 1)
        n = int(min(n, state.config.data.n))
        x0 = state.dataset.sample(n, gen, dtype=torch.float64)
        x0 = state.normalizer.to_model(x0).reshape(n, -1)
        self.marginal = EmpiricalMarginal(x0, state.sde)
        self.x0 = x0.numpy()
        self.note = f"empirical: the {n} training points noised to t"

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


class SimulatedCloud:
    """Forward particles of an SDE without closed-form marginals, simulated once at ``times``:
    ``at(t)`` gives the snapshot nearest t (the interface of the linear ``ForwardCloud``)."""

    def __init__(self, x0: np.ndarray, times: np.ndarray, states: np.ndarray) -> None:
        self.times = np.concatenate([[0.0], np.asarray(times, dtype=np.float64)])
        self.states = np.concatenate([x0[None], states]).astype(np.float64)
        _, self.n, self.dim = self.states.shape
        with np.errstate(invalid="ignore"):
            q = np.quantile(np.abs(self.states), 0.999, axis=(1, 2))
        self._half = 1.15 * np.maximum(q, 1e-3)
        self.x0 = self.states[0]

    def index(self, t: float) -> int:
        return int(np.argmin(np.abs(self.times - float(t))))

    def at(self, t: float) -> np.ndarray:
        return self.states[self.index(t)]

    def at_many(self, times: np.ndarray) -> np.ndarray:
        return self.states[[self.index(t) for t in np.asarray(times).reshape(-1)]]

    def coeffs(self, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # no m(t), s(t): the views' scale sqrt(m^2 + s^2) is then 1 (x is shown as it is)
        ones = np.ones_like(np.asarray(t, dtype=np.float64))
        return ones, np.zeros_like(ones)

    def half_width(self, t: float | np.ndarray) -> Any:
        if np.ndim(t) == 0:
            return float(self._half[self.index(float(t))])
        return np.array([self._half[self.index(v)] for v in np.asarray(t).reshape(-1)])


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
        self.solution = solution
        self.cloud = cloud
        self.axes = solution.axes
        self.times = np.asarray(solution.times, dtype=np.float64)
        self.grid_n = len(self.axes[0])
        self.mass_error = float(np.max(np.abs(solution.mass - 1.0)))
        self.note = (
            f"Fokker–Planck on a {'×'.join([str(self.grid_n)] * self.dim)} grid, "
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
    c = (np.arange(bins) + 0.5) * (2.0 * half / bins) - half
    if reference.dim == 1:
        pts = c[:, None]
    else:
        X, Y = np.meshgrid(c, c, indexing="ij")
        pts = np.stack([X.ravel(), Y.ravel()], axis=1)
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


def _one_blas_thread() -> Any:
    """BLAS on one thread for the solve. The solver's diffusion steps are products of small
    (grid x grid) matrices, for which OpenBLAS's threads cost far more than they bring: on the
    2-core machine a 96 x 96 step took 3.5 ms with 2 threads against 0.14 ms with 1, and ~50 ms
    with 2 threads while other work ran. threadpoolctl comes with scikit-learn; without it
    nothing changes."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# ---------------------------------------------------------------------------------- manager
@dataclass
class _Pending:
    key: tuple
    task: Task


class ReferenceManager(QtCore.QObject):
    """The chosen reference for the current experiment; FPK solves in a worker thread.

    ``referenceChanged(reference or None)`` fires when the views should switch; ``progress``
    (0..1) and ``busyChanged`` while a solve runs; ``failed(message)`` when one fails.
    """

    referenceChanged = QtCore.Signal(object)
    progress = QtCore.Signal(float)
    busyChanged = QtCore.Signal(bool)
    failed = QtCore.Signal(str)

    def __init__(self, parent: QtCore.QObject | None = None, grid_n: int | None = None) -> None:
        super().__init__(parent)
        self.grid_n = grid_n  # None: DEFAULT_GRID by dimension
        self.kind = "auto"
        self.state: Any = None
        self.reference: Reference | None = None
        self.cache: OrderedDict[tuple, Reference] = OrderedDict()
        self.error: str | None = None
        self._pending: _Pending | None = None
        self.solves = 0  # how many FPK solves were started (for tests: the cache works)

    # -- choice -------------------------------------------------------------------------
    def default_kind(self, state: Any) -> str:
        """analytic where it exists; FPK where nothing else can (a non-linear SDE); else none."""
        if unavailable_reason("analytic", state) is None:
            return "analytic"
        if not isinstance(state.sde, LinearSDE) and unavailable_reason("fpk", state) is None:
            return "fpk"
        return "none"

    def effective_kind(self) -> str:
        if self.state is None:
            return "none"
        kind = self.kind if self.kind != "auto" else self.default_kind(self.state)
        return kind if unavailable_reason(kind, self.state) is None else "none"

    def set_kind(self, kind: str) -> None:
        """The user's choice: "auto", "none", or a registered kind."""
        self.kind = kind
        self._update()

    def set_experiment(self, state: Any) -> None:
        old = self.state
        self.state = state
        if old is not None and state is not None and process_key(old) == process_key(state):
            if self.reference is not None:
                self.reference.state = state
            if self._pending is None and (self.reference is not None) == (
                self.effective_kind() != "none"
            ):
                return
        self._update()

    def _key(self, kind: str) -> tuple:
        grid = self.grid_n or DEFAULT_GRID.get(self.state.dim, 0)
        return (kind, *process_key(self.state), grid if kind == "fpk" else 0)

    def _update(self) -> None:
        kind = self.effective_kind()
        self.error = None
        if kind == "none":
            self._cancel_pending()
            self._set(None)
            return
        key = self._key(kind)
        hit = self.cache.get(key)
        if hit is not None:
            self._cancel_pending()
            self.cache.move_to_end(key)
            hit.state = self.state
            self._set(hit)
            return
        if kind != "fpk":
            self._cancel_pending()
            try:
                ref = REFERENCES[kind](self.state)
            except WorkbenchError as exc:
                self._fail(str(exc))
                return
            self._store(key, ref)
            self._set(ref)
            return
        if self._pending is not None and self._pending.key == key:
            return  # already solving this one
        self._cancel_pending()
        self._set(None)
        self._start_solve(key)

    def _start_solve(self, key: tuple) -> None:
        state, grid = self.state, self.grid_n

        def work(ctx: TaskContext) -> Reference:
            last = [-1.0]

            def report(f: float) -> None:
                if f - last[0] >= 0.01 or f >= 1.0:
                    last[0] = f
                    ctx.report(f)

            with _one_blas_thread():
                return solve_reference(state, grid, progress=report, cancel=ctx.cancelled)

        task = Task("Fokker–Planck", work, self)
        task.progress.connect(lambda f: self.progress.emit(float(f)))
        task.done.connect(lambda ref, k=key: self._solved(k, ref))
        task.failed.connect(lambda message, details, k=key: self._solve_failed(k, message))
        task.finished.connect(lambda t=task: self._finished(t))
        self._pending = _Pending(key, task)
        self.solves += 1
        self.busyChanged.emit(True)
        self.progress.emit(0.0)
        task.start()

    def _solved(self, key: tuple, ref: Reference) -> None:
        if self._pending is not None and self._pending.key == key:
            # over: the progress goes before the views switch (the thread ends just after)
            self._pending = None
            self.busyChanged.emit(False)
        self._store(key, ref)
        if self.state is not None and self._key(self.effective_kind()) == key:
            ref.state = self.state
            self._set(ref)

    def _solve_failed(self, key: tuple, message: str) -> None:
        pending = self._pending
        if pending is not None and pending.key == key and not pending.task.cancel_event.is_set():
            self._fail(message)

    def _finished(self, task: Task) -> None:
        task.wait()
        if self._pending is not None and self._pending.task is task:
            self._pending = None
            self.busyChanged.emit(False)
        task.deleteLater()

    def _fail(self, message: str) -> None:
        self.error = message
        self._set(None)
        self.failed.emit(message)

    def _store(self, key: tuple, ref: Reference) -> None:
        self.cache[key] = ref
        self.cache.move_to_end(key)
        while len(self.cache) > 4:
            self.cache.popitem(last=False)

    def _set(self, ref: Reference | None) -> None:
        self.reference = ref
        self.referenceChanged.emit(ref)

    # -- work ------------------------------------------------------------------------------
    def is_busy(self) -> bool:
        return self._pending is not None

    def cancel(self) -> None:
        """Stop a running solve (the choice stays; choosing again restarts it)."""
        if self._pending is not None:
            self._pending.task.cancel()

    def _cancel_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.task.cancel()
            self.busyChanged.emit(False)

    def shutdown(self) -> None:
        """Cancel and join any solve (before the window goes away)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.task.cancel()
            pending.task.wait()
        for task in self.findChildren(Task):
            task.cancel()
            task.wait()


def describe(kind: str) -> str:
    return {
        "auto": "automatic",
        "none": "none",
        "analytic": "analytic",
        "fpk": "Fokker–Planck",
        "empirical": "empirical",
    }.get(kind, kind)
