"""Class-conditional sampling and classifier-free guidance, with their exact truth for mixtures.

A conditional score model answers ``model(x, t, y)`` with the score of class y,
grad log p_t(x | y), and ``model(x, t)`` (the null label) with the unconditional one. Classifier-
free guidance (Ho & Salimans 2022) samples with the field

    s_w(x, t) = (1 + w) grad log p_t(x | c) - w grad log p_t(x),

:class:`GuidedScore` wraps a model so that its ``forward(x, t)`` is that field: every sampler,
the ODE likelihood and every view take it as they take any score model, unchanged.

At t = 0 the field is the score of the "tilted" density p(x | c)^(1+w) p(x)^(-w) / Z (always
integrable: p(x) >= w_c p(x | c), so the tilt is at most w_c^(-w) p(x | c)). For t > 0 the
field is NOT the score of the noised tilted density (noising does not commute with the
powers), so a sampler that follows it does not draw from the tilted law: :func:`guidance_gap`
measures by how much. For a Gaussian-mixture the conditional score (a component's score under
the SDE) and so the field are exact; the tilt is normalised numerically on a 1-D or 2-D grid
(:class:`TiltedGrid`, log-sum-exp over the cells).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from workbench.core.metrics import noise_floor, sliced_wasserstein
from workbench.core.mixture import GaussianMixture
from workbench.errors import ConfigError

__all__ = [
    "Conditioned",
    "drop_labels",
    "GuidedReference",
    "GuidedScore",
    "TiltedGrid",
    "conditional_log_prob",
    "guide",
    "guidance_gap",
    "guided_field",
    "tilted_grid",
    "tilted_log_density",
    "UNCONDITIONAL",
]

#: ``sample.class_label`` meaning "no class": the model's unconditional score
UNCONDITIONAL = -1

#: grid cells per axis of the tilted density (1-D, 2-D) and its half-width in component stds
GRID_BINS = {1: 4096, 2: 400}
GRID_HALF_STDS = 10.0


class GuidedScore(nn.Module):
    """``forward(x, t) = (1 + w) model(x, t, c) - w model(x, t)``: a conditional model, guided.

    ``w = 0`` is plain conditional sampling (one model call per step); ``w > 0`` costs two.
    The class is kept in a buffer, so ``.to(device)`` moves it with the model and a step reads
    nothing from the host (CUDA graphs can capture it).
    """

    _label: Tensor

    def __init__(self, model: nn.Module, class_label: int, guidance: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.class_label = int(class_label)
        self.guidance = float(guidance)
        self.register_buffer("_label", torch.tensor(self.class_label), persistent=False)
        # what samplers and views read off a score model
        self.sde = getattr(model, "sde", None)
        self.output = "score"
        if hasattr(model, "sample_shape"):
            self.sample_shape = model.sample_shape

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        cond = self.model(x, t, self._label)
        if self.guidance == 0.0:
            return cond
        return (1.0 + self.guidance) * cond - self.guidance * self.model(x, t)

    def score(self, x: Tensor, t: Tensor | float) -> Tensor:
        return self(x, t)


def guide(model: nn.Module, class_label: int, guidance: float) -> nn.Module:
    """``model`` itself (no class), or :class:`GuidedScore` for class ``class_label``.

    ConfigError (keys ``class_label``, ``guidance``, unprefixed) for guidance without a class,
    a negative guidance, a class out of range, or a class asked of a model that has none (a
    network trained without labels: ``num_classes`` 0 or absent).
    """
    c, w = int(class_label), float(guidance)
    if not math.isfinite(w) or w < 0:
        raise ConfigError("guidance", f"must be a number >= 0, got {guidance!r}")
    if c == UNCONDITIONAL:
        if w > 0:
            raise ConfigError(
                "guidance",
                f"needs a class to guide towards: set sample.class_label (--class K) too, "
                f"got guidance {w:g} and no class",
            )
        return model
    k = int(getattr(model, "num_classes", 0) or 0)
    if k == 0:
        raise ConfigError(
            "class_label",
            "this model was trained without labels, so it has no class to sample: train with "
            "model.conditional = true on labelled data, or leave class_label at -1",
        )
    if not 0 <= c < k:
        raise ConfigError(
            "class_label",
            f"must be in 0 .. {k - 1} (the model's {k} classes) or -1 (no class), got {c}",
        )
    return GuidedScore(model, c, w)


# ---------------------------------------------------------------------------------------------
# the exact truth for Gaussian mixtures (components are the classes)
# ---------------------------------------------------------------------------------------------
def guided_field(
    mixture: GaussianMixture,
    x: Tensor,
    class_label: int,
    guidance: float,
    m: Tensor | float = 1.0,
    s: Tensor | float = 0.0,
) -> Tensor:
    """(1 + w) grad log p_t(x | c) - w grad log p_t(x) of the mixture noised by (m, s)."""
    w = float(guidance)
    cond = mixture.component_score(x, class_label, m, s)
    return (1.0 + w) * cond - w * mixture.score(x, m, s)


def conditional_log_prob(
    mixture: GaussianMixture,
    x: Tensor,
    class_label: int,
    m: Tensor | float = 1.0,
    s: Tensor | float = 0.0,
) -> Tensor:
    """log p_t(x | c) = log N(x; m mu_c, m^2 C_c + s^2 I) (the component without its weight)."""
    comp = mixture.component_log_prob(x, m, s)[..., class_label]
    return comp - torch.log(mixture.weights[class_label].to(x))


def tilted_log_density(
    mixture: GaussianMixture, x: Tensor, class_label: int, guidance: float
) -> Tensor:
    """(1 + w) log p(x | c) - w log p(x): the tilted density at t = 0, unnormalised."""
    w = float(guidance)
    return (1.0 + w) * conditional_log_prob(mixture, x, class_label) - w * mixture.log_prob(x)


@dataclass(frozen=True)
class TiltedGrid:
    """The tilted density p(x|c)^(1+w) p(x)^(-w) / Z on a regular grid of cells (1-D or 2-D).

    ``axes[i]`` are the cell centres along coordinate i (equal widths ``widths[i]``);
    ``log_density`` has shape (bins,) * d and is normalised: sum(exp(log_density)) * volume = 1.
    ``log_z`` is log Z, so log tilted(x) = :func:`tilted_log_density` - log_z anywhere.
    """

    mixture: GaussianMixture
    class_label: int
    guidance: float
    axes: tuple[np.ndarray, ...]
    widths: tuple[float, ...]
    log_density: np.ndarray
    log_z: float

    @property
    def density(self) -> np.ndarray:
        return np.exp(self.log_density)

    def log_prob(self, x: Tensor) -> Tensor:
        """The normalised log tilted density at points (n, d), exactly (not interpolated)."""
        x64 = x.detach().to("cpu", torch.float64).reshape(x.shape[0], -1)
        return tilted_log_density(self.mixture, x64, self.class_label, self.guidance) - self.log_z

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n float64 draws: a cell by its mass, then a uniform point in it (error at most half a
        cell per axis, far below the sampling noise of any n the grid is used with)."""
        mass = torch.from_numpy(self.density.reshape(-1))
        cells = torch.multinomial(mass / mass.sum(), int(n), replacement=True, generator=generator)
        shape = self.log_density.shape
        out = []
        for i, (centres, width) in enumerate(zip(self.axes, self.widths, strict=True)):
            stride = math.prod(shape[i + 1 :])
            index = (cells // stride) % shape[i]
            jitter = torch.rand(int(n), generator=generator, dtype=torch.float64) - 0.5
            out.append(torch.from_numpy(centres)[index] + width * jitter)
        return torch.stack(out, 1)


def tilted_grid(
    mixture: GaussianMixture,
    class_label: int,
    guidance: float,
    bins: int | None = None,
    bounds: Sequence[tuple[float, float]] | None = None,
) -> TiltedGrid:
    """The tilted density of class ``class_label`` at guidance w, normalised on a grid.

    The default window is the component's mean +- :data:`GRID_HALF_STDS` of its largest std
    per axis: the tilt is at most w_c^(-w) p(x | c) (see the module docstring), so the mass
    outside is below that of a Gaussian beyond 10 std, relative to Z, which the tilt's own
    mass near mu_c bounds from below.
    """
    d = mixture.dim
    if d not in (1, 2):
        raise ValueError(f"the tilted density is normalised on a grid in 1-D or 2-D, not {d}-D")
    if not 0 <= int(class_label) < mixture.n_components:
        raise ValueError(f"class {class_label} is not one of the {mixture.n_components} components")
    bins = int(bins or GRID_BINS[d])
    if bounds is None:
        mu = mixture.means[class_label].numpy()
        half = GRID_HALF_STDS * float(mixture.eigvals[class_label].max().sqrt())
        bounds = [(float(m) - half, float(m) + half) for m in mu]
    axes, widths = [], []
    for low, high in bounds:
        width = (high - low) / bins
        axes.append(low + (np.arange(bins) + 0.5) * width)
        widths.append(width)
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
    log_t = tilted_log_density(mixture, torch.from_numpy(mesh), class_label, guidance)
    log_volume = float(np.sum(np.log(widths)))
    log_z = float(torch.logsumexp(log_t, 0)) + log_volume
    log_density = (log_t - log_z).numpy().reshape((bins,) * d)
    return TiltedGrid(
        mixture, int(class_label), float(guidance), tuple(axes), tuple(widths), log_density, log_z
    )


def guidance_gap(
    samples: Tensor | np.ndarray,
    grid: TiltedGrid,
    seed: int = 0,
    repeats: int = 3,
) -> dict[str, Any]:
    """How far ``samples`` (same units as the grid's mixture) are from the tilted density.

    - ``log_density_gap``: mean log tilted(samples) - mean log tilted(exact draws), 0 up to
      noise for samples of the tilted law; its floor is (0, std(log tilted) / sqrt(n)).
    - ``sw``: sliced 2-Wasserstein distance to as many draws of the tilted law, with the floor
      (mean, std) of that distance between two such draws (:func:`noise_floor`).
    - ``sw_conditional``: the same distance to draws of p(x | c) itself (w = 0's target).
    """
    x = torch.as_tensor(np.asarray(samples) if not isinstance(samples, Tensor) else samples)
    x = x.detach().to("cpu", torch.float64).reshape(x.shape[0], -1)
    n = int(x.shape[0])
    gen = torch.Generator().manual_seed(seed)
    ref = grid.sample(max(n, 20000), gen)
    ref_logp = grid.log_prob(ref)
    gap = float(grid.log_prob(x).mean() - ref_logp.mean())
    mixture, c = grid.mixture, grid.class_label
    comp = GaussianMixture(
        torch.ones(1, dtype=torch.float64), mixture.means[c : c + 1], mixture.covs[c : c + 1]
    )
    return {
        "n": n,
        "class_label": c,
        "guidance": grid.guidance,
        "log_density_gap": gap,
        "log_density_gap_floor": (0.0, float(ref_logp.std()) / math.sqrt(n)),
        "sw": sliced_wasserstein(x, ref[:n], generator=torch.Generator().manual_seed(seed + 1)),
        "sw_floor": noise_floor(
            "sw", lambda m, g: grid.sample(m, g), n, repeats=repeats, generator=gen
        ),
        "sw_conditional": sliced_wasserstein(
            x, comp.sample(n, gen, torch.float64), generator=torch.Generator().manual_seed(seed + 2)
        ),
    }


# ---------------------------------------------------------------------------------------------
# the views' reference under guidance
# ---------------------------------------------------------------------------------------------
class GuidedReference:
    """The views' truth for class c at guidance w (the reference protocol of
    :mod:`workbench.core.reference`: ``density(t, pts)``, ``score(t, pts)``, model units).

    Its density is the tilted q_t(x) = p_t(x | c)^(1+w) p_t(x)^(-w) / Z_t, normalised on a grid
    at each t, and its score the guided field, which is exactly grad log q_t: the pair the
    guided sampler follows step by step. At t = 0, q_0 is the tilted target; for t > 0 the q_t
    are NOT the marginals of one diffusion (noising does not commute with the powers), so the
    guided sampler's particles part from them: the Densities view shows by how much.
    """

    kind = "guided"
    short = "tilted"

    def __init__(self, base: Any, mixture: GaussianMixture, sde: Any, c: int, w: float) -> None:
        self.base, self.mixture, self.sde = base, mixture, sde
        self.class_label, self.guidance = int(c), float(w)
        self.key = getattr(base, "key", None)
        self.dim = mixture.dim
        self.cloud = getattr(base, "cloud", None)
        self.label = f"tilted p_t(x|{c})^{1 + w:g} p_t(x)^−{w:g}"
        self.note = (
            f"class {c}, guidance w = {w:g}: the tilted p_t(x|c)^(1+w) p_t(x)^(−w), normalised "
            "on a grid; its score is the guided field (guided sampling does not follow it)"
        )
        self._log_z: dict[float, float] = {}

    def _coeffs(self, t: Any, n: int) -> tuple[Tensor, Tensor]:
        tt = torch.as_tensor(np.asarray(t, dtype=np.float64)).reshape(-1).expand(n)
        m, s = self.sde.marginal_coeffs(tt)
        return m, s

    def log_z(self, t: float) -> float:
        """log Z_t of the tilted q_t, on a grid (cached per t)."""
        t = float(t)
        if t not in self._log_z:
            m, s = self.sde.marginal_coeffs(torch.tensor(t, dtype=torch.float64))
            noised = self.mixture.noised(float(m), float(s))
            bins = 2048 if self.dim == 1 else 256
            self._log_z[t] = tilted_grid(noised, self.class_label, self.guidance, bins).log_z
        return self._log_z[t]

    def density(self, t: Any, pts: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(pts, dtype=np.float64))
        m, s = self._coeffs(t, x.shape[0])
        w, c = self.guidance, self.class_label
        log_q = (1 + w) * conditional_log_prob(
            self.mixture, x, c, m, s
        ) - w * self.mixture.log_prob(x, m, s)
        times = np.broadcast_to(np.asarray(t, dtype=np.float64).reshape(-1), (x.shape[0],))
        log_z = np.array([self.log_z(v) for v in times]) if np.ndim(t) else self.log_z(float(t))
        return np.exp(log_q.numpy() - log_z)

    def score(self, t: float, pts: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(pts, dtype=np.float64))
        m, s = self._coeffs(t, x.shape[0])
        return guided_field(self.mixture, x, self.class_label, self.guidance, m, s).numpy()


# ---------------------------------------------------------------------------------------------
# training a conditional network
# ---------------------------------------------------------------------------------------------
class Conditioned:
    """A conditional model with a batch's labels bound: ``forward(x, t) = model(x, t, y)``, as
    the losses call a model (their code is the same for conditional and plain training).

    A batch repeated k times (sliced score matching's copies per projection, ``x.repeat``)
    gets its labels repeated the same way.
    """

    def __init__(self, model: Any, labels: Tensor) -> None:
        self.model = model
        self.labels = labels

    def _y(self, x: Tensor) -> Tensor:
        n = self.labels.shape[0]
        return self.labels if x.shape[0] == n else self.labels.repeat(x.shape[0] // n)

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        return self.model(x, t, self._y(x))

    def sigma_score(self, x: Tensor, t: Tensor) -> Tensor:
        return self.model.sigma_score(x, t, self._y(x))

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        """The flow-matching loss's velocity, in the network's own stable form (``v``)."""
        return self.model.velocity(x, t, self._y(x))


def drop_labels(
    labels: Tensor, p_uncond: float, num_classes: int, generator: torch.Generator | None = None
) -> Tensor:
    """``labels`` with each replaced by the null label (``num_classes``) with probability
    ``p_uncond``, independently: one network then learns both grad log p_t(x | c) and, from
    the dropped ones, grad log p_t(x) (Ho & Salimans 2022). Drawn on the labels' device from
    ``generator``; no host sync."""
    if p_uncond <= 0:
        return labels
    drop = torch.rand(labels.shape, generator=generator, device=labels.device) < p_uncond
    return torch.where(drop, torch.full_like(labels, int(num_classes)), labels)
