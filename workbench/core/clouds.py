"""Forward particles: the views' draws from p_t, the marginal of the forward SDE at time t.

For a linear SDE, x_t = m(t) x0 + s(t) z exactly: :class:`ForwardCloud` draws data points x0 and
standard normal z once (fixed seed) and gives the particles at any t for one multiply-add, so a
moving time slider changes the picture smoothly. An SDE without closed-form marginals has its
particles simulated once on a grid of times (Euler–Maruyama, by the Fokker–Planck reference):
:class:`SimulatedCloud` serves the snapshot nearest t through the same interface.

``state`` is duck-typed: anything with ``sde``, ``dataset``, ``normalizer`` and ``config.data``
(the GUI's experiment state).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from workbench.core.sde import LinearSDE

__all__ = ["ForwardCloud", "SimulatedCloud", "N_PARTICLES", "SEED"]

N_PARTICLES = 20000
SEED = 20240


class ForwardCloud:
    """Fixed data points x0 (model units) and noise z; ``at(t)`` = m(t) x0 + s(t) z, exactly p_t."""

    def __init__(
        self,
        state: Any,
        n: int = N_PARTICLES,
        seed: int = SEED,
        reuse: ForwardCloud | None = None,
    ) -> None:
        """Draws x0 and z, or takes them from ``reuse`` when it was drawn for the same data
        (a change of the SDE or of training settings then costs nothing)."""
        sde = state.sde
        if not isinstance(sde, LinearSDE):
            raise TypeError("the forward cloud needs a linear SDE")
        self.sde = sde
        self.key = (state.config.data, int(n), int(seed))
        self.x0: np.ndarray
        self.z: np.ndarray
        self.q: float
        self.n: int
        self.dim: int
        if reuse is not None and reuse.key == self.key:
            self.x0, self.z, self.q = reuse.x0, reuse.z, reuse.q
            self.n, self.dim = reuse.n, reuse.dim
            return
        generator = torch.Generator().manual_seed(seed)
        x0 = state.dataset.sample(n, generator, dtype=torch.float64)
        x0 = state.normalizer.to_model(x0).reshape(n, -1)
        self.x0 = x0.numpy().astype(np.float64)
        self.z = torch.randn(self.x0.shape, generator=generator, dtype=torch.float64).numpy()
        self.n, self.dim = self.x0.shape
        finite = self.x0[np.isfinite(self.x0)]
        self.q = float(np.quantile(np.abs(finite), 0.999)) if finite.size else 1.0
        self.q = max(self.q, 1e-3)

    def coeffs(self, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(m(t), s(t)) as float64 arrays shaped like t."""
        tt = torch.as_tensor(np.asarray(t, dtype=np.float64))
        m, s = self.sde.marginal_coeffs(tt)
        return m.numpy(), s.numpy()

    def at(self, t: float) -> np.ndarray:
        m, s = self.coeffs(t)
        return float(m) * self.x0 + float(s) * self.z

    def at_many(self, times: np.ndarray) -> np.ndarray:
        """The particles at each of ``times``: (len(times), n, dim)."""
        m, s = self.coeffs(np.asarray(times, dtype=np.float64))
        return m[:, None, None] * self.x0[None] + s[:, None, None] * self.z[None]

    def half_width(self, t: float | np.ndarray) -> Any:
        """h(t) = 1.1 m(t) q + 4 s(t): the window holds the data's spread and the noise's."""
        m, s = self.coeffs(t)
        h = 1.1 * m * self.q + 4.0 * s
        return float(h) if np.ndim(h) == 0 else h


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
