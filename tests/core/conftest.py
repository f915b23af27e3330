"""Core fixtures: an experiment's state (data, normaliser, SDE, analytic truth) built without the
GUI, as the references, clouds and score field read it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.config import ExperimentConfig, default_config
from workbench.core.analytic import AnalyticMarginal
from workbench.core.data import DataSet, Normalizer
from workbench.core.experiment import experiment_of
from workbench.core.sde import SDE, LinearSDE


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
    built = experiment_of(config)
    truth = None
    if built.mixture is not None and isinstance(built.sde, LinearSDE):
        truth = AnalyticMarginal(built.mixture, built.sde)
    return State(config, built.dataset, built.normalizer, built.sde, truth)
