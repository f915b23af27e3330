"""A Fokker–Planck solver in 1-D and 2-D: the true p_t (and score) of any forward SDE on a grid.

Solves dp/dt = -div(f p) + 1/2 g(t)^2 lap p in MODEL units on a uniform cell-centred grid with
zero-flux walls. The scheme is a conservative finite-volume one, Strang-split per step:

* drift, half a step: fluxes f(face) p(face) at every face, p(face) taken from the upwind
  (donor) cell with a minmod-limited slope (MUSCL), advanced by forward-Euler sub-steps with f
  at each sub-step's mid time; a sub-step h with h sum_i max|f_i| / dx_i <= ``CFL`` / 2 keeps
  p >= 0 (a cell's two face values sum to 2 p, so at most CFL p flows out) and is TVD;
* diffusion, a full step: the semi-discrete heat equation dp/dt = D(t) L p with the zero-flux
  finite-volume Laplacian L is integrated EXACTLY in time, since L is diagonalised by the
  (orthonormal) DCT-II basis V: p <- V exp(c Lambda) V^T p per axis with c = int 1/2 g^2 dt
  (Gauss–Legendre). This is unconditionally stable, keeps p >= 0 (exp(cL) is a non-negative
  matrix) and keeps the mass (the constant vector has eigenvalue 0), up to round-off;
* drift, half a step again.

Mass is conserved to round-off; negatives can only come from round-off in the diffusion
matmuls: they are clipped and their total mass reported as ``FPKSolution.clipped``. Pure
diffusion (an SDE declaring ``drift_free``, e.g. VE) needs no drift step at all and jumps from
one output time to the next.

The initial density is ``p0_fn`` (a function of points (N, d) -> density, e.g. the exact
mixture density) or a Gaussian kernel density estimate of ``samples`` (Scott's bandwidth),
averaged by its values at cell centres and normalised to mass 1.

Cancellation: ``cancel`` (a callable returning True, or an object with ``is_set()``) is polled
every step; when set, :class:`FPKCancelledError` is raised. Torch is used only to evaluate the SDE.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from workbench.core.cancel import is_cancelled
from workbench.core.sde import SDE, LinearSDE, check_times
from workbench.errors import WorkbenchError

__all__ = [
    "FPKSolution",
    "FPKCancelledError",
    "solve_fpk",
    "score_on_grid",
    "density_from_data",
    "grid_bounds",
    "feature_width",
    "resolution_check",
    "CELLS_PER_WIDTH",
    "MAX_CELLS",
    "MAX_BYTES",
]

MAX_CELLS = 2e8
MAX_BYTES = 8 * 2**30
CFL = 0.9


class FPKCancelledError(WorkbenchError):
    """The solve was cancelled through its ``cancel`` flag."""


@dataclass
class FPKSolution:
    """p (len(times), *grid) on cell centres ``axes``; ``mass`` per time, ``clipped`` total.

    ``warnings``: one line per problem the solver knows of, e.g. times at which the grid is too
    coarse for p_t (see :func:`resolution_check`); empty when there is none.
    """

    axes: list[np.ndarray]
    times: np.ndarray
    p: np.ndarray
    mass: np.ndarray
    clipped: float
    warnings: list[str] = field(default_factory=list)

    @property
    def dim(self) -> int:
        return len(self.axes)

    @property
    def spacing(self) -> list[float]:
        return [float(a[1] - a[0]) for a in self.axes]

    @property
    def cell_volume(self) -> float:
        return float(np.prod(self.spacing))


# ---------------------------------------------------------------------------------------------
def _f64(x: Any) -> float:
    return float(torch.as_tensor(x, dtype=torch.float64))


def _diffusion_sq(sde: SDE, t: np.ndarray) -> np.ndarray:
    g = sde.diffusion(torch.as_tensor(t, dtype=torch.float64))
    g = torch.as_tensor(g, dtype=torch.float64).expand(len(t))
    return g.numpy() ** 2


def _half_g2_integral(sde: SDE, a: float, b: float) -> float:
    """int_a^b 1/2 g(t)^2 dt by 8-point Gauss–Legendre."""
    if b <= a:
        return 0.0
    nodes, weights = np.polynomial.legendre.leggauss(8)
    u = 0.5 * (a + b) + 0.5 * (b - a) * nodes
    return float(0.25 * (b - a) * np.sum(weights * _diffusion_sq(sde, u)))


def _check_size(n: int, d: int, n_times: int) -> None:
    cells = float(n) ** d
    need = cells * 8.0 * (n_times + 8)
    if cells > MAX_CELLS or need > MAX_BYTES:
        raise WorkbenchError(
            f"Fokker–Planck grid {n}^{d} = {cells:.3g} cells would take about "
            f"{need / 2**30:.3g} GiB for {n_times} time(s); the limit is {MAX_CELLS:.3g} cells "
            f"and {MAX_BYTES / 2**30:.3g} GiB: use a smaller grid"
        )


def grid_bounds(
    sde: SDE, samples: np.ndarray, t_max: float, *, seed: int = 0
) -> list[tuple[float, float]]:
    """Per-dimension (low, high) covering the data and its spread up to ``t_max``.

    Linear SDEs: half-width max_t (m(t) q + 6 s(t)) with q the largest |x0| (times 1.1).
    Otherwise: a short Euler–Maruyama simulation of the samples; the largest |x_t| seen, x 1.2.
    """
    x0 = np.asarray(samples, dtype=np.float64)
    q = 1.1 * float(np.max(np.abs(x0))) + 1e-3
    if isinstance(sde, LinearSDE):
        ts = torch.linspace(0.0, max(t_max, 1e-12), 201, dtype=torch.float64)
        m, s = sde.marginal_coeffs(ts)
        m = torch.as_tensor(m, dtype=torch.float64).expand(len(ts))
        s = torch.as_tensor(s, dtype=torch.float64).expand(len(ts))
        half = float(torch.max(m.abs() * q + 6.0 * s))
        half = max(half, q)
        return [(-half, half)] * x0.shape[1]
    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(x0[:4000], dtype=torch.float64)
    steps = 1000
    h = t_max / steps
    # the running range in numpy: torch's column reductions of a (4000, d) tensor go through
    # the thread pool, ~5 ms each on a busy machine, and this loop makes 2000 of them
    low = x.numpy().min(0)
    high = x.numpy().max(0)
    for i in range(steps):
        t = torch.tensor(i * h, dtype=torch.float64)
        g = torch.as_tensor(sde.diffusion(t), dtype=torch.float64)
        x = x + sde.drift(x, t) * h + g * math.sqrt(h) * torch.randn(x.shape, generator=gen)
        xn = x.numpy()
        if not np.isfinite(xn).all():
            raise WorkbenchError(f"the forward simulation blew up near t = {i * h:.4g}")
        np.minimum(low, xn.min(0), out=low)
        np.maximum(high, xn.max(0), out=high)
    mid = 0.5 * (low + high)
    half = 0.5 * (high - low) * 1.2 + 0.5
    return [(float(c - w), float(c + w)) for c, w in zip(mid, half, strict=True)]


#: a p_t whose narrowest feature (a std) spans fewer cells than this is under-resolved: the
#: discrete Laplacian's relative error is about (dx/w)^2/12, 2% at two cells per std, and a
#: feature narrower than a cell is not represented at all
CELLS_PER_WIDTH = 2.0


def feature_width(dataset: Any, normalizer: Any) -> float:
    """The narrowest length scale of p_0 in model units.

    Gaussian mixtures: the smallest component std (square root of the smallest covariance
    eigenvalue). Other data: the bandwidth of the KDE that :func:`density_from_data` uses
    (Scott's rule for 5000 points), the finest detail that density can hold.
    """
    mixture = dataset.mixture()
    if mixture is not None:
        model = normalizer.to_model_mixture(mixture)
        eig = torch.linalg.eigvalsh(model.covs.to(torch.float64))
        return float(torch.sqrt(eig.clamp_min(0.0)).min())
    gen = torch.Generator().manual_seed(0)
    x = normalizer.to_model(dataset.sample(5000, generator=gen).to(torch.float64))
    x = x.reshape(len(x), -1).numpy()
    return float((x.std(0) * len(x) ** (-1.0 / (x.shape[1] + 4))).min())


def resolution_check(
    sde: SDE,
    width0: float,
    spacing: Sequence[float],
    times: Iterable[float],
) -> tuple[float | None, str | None]:
    """(first resolved time, warning) for a grid of cell sizes ``spacing``.

    A linear SDE maps a feature of std w0 at t = 0 to one of std
    w(t) = sqrt(m(t)^2 w0^2 + s(t)^2) at t; p_t counts as resolved when
    w(t) >= ``CELLS_PER_WIDTH`` dx. For a non-linear SDE only p_0 is checked (its drift may
    sharpen features later, which no cheap bound sees). Returns the smallest requested time
    from which every later requested time is resolved (None if none is) and a one-line warning
    naming the under-resolved times, or (first time, None) when all are resolved.
    """
    ts = np.asarray(sorted(float(t) for t in times), dtype=np.float64)
    dx = max(float(d) for d in spacing)
    if isinstance(sde, LinearSDE):
        tt = torch.as_tensor(ts, dtype=torch.float64)
        m, s = sde.marginal_coeffs(tt)
        m_t = torch.as_tensor(m, dtype=torch.float64).expand(len(ts)).numpy()
        s_t = torch.as_tensor(s, dtype=torch.float64).expand(len(ts)).numpy()
        widths = np.sqrt(m_t * m_t * width0 * width0 + s_t * s_t)
        ok = widths >= CELLS_PER_WIDTH * dx
    else:
        widths = np.full(len(ts), width0)
        ok = np.where(ts == 0.0, width0 >= CELLS_PER_WIDTH * dx, True)
    if ok.all():
        return float(ts[0]), None
    bad = np.nonzero(~ok)[0]
    first_ok = None if bad[-1] == len(ts) - 1 else float(ts[bad[-1] + 1])
    shown = ", ".join(f"{ts[i]:.4g}" for i in bad[:6]) + (", ..." if len(bad) > 6 else "")
    worst = float(widths[bad].min())
    return first_ok, (
        f"the grid (cell {dx:.3g}) is too coarse for p_t at t = {shown}: its narrowest "
        f"feature is ~{worst:.3g} wide there, under {CELLS_PER_WIDTH:g} cells; trust those "
        + (f"times less, use t >= {first_ok:.4g}, " if first_ok is not None else "times less, ")
        + "a finer grid, or an SDE that spreads less (e.g. a smaller sigma_max)"
    )


def _kde(samples: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A Gaussian KDE with Scott's bandwidth n^(-1/(d+4)) * std per coordinate."""
    x = np.asarray(samples, dtype=np.float64)
    n, d = x.shape
    bw = x.std(0) * n ** (-1.0 / (d + 4)) + 1e-12

    def density(points: np.ndarray) -> np.ndarray:
        out = np.zeros(len(points))
        norm = 1.0 / (np.prod(bw) * (2 * math.pi) ** (d / 2) * n)
        for start in range(0, len(points), 2048):
            z = (points[start : start + 2048, None, :] - x[None]) / bw
            out[start : start + 2048] = np.exp(-0.5 * (z * z).sum(-1)).sum(1) * norm
        return out

    return density


def density_from_data(dataset: Any, normalizer: Any, axes: Sequence[np.ndarray]) -> np.ndarray:
    """The data's density in model units at the grid's cell centres: exact for mixtures
    (``normalizer.to_model_mixture``), else a KDE of 5000 samples mapped to model units."""
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))
    mixture = dataset.mixture()
    if mixture is not None:
        model = normalizer.to_model_mixture(mixture)
        logp = model.log_prob(torch.as_tensor(mesh, dtype=torch.float64))
        dens = torch.exp(logp).numpy()
    else:
        gen = torch.Generator().manual_seed(0)
        x = normalizer.to_model(dataset.sample(5000, generator=gen).to(torch.float64))
        dens = _kde(x.reshape(len(x), -1).numpy())(mesh)
    return dens.reshape([len(a) for a in axes])


# ---------------------------------------------------------------------------------------------
class _Grid:
    def __init__(self, bounds: Sequence[tuple[float, float]], n: int) -> None:
        self.n = n
        self.d = len(bounds)
        self.dx = [(hi - lo) / n for lo, hi in bounds]
        self.faces = [np.linspace(lo, hi, n + 1) for lo, hi in bounds]
        self.axes = [0.5 * (f[1:] + f[:-1]) for f in self.faces]
        k = np.arange(n)
        i = np.arange(n)
        basis = np.cos(np.pi * np.outer(i + 0.5, k) / n) * math.sqrt(2.0 / n)
        basis[:, 0] = math.sqrt(1.0 / n)
        self.V = basis  # columns: eigenvectors of the zero-flux Laplacian
        self.lam = [-4.0 / dx**2 * np.sin(np.pi * k / (2 * n)) ** 2 for dx in self.dx]
        # drift evaluation points: for axis a, faces along a, centres along the others
        self.face_points: list[torch.Tensor] = []
        for a in range(self.d):
            coords = [self.axes[b] if b != a else self.faces[a] for b in range(self.d)]
            mesh = np.stack(np.meshgrid(*coords, indexing="ij"), -1).reshape(-1, self.d)
            self.face_points.append(torch.as_tensor(mesh, dtype=torch.float64))
        self._cache: dict[float, list[np.ndarray]] = {}
        self._split_cache: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}

    def face_drift(self, sde: SDE, t: float) -> list[np.ndarray]:
        """f_a at the faces normal to axis a, zero on the walls (zero flux)."""
        # a drift without t (``sde.autonomous``) is evaluated on the grid once, not per step
        key = 0.0 if getattr(sde, "autonomous", False) else float(t)
        if key in self._cache:
            return self._cache[key]
        tt = torch.tensor(key, dtype=torch.float64)
        out = []
        for a, pts in enumerate(self.face_points):
            shape = [self.n] * self.d
            shape[a] = self.n + 1
            if isinstance(sde, LinearSDE):  # f = a(t) x: no grid-sized torch call
                coeff = _f64(sde.drift_coeff(tt))
                f = np.broadcast_to(
                    coeff * self.faces[a].reshape([-1 if b == a else 1 for b in range(self.d)]),
                    shape,
                ).copy()
            else:
                f = sde.drift(pts, tt)[:, a].numpy().reshape(shape).copy()
            idx: list[Any] = [slice(None)] * self.d
            idx[a] = 0
            f[tuple(idx)] = 0.0
            idx[a] = -1
            f[tuple(idx)] = 0.0
            out.append(f)
        if len(self._cache) > 8:
            self._cache.clear()
        self._cache[key] = out
        return out

    def divergence(self, p: np.ndarray, fs: list[np.ndarray]) -> np.ndarray:
        """-div(f p) with fluxes f(face) p(face), p(face) reconstructed from the upwind (donor)
        cell with a minmod-limited slope (MUSCL): second order where smooth, p >= 0 kept."""
        out = np.zeros_like(p)
        for a, f in enumerate(fs):
            pa = np.moveaxis(p, a, 0)
            fpos, fneg = self._split(f, a)
            diff = pa[1:] - pa[:-1]
            # minmod(d_left, d_right) = max(0, min(l, r)) + min(0, max(l, r))
            half = np.maximum(np.minimum(diff[1:], diff[:-1]), 0.0)
            half += np.minimum(np.maximum(diff[1:], diff[:-1]), 0.0)
            half *= 0.5
            flux = fpos * pa[:-1] + fneg * pa[1:]  # inner faces, between cells k and k + 1
            flux[1:] += fpos[1:] * half
            flux[:-1] -= fneg[:-1] * half
            oa = np.moveaxis(out, a, 0)
            scale = 1.0 / self.dx[a]
            oa[0] -= flux[0] * scale
            oa[1:-1] -= (flux[1:] - flux[:-1]) * scale
            oa[-1] += flux[-1] * scale
        return out

    def _split(self, f: np.ndarray, a: int) -> tuple[np.ndarray, np.ndarray]:
        """max(f, 0) and min(f, 0) at the inner faces, the axis first (cached per array)."""
        key = (id(f), a)
        hit = self._split_cache.get(key)
        if hit is None or hit[0] is not f:
            inner = np.moveaxis(f, a, 0)[1:-1]
            hit = (f, np.maximum(inner, 0.0), np.minimum(inner, 0.0))
            if len(self._split_cache) > 32:
                self._split_cache.clear()
            self._split_cache[key] = hit
        return hit[1], hit[2]

    def max_rate(self, fs: list[np.ndarray]) -> float:
        return sum(float(np.max(np.abs(f))) / dx for f, dx in zip(fs, self.dx, strict=True))

    def diffuse(self, p: np.ndarray, c: float) -> np.ndarray:
        if c <= 0:
            return p
        V = self.V
        if self.d == 1:
            return V @ (np.exp(c * self.lam[0]) * (V.T @ p))
        e = np.exp(c * (self.lam[0][:, None] + self.lam[1][None, :]))
        return V @ ((V.T @ p @ V) * e) @ V.T


def solve_fpk(
    sde: SDE,
    initial: Callable[[np.ndarray], np.ndarray] | np.ndarray,
    grid_n: int,
    times: Iterable[float],
    *,
    bounds: Sequence[tuple[float, float]] | None = None,
    samples: np.ndarray | None = None,
    progress: Callable[[float], None] | None = None,
    cancel: Any = None,
    max_dt: float | None = None,
    width0: float | None = None,
) -> FPKSolution:
    """p_t on a grid_n^d grid at ``times`` (sorted, >= 0) starting from p_0 at t = 0.

    ``initial`` is a density function of points (N, d) or an array of samples (N, d) (then a
    KDE). Without ``bounds`` the grid is sized by :func:`grid_bounds` from ``samples`` (or the
    initial samples). ``max_dt`` caps the step (default T/400, for the splitting error).
    ``width0``, the narrowest length scale of p_0 (:func:`feature_width`), lets the solution
    say in ``warnings`` at which times the grid is too coarse (:func:`resolution_check`).
    """
    ts = np.asarray(sorted(float(t) for t in times), dtype=np.float64)
    if len(ts) == 0:
        raise WorkbenchError("Fokker–Planck times must be given and be >= 0")
    check_times(ts, float(sde.T), "Fokker–Planck time")
    if callable(initial):
        density = initial
        ref = samples
    else:
        ref = np.asarray(initial, dtype=np.float64)
        if ref.ndim == 1:
            ref = ref[:, None]
        density = _kde(ref)
    if bounds is None:
        if ref is None:
            raise WorkbenchError("give bounds or samples to size the Fokker–Planck grid")
        ref = np.asarray(ref, dtype=np.float64).reshape(len(ref), -1)
        bounds = grid_bounds(sde, ref, float(ts[-1]))
    d = len(bounds)
    if d not in (1, 2):
        raise WorkbenchError(f"the Fokker–Planck solver works in 1-D and 2-D, not {d}-D")
    if grid_n < 4:
        raise WorkbenchError(f"Fokker–Planck grid must have at least 4 cells, got {grid_n}")
    _check_size(grid_n, d, len(ts))
    grid = _Grid(bounds, grid_n)
    vol = float(np.prod(grid.dx))
    mesh = np.stack(np.meshgrid(*grid.axes, indexing="ij"), -1).reshape(-1, d)
    p = np.asarray(density(mesh), dtype=np.float64).reshape([grid_n] * d)
    if not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise WorkbenchError("the initial density must be finite, >= 0 and not all zero")
    p = p / (p.sum() * vol)

    if max_dt is None:
        max_dt = float(getattr(sde, "T", 1.0)) / 400.0
    # Only an SDE that declares f = 0 on all of [0, T] skips the drift: f vanishing at a few
    # sampled times says nothing about the times between them.
    has_drift = not getattr(sde, "drift_free", False)
    out = np.empty((len(ts), *p.shape))
    mass = np.empty(len(ts))
    clipped = 0.0
    t = 0.0
    t_end = float(ts[-1])

    def drift_advance(p: np.ndarray, t0: float, span: float) -> np.ndarray:
        """Forward-Euler sub-steps over [t0, t0 + span], each within the CFL limit."""
        rate = max(
            grid.max_rate(grid.face_drift(sde, t0)),
            grid.max_rate(grid.face_drift(sde, t0 + span)),
        )
        n_sub = max(1, math.ceil(span * rate / (0.5 * CFL)))
        h = span / n_sub
        for i in range(n_sub):
            a = t0 + i * h
            p = p + h * grid.divergence(p, grid.face_drift(sde, a + 0.5 * h))
        return p

    for k, target in enumerate(ts):
        while t < target - 1e-14 * max(1.0, target):
            if is_cancelled(cancel):
                raise FPKCancelledError(f"Fokker–Planck solve cancelled at t = {t:.4g}")
            dt = min(max_dt, target - t) if has_drift else target - t
            if has_drift:
                p = drift_advance(p, t, 0.5 * dt)
            p = grid.diffuse(p, _half_g2_integral(sde, t, t + dt))
            if has_drift:
                p = drift_advance(p, t + 0.5 * dt, 0.5 * dt)
            neg = p < 0
            if neg.any():
                clipped += float(-p[neg].sum() * vol)
                p[neg] = 0.0
            t = t + dt if t + dt < target else float(target)
            if progress is not None and t_end > 0:
                progress(min(1.0, t / t_end))
        out[k] = p
        mass[k] = float(p.sum() * vol)
    if progress is not None:
        progress(1.0)
    warnings = []
    if width0 is not None:
        _, warning = resolution_check(sde, width0, grid.dx, ts)
        if warning is not None:
            warnings.append(warning)
    return FPKSolution(
        axes=grid.axes, times=ts, p=out, mass=mass, clipped=clipped, warnings=warnings
    )


def score_on_grid(solution: FPKSolution, k: int, floor: float = 1e-8) -> np.ndarray:
    """grad log p_t at time index k by central differences, shape (*grid, d); NaN where p (or
    a neighbour used) is at or below ``floor``."""
    p = solution.p[k]
    ok = p > floor
    logp = np.log(np.where(ok, p, 1.0))
    comps = []
    for a, dx in enumerate(solution.spacing):
        grad = np.gradient(logp, dx, axis=a)
        valid = ok.copy()
        pa = np.moveaxis(ok, a, 0)
        va = np.moveaxis(valid, a, 0)
        va[1:] &= pa[:-1]
        va[:-1] &= pa[1:]
        comps.append(np.where(valid, grad, np.nan))
    return np.stack(comps, -1)
