"""The one recipe for an experiment (workbench.core.experiment)."""

from __future__ import annotations

import torch

from workbench.config import default_config
from workbench.core.data import Normalizer
from workbench.core.experiment import build_experiment, experiment_of, sections


def test_the_recipe_builds_every_part_in_model_units() -> None:
    config = default_config().with_overrides({"data.name": "8gaussians", "model.hidden": 16})
    built = experiment_of(config, with_model=True, seed=3)
    assert built.dataset.name == "8gaussians"
    assert built.normalizer == built.dataset.normalizer()
    assert built.mixture is not None
    raw = built.dataset.mixture()
    assert raw is not None
    # the mixture the analytic score sees is the data's, mapped to model units
    expected = built.normalizer.to_model(torch.as_tensor(raw.means, dtype=torch.float64))
    assert torch.allclose(torch.as_tensor(built.mixture.means, dtype=torch.float64), expected)
    assert built.model is not None
    assert experiment_of(config).model is None


def test_a_seed_gives_the_same_weights_and_leaves_the_global_rng_alone() -> None:
    config = default_config().with_overrides({"model.hidden": 16})
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    a = experiment_of(config, with_model=True, seed=7).model
    after = torch.rand(1)
    b = experiment_of(config, with_model=True, seed=7).model
    c = experiment_of(config, with_model=True, seed=8).model
    assert a is not None and b is not None and c is not None
    assert torch.equal(before, after)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_a_given_normaliser_defines_the_units() -> None:
    """A trained run's stored normaliser replaces the one the data would give today."""
    config = default_config().with_overrides({"data.name": "8gaussians"})
    data, sde, _ = sections(config)
    own = experiment_of(config).normalizer
    stored = Normalizer.from_attrs({**own.to_attrs(), "shift": [5.0, -5.0], "scale": [3.0, 3.0]})
    built = build_experiment(data, sde, normalizer=stored)
    assert built.normalizer == stored and built.dataset.normalizer() == stored
    assert built.mixture is not None
    x = torch.tensor([[5.0, -5.0]], dtype=torch.float64)
    assert torch.allclose(built.normalizer.to_model(x), torch.zeros(1, 2, dtype=torch.float64))
