"""What the views need of an experiment, built once per valid config: the data set, its
normalisation, the SDE, and the analytic truth where the data are a Gaussian mixture."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

import workbench.io  # noqa: F401  (registers the reader of .h5 data files)
from workbench.config import ExperimentConfig
from workbench.core.analytic import AnalyticMarginal
from workbench.core.data import DataSet, Normalizer
from workbench.core.experiment import (
    build_model,
    experiment_of,
    model_section,
    model_units_mixture,
)
from workbench.core.sde import SDE, LinearSDE

__all__ = ["ExperimentState"]


@dataclass(frozen=True, eq=False)
class ExperimentState:
    config: ExperimentConfig
    dataset: DataSet
    normalizer: Normalizer
    sde: SDE
    truth: AnalyticMarginal | None

    @classmethod
    def build(cls, config: ExperimentConfig) -> ExperimentState:
        """May raise WorkbenchError (a data file that does not load, for one)."""
        built = experiment_of(config)
        truth = None
        if built.mixture is not None and isinstance(built.sde, LinearSDE):
            truth = AnalyticMarginal(built.mixture, built.sde)
        return cls(config, built.dataset, built.normalizer, built.sde, truth)

    def build_model(self) -> nn.Module:
        """The config's score model for this experiment, with fresh weights (the recipe's
        last step, :func:`workbench.core.experiment.build_model`); may raise WorkbenchError."""
        mixture = model_units_mixture(self.dataset, self.normalizer)
        return build_model(model_section(self.config), self.sde, self.dataset, mixture)

    @property
    def dim(self) -> int:
        return self.dataset.dim

    @property
    def is_image(self) -> bool:
        return self.dataset.is_image
