"""Core fixtures: an experiment's state (data, normaliser, SDE, analytic truth) built without the
GUI, as the references, clouds and score field read it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.config import ExperimentConfig, default_config
from workbench.core.analytic import AnalyticMarginal
from workbench.core.data import DataSet, Normalizer, build_dataset
from workbench.core.sde import SDE, LinearSDE, build_sde


@dataclass(frozen=True, eq=False)
class State:
    """The fields of the GUI's ExperimentState that core code reads (duck-typed there)."""

    config: ExperimentConfig
    dataset: DataSet
    normalizer: Normalizer
    sde: SDE
    truth: AnalyticMarginal | None

    @property
    def dim(self) -> int:
        return self.dataset.dim

    @property
    def is_image(self) -> bool:
        return self.dataset.is_image


def experiment(**overrides: Any) -> State:
    """The default experiment with dotted-key ``overrides`` (``**{"data.name": "moons"}``)."""
    config = default_config().with_overrides(overrides)
    dataset = build_dataset(config.data.name, dict(config.data.params))
    normalizer = dataset.normalizer()
    sde = build_sde(config.sde.kind, dict(config.sde.params))
    mixture = dataset.mixture()
    truth = None
    if mixture is not None and isinstance(sde, LinearSDE):
        truth = AnalyticMarginal(normalizer.to_model_mixture(mixture), sde)
    return State(config, dataset, normalizer, sde, truth)
