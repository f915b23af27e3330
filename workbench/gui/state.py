"""What the views need of an experiment, built once per valid config: the data set, its
normalisation, the SDE, and the analytic truth where the data are a Gaussian mixture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
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

__all__ = ["ExperimentState", "Units", "preload_training"]

_preloaded = False


def preload_training() -> None:
    """Import what the first training step imports, here, once, before the window shows.

    torch imports ``torch._dynamo`` (some 800 modules: sympy, mpmath, ...) the first time an
    optimizer steps. Done by the training worker, that import holds the GIL in long stretches
    (unmarshalling, module bodies) and the GUI thread, which needs the GIL for every Python
    slot, froze for 0.15-0.5 s at each first Train. A one-parameter Adam step pays it here
    (the main window calls this as it is made).
    """
    global _preloaded
    if _preloaded:
        return
    _preloaded = True
    import torch

    p = torch.zeros(1, requires_grad=True)
    p.grad = torch.zeros(1)
    optimizer = torch.optim.Adam([p], lr=1e-3)
    optimizer.step()
    optimizer.zero_grad()


@dataclass(frozen=True, eq=False)
class ExperimentState:
    config: ExperimentConfig
    dataset: DataSet
    normalizer: Normalizer
    sde: SDE
    truth: AnalyticMarginal | None

    @classmethod
    def build(cls, config: ExperimentConfig) -> ExperimentState:
        """May raise WorkbenchError (a data file that does not load, for one). Slow for a big
        data file: the window calls it in a worker thread."""
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


@dataclass(frozen=True, eq=False)
class Units:
    """How the views draw points, densities and scores: in data units (the default: what the
    Data preview shows, the user's own coordinates) or in the model's normalised units.

    The maths is the normaliser's (:class:`~workbench.core.data.Normalizer`: x = shift +
    scale y, p_data = p_model / prod(scale), s_data = s_model / scale); in model units, or with
    no normaliser, every map is the identity. Views compute in model units and map at the end.
    """

    normalizer: Normalizer | None = None
    model: bool = False

    @classmethod
    def of(cls, state: ExperimentState | None, model: bool) -> Units:
        return cls(None if state is None else state.normalizer, bool(model))

    @property
    def identity(self) -> bool:
        return self.model or self.normalizer is None

    def _through(self) -> Normalizer | None:
        """The normaliser the maps go through, None where each is the identity."""
        return None if self.model else self.normalizer

    @property
    def name(self) -> str:
        return "model units" if self.model else "data units"

    def label(self, axis: str) -> str:
        """An axis label: "x₁ (data units)" or "x₁ (model units)"."""
        return f"{axis} ({self.name})"

    def points(self, y: Any) -> np.ndarray:
        """Model-unit points (..., c) in the units shown."""
        y = np.asarray(y, dtype=np.float64)
        n = self._through()
        return y if n is None else n.points_to_data(y)

    def density(self, p: Any, coords: int) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        n = self._through()
        return p if n is None else n.density_to_data(p, coords)

    def score(self, s: Any) -> np.ndarray:
        s = np.asarray(s, dtype=np.float64)
        n = self._through()
        return s if n is None else n.score_to_data(s)

    def window(self, half: float, coords: int) -> tuple[np.ndarray, np.ndarray]:
        """The model-unit window [-half, half]^coords as (low, high) corners shown."""
        n = self._through()
        if n is None:
            return np.full(coords, -float(half)), np.full(coords, float(half))
        return n.rect_to_data(half, coords)
