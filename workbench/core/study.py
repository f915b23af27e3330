"""The measurements of a sampler and loss study, against the exact truth of mixture data.

A study asks two questions with the truth known (Gaussian-mixture data, :mod:`.mixture`):

* **samplers**: how far are a sampler's samples from the data at a given number of score
  evaluations (NFE)? Every sampler at one budget starts from the same prior draw x_T, so the
  differences between them are the samplers' own. Measured (all in data units):

  - the log-density gap  E_q[log p(X)] - E_p[log p(Y)]  with p the data mixture, q the samples:
    mean log p of the samples minus that of true data samples. A sampler that spreads mass off
    the modes scores below 0; its noise at n samples is std_p(log p)/sqrt(n);
  - the component proportions: each sample assigned to its most responsible component
    (argmax_k p(k | x)), and the total-variation distance 1/2 sum_k |hat w_k - w_k| to the
    weights. Overlapping components make even true data miss the weights a little: the floor
    is the same TV for n true data points;
  - the two-sample distances of :mod:`.metrics` (sliced Wasserstein, MMD², energy), beside their
    noise floors (the distance between two true samples of the same size);
  - for deterministic samplers (the probability-flow ODE and its kin: ``stochastic`` false),
    the pathwise error sqrt(mean_i |x_i - x_ref,i|²) against a tight-tolerance solution of the
    same ODE from the same x_T: the discretisation error itself, free of sampling noise.

* **losses**: how well does each training loss learn the score? The weighted score error

      e(t) = E_{x_t ~ p_t} s(t)² |s_θ(x_t, t) - ∇log p_t(x_t)|²

  on a fixed grid of t, with p_t the exact marginal (:class:`.analytic.AnalyticMarginal`), in
  model units (where the network works). s(t)² makes e(t) the error of the noise prediction
  s(t) s_θ = -ε̂, comparable across t.

NFE are counted, not assumed: :func:`steps_for_nfe` builds the sampler at a few step counts and
counts the score evaluations of a one-particle run, so a sampler added to the registry with any
cost per step (a corrector, a second-order step, a final denoise) gets the right step count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from workbench.core.analytic import AnalyticMarginal
from workbench.core.metrics import METRICS, noise_floor
from workbench.core.mixture import GaussianMixture

__all__ = [
    "DISTANCES",
    "count_nfe",
    "floors",
    "is_stochastic",
    "log_density_gap",
    "pathwise_error",
    "proportion_tv",
    "proportions",
    "sample_metrics",
    "score_error_curve",
    "steps_for_nfe",
]

#: the two-sample distances a study reports, by their :data:`METRICS` names
DISTANCES = ("sw", "mmd", "energy")


def is_stochastic(sampler: Any) -> bool:
    """Whether a sampler draws noise after x_T. Read off the instance, so a sampler whose
    randomness depends on its settings (a churn parameter) may answer with a property;
    a sampler that does not say is taken as stochastic (no pathwise error is claimed)."""
    return bool(getattr(sampler, "stochastic", True))


# ---------------------------------------------------------------------------------------------
# NFE -> steps
# ---------------------------------------------------------------------------------------------
def _standard_score(x: Tensor, t: Tensor) -> Tensor:
    # the score of N(0, I): finite everywhere, so a probe never divides by a zero score
    return -x


def count_nfe(make: Callable[[int, Any], Any], steps: int, shape: int | Sequence[int]) -> int:
    """Score evaluations of one run of the sampler ``make(steps, score_fn)`` on one particle
    of ``shape`` (a sample's shape, or its number of values)."""
    sampler = make(steps, _standard_score)
    x_T = torch.zeros(1, *((shape,) if isinstance(shape, int) else tuple(shape)))
    for _ in sampler.run(x_T, torch.Generator().manual_seed(0)):
        pass
    return int(sampler.nfe)


def steps_for_nfe(
    make: Callable[[int, Any], Any], nfe: int, shape: int | Sequence[int]
) -> tuple[int, int]:
    """The step count whose run costs ``nfe`` score evaluations, and that cost.

    The cost of a fixed-grid sampler is affine in the steps, nfe(s) = a s + b (a evaluations
    per step, b for a final denoise or a first step); a and b are counted at s = 1, 2, the
    candidate s = (nfe - b) / a is checked by counting again, and when no step count hits the
    budget exactly (a second-order step costs 2 per step) the largest one under it is taken
    (s = 1 if even that is over): the actual count is what is returned and recorded.
    """
    one, two = count_nfe(make, 1, shape), count_nfe(make, 2, shape)
    per_step = max(two - one, 1)
    base = one - per_step
    guess = max(1, (nfe - base) // per_step)
    best = (1, one)
    for steps in sorted({max(1, guess - 1), guess, guess + 1}):
        cost = one if steps == 1 else count_nfe(make, steps, shape)
        if cost <= nfe and steps >= best[0]:
            best = (steps, cost)
    return best


# ---------------------------------------------------------------------------------------------
# sample quality against the mixture
# ---------------------------------------------------------------------------------------------
def _flat64(x: Tensor | np.ndarray) -> Tensor:
    t = torch.as_tensor(np.asarray(x)) if not isinstance(x, Tensor) else x
    return t.detach().to("cpu", torch.float64).reshape(t.shape[0], -1)


def log_density_gap(mixture: GaussianMixture, samples: Tensor, reference: Tensor) -> float:
    """mean log p(samples) - mean log p(reference), p the mixture (0 for a perfect sampler,
    up to the reference's and the samples' Monte Carlo noise)."""
    return float(
        mixture.log_prob(_flat64(samples)).mean() - mixture.log_prob(_flat64(reference)).mean()
    )


def proportions(mixture: GaussianMixture, x: Tensor) -> np.ndarray:
    """The share of points whose most responsible component is k, for each k."""
    labels = mixture.responsibilities(_flat64(x)).argmax(-1)
    counts = torch.bincount(labels, minlength=mixture.n_components).to(torch.float64)
    return (counts / max(len(labels), 1)).numpy()


def proportion_tv(mixture: GaussianMixture, x: Tensor) -> float:
    """Total-variation distance 1/2 sum_k |hat w_k - w_k| of the assigned proportions."""
    return float(0.5 * np.abs(proportions(mixture, x) - mixture.weights.numpy()).sum())


def pathwise_error(x: Tensor, x_ref: Tensor) -> float:
    """RMS over particles of |x_i - x_ref,i| (both from the same x_T, in the same order)."""
    diff = _flat64(x) - _flat64(x_ref)
    return float(diff.pow(2).sum(-1).mean().sqrt())


def sample_metrics(
    mixture: GaussianMixture, samples: Tensor, reference: Tensor, seed: int
) -> dict[str, float]:
    """Every sample-quality number of a study for ``samples`` (data units): the log-density gap
    against ``reference`` (true data, as large as affordable), the proportions' TV, and the
    :data:`DISTANCES` against the first len(samples) points of ``reference``."""
    x = _flat64(samples)
    ref = _flat64(reference)
    out = {
        "log_density_gap": log_density_gap(mixture, x, ref),
        "proportion_tv": proportion_tv(mixture, x),
    }
    y = ref[: len(x)]
    for name in DISTANCES:
        out[name] = float(METRICS.get(name)(x, y, generator=torch.Generator().manual_seed(seed)))
    return out


def floors(
    mixture: GaussianMixture, n: int, reference: Tensor, seed: int, repeats: int = 3
) -> dict[str, tuple[float, float]]:
    """(mean, std) of each measurement for n true data points: what a perfect sampler scores
    at this n. The log-density gap's is (0, std_p(log p)/sqrt(n)), its sampling noise."""
    gen = torch.Generator().manual_seed(seed)

    def draw(m: int, g: torch.Generator | None) -> Tensor:
        return mixture.sample(m, g, torch.float64)

    logp = mixture.log_prob(_flat64(reference))
    out: dict[str, tuple[float, float]] = {
        "log_density_gap": (0.0, float(logp.std()) / math.sqrt(n))
    }
    tvs = [proportion_tv(mixture, draw(n, gen)) for _ in range(repeats)]
    out["proportion_tv"] = (float(np.mean(tvs)), float(np.std(tvs, ddof=1)) if repeats > 1 else 0.0)
    for name in DISTANCES:
        out[name] = noise_floor(name, draw, n, repeats=repeats, generator=gen)
    return out


# ---------------------------------------------------------------------------------------------
# losses: the weighted score error as a function of t
# ---------------------------------------------------------------------------------------------
def score_error_curve(
    model: Callable[[Tensor, Tensor], Tensor],
    truth: AnalyticMarginal,
    times: Sequence[float],
    n: int,
    seed: int,
    device: torch.device | str = "cpu",
    sample_shape: Sequence[int] | None = None,
) -> np.ndarray:
    """e(t) = E_{x_t ~ p_t} s(t)² |model(x_t, t) - ∇log p_t(x_t)|² at each of ``times``, by
    Monte Carlo over ``n`` exact draws of p_t per time (seeded: every model meets the same
    points, so differences between models are not sampling noise). The model sees its points
    shaped (n, *sample_shape) (default: flat vectors)."""
    gen = torch.Generator().manual_seed(seed)
    out = np.empty(len(times))
    for i, t in enumerate(times):
        x = truth.sample(n, float(t), generator=gen, dtype=torch.float64)
        _, s = truth.sde.marginal_coeffs(torch.tensor(float(t), dtype=torch.float64))
        true = truth.score(x, float(t))
        tt = torch.full((n,), float(t), dtype=torch.float32, device=device)
        with torch.no_grad():
            shaped = x.reshape(n, *sample_shape) if sample_shape is not None else x
            got = model(shaped.to(device, torch.float32), tt).to("cpu", torch.float64)
        err = (got.reshape(n, -1) - true.reshape(n, -1)).pow(2).sum(-1).mean()
        out[i] = float(s) ** 2 * float(err)
    return out
