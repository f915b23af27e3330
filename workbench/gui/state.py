"""What the views need of an experiment, built once per valid config: the data set, its
normalisation, the SDE, and the analytic truth where the data are a Gaussian mixture."""

from __future__ import annotations

from dataclasses import dataclass

import workbench.io  # noqa: F401  (registers the reader of .h5 data files)
from workbench.config import ExperimentConfig
from workbench.core.analytic import AnalyticMarginal
from workbench.core.data import DataSet, Normalizer, build_dataset
from workbench.core.sde import SDE, LinearSDE, build_sde

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
        dataset = build_dataset(config.data.name, dict(config.data.params))
        normalizer = dataset.normalizer()
        sde = build_sde(config.sde.kind, dict(config.sde.params))
        mixture = dataset.mixture()
        truth = None
        if mixture is not None and isinstance(sde, LinearSDE):
            truth = AnalyticMarginal(normalizer.to_model_mixture(mixture), sde)
        return cls(config, dataset, normalizer, sde, truth)

    @property
    def dim(self) -> int:
        return self.dataset.dim

    @property
    def is_image(self) -> bool:
        return self.dataset.is_image
