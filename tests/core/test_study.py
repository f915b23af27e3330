"""The study's measurements (workbench.core.study) on exact mixtures: counted NFE, the
log-density gap, the component proportions, the pathwise error and the score error e(t)."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.core.analytic import AnalyticMarginal
from workbench.core.mixture import GaussianMixture
from workbench.core.samplers import SAMPLERS, ODESampler, build_sampler
from workbench.core.sde import build_sde
from workbench.core.study import (
    count_nfe,
    floors,
    is_stochastic,
    log_density_gap,
    pathwise_error,
    proportion_tv,
    proportions,
    score_error_curve,
    steps_for_nfe,
)


def _mixture() -> GaussianMixture:
    return GaussianMixture.isotropic([[-2.0], [0.5], [3.0]], [0.4, 0.6, 0.5], [0.25, 0.35, 0.4])


def _maker(name: str, **extra: object):  # type: ignore[no-untyped-def]
    sde = build_sde("vp", {})

    def make(steps: int, score: object) -> object:
        return build_sampler(sde, score, {"sampler": name, "steps": steps, **extra})  # type: ignore[arg-type]

    return make


@pytest.mark.parametrize(
    ("name", "extra", "budget", "steps", "cost"),
    [
        ("em", {}, 5, 4, 5),  # one per step + the final denoise
        ("em", {"denoise": False}, 7, 7, 7),
        ("pc", {"n_corrector_steps": 1}, 5, 2, 5),  # predictor + corrector per step
        ("pc", {"n_corrector_steps": 1}, 10, 4, 9),  # 10 is out of reach: 9 under it
        ("ode", {"integrator": "heun"}, 5, 2, 5),
        ("ode", {"integrator": "rk4", "denoise": False}, 12, 3, 12),
    ],
)
def test_steps_for_nfe_counts_evaluations(
    name: str, extra: dict[str, object], budget: int, steps: int, cost: int
) -> None:
    make = _maker(name, **extra)
    assert steps_for_nfe(make, budget, 1) == (steps, cost)
    assert count_nfe(make, steps, 1) == cost


def test_every_registered_fixed_grid_sampler_is_budgeted() -> None:
    """A sampler added to the registry gets a step count that never exceeds the budget."""
    for name in SAMPLERS.names():
        make = _maker(name, integrator="euler")
        steps, cost = steps_for_nfe(make, 20, 2)
        assert 1 <= cost <= 20 and cost == count_nfe(make, steps, 2), name
        assert cost >= 20 - 4, name  # within one step's cost of the budget


def test_deterministic_samplers_say_so() -> None:
    sde = build_sde("vp", {})
    assert not is_stochastic(ODESampler(sde, lambda x, t: -x, integrator="heun", steps=3))
    assert is_stochastic(build_sampler(sde, lambda x, t: -x, {"sampler": "em"}))
    assert is_stochastic(object())  # a sampler that does not say is not claimed deterministic


def test_pathwise_error_is_rms_distance() -> None:
    x = torch.randn(500, 3, generator=torch.Generator().manual_seed(0))
    assert pathwise_error(x, x) == 0.0
    shift = torch.tensor([3.0, 0.0, 4.0])
    assert pathwise_error(x + shift, x) == pytest.approx(5.0, rel=1e-6)


def test_true_samples_meet_their_floors_and_spread_ones_do_not() -> None:
    mixture = _mixture()
    n = 1000
    gen = torch.Generator().manual_seed(1)
    reference = mixture.sample(20000, gen, torch.float64)
    fl = floors(mixture, n, reference, seed=2)
    mean, std = fl["log_density_gap"]
    assert mean == 0.0 and 0 < std < 0.1
    true = mixture.sample(n, gen, torch.float64)
    assert abs(log_density_gap(mixture, true, reference)) < 4 * std
    # samples spread 1.5x about the mean sit where p is lower: a clearly negative gap
    centre = mixture.mean()
    spread = centre + 1.5 * (true - centre)
    assert log_density_gap(mixture, spread, reference) < -20 * std
    tv_mean, tv_std = fl["proportion_tv"]
    assert 0 <= tv_mean < 0.1
    assert proportion_tv(mixture, true) < tv_mean + 4 * max(tv_std, 1 / math.sqrt(n))
    for name in ("sw", "mmd", "energy"):
        assert math.isfinite(fl[name][0]) and fl[name][1] >= 0


def test_proportions_of_one_mode() -> None:
    mixture = _mixture()
    at_first = torch.full((100, 1), -2.0, dtype=torch.float64)
    assert proportions(mixture, at_first).tolist() == [1.0, 0.0, 0.0]
    w = mixture.weights.tolist()
    assert proportion_tv(mixture, at_first) == pytest.approx(1.0 - w[0])


def test_score_error_is_zero_for_the_truth_and_grows_with_a_wrong_score() -> None:
    truth = AnalyticMarginal(_mixture(), build_sde("vp", {}))
    times = [0.01, 0.1, 0.5, 1.0]
    exact = score_error_curve(truth.score, truth, times, 500, seed=0)
    assert exact.max() < 1e-8
    zero = score_error_curve(lambda x, t: torch.zeros_like(x), truth, times, 500, seed=0)
    assert (zero > 1e-3).all()
    # the same seed gives the same points: the curve is a function of the model alone
    again = score_error_curve(lambda x, t: torch.zeros_like(x), truth, times, 500, seed=0)
    assert (again == zero).all()
