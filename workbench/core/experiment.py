"""One recipe for an experiment: data set -> normaliser -> SDE -> score model.

Training, sampling, the NLL, the Fokker–Planck solve, the GUI's views and the inspector all
need the same chain, and it must be the same chain everywhere, or a model is read back in other
units than it was trained in:

1. the data set of ``[data]`` (or one given: a trained run's, carrying its stored normaliser,
   or the stand-in for a data file that is gone);
2. its normaliser, which defines the model's units, x_model = (x_data - shift) / scale (one
   given replaces the data's own, so a run samples in the units it was trained in);
3. the SDE of ``[sde]``;
4. the data's Gaussian mixture mapped to model units, where the data are one (the analytic
   score and the exact marginals need it there);
5. the score model of ``[model]``, for samples of the data's shape (initial weights from
   ``seed``, without touching the caller's global RNG, when one is given).

Core never imports ``workbench.config``, so the recipe takes the typed values of each section
(:class:`Section`: its kind and its keys); :func:`sections` reads them off an experiment config
by attribute, and :func:`experiment_of` is the recipe for a whole config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch
from torch import nn

from workbench.core.data import DataSet, Normalizer, build_dataset
from workbench.core.mixture import GaussianMixture
from workbench.core.nets import build_score_model
from workbench.core.sde import SDE, build_sde
from workbench.errors import ConfigError

__all__ = [
    "Experiment",
    "ExperimentSections",
    "Section",
    "build_data",
    "build_experiment",
    "build_model",
    "data_section",
    "dataset_of",
    "experiment_of",
    "model_section",
    "model_units_mixture",
    "sde_of",
    "sde_section",
    "sections",
]


class ExperimentSections(Protocol):
    """What core reads of an experiment config: its sections, each with its declared keys as
    attributes (``workbench.config.ExperimentConfig`` is one). Core depends on this shape, never
    on the config module."""

    @property
    def data(self) -> Any: ...
    @property
    def sde(self) -> Any: ...
    @property
    def model(self) -> Any: ...
    @property
    def loss(self) -> Any: ...
    @property
    def train(self) -> Any: ...


class Section(NamedTuple):
    """One config section as the recipe reads it: ``kind`` (for [data]: the data set's name)
    and the section's other keys."""

    kind: str
    params: Mapping[str, Any]


@dataclass(frozen=True, eq=False)
class Experiment:
    """What an experiment is made of. ``model`` is None when it was not asked for;
    ``mixture`` is the data's Gaussian mixture in model units (None: the data are not one)."""

    dataset: DataSet
    normalizer: Normalizer
    sde: SDE
    model: nn.Module | None
    mixture: GaussianMixture | None


def build_data(
    data: Section, *, dataset: DataSet | None = None, normalizer: Normalizer | None = None
) -> DataSet:
    """Steps 1-2: the data set (``dataset`` if given, else ``data``'s), mapping to model units
    by ``normalizer`` when one is given, else by its own."""
    found = dataset if dataset is not None else build_dataset(data.kind, dict(data.params))
    return found if normalizer is None else found.with_normalizer(normalizer)


def model_units_mixture(dataset: DataSet, normalizer: Normalizer) -> GaussianMixture | None:
    """Step 4: the data's Gaussian mixture in model units (None: the data are not one)."""
    mixture = dataset.mixture()
    return None if mixture is None else normalizer.to_model_mixture(mixture)


def build_model(
    model: Section,
    sde: SDE,
    dataset: DataSet,
    mixture: GaussianMixture | None,
    *,
    seed: int | None = None,
) -> nn.Module:
    """Step 5: the score model for ``dataset``'s samples; with ``seed``, its initial weights
    are drawn from that seed and the caller's global RNG is left as it was."""
    classes = model_classes(model, dataset)
    if seed is None:
        return build_score_model(
            model.kind, model.params, sde, dataset.sample_shape, mixture, classes
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_score_model(
            model.kind, model.params, sde, dataset.sample_shape, mixture, classes
        )


def model_classes(model: Section, dataset: DataSet) -> int:
    """The classes a ``conditional`` network learns: the data's (ConfigError if it has none);
    0 for an unconditional one. The analytic model is conditional on mixture components
    whatever the key says."""
    if not model.params.get("conditional") or model.kind == "analytic":
        return 0
    if not dataset.num_classes:
        raise ConfigError(
            "conditional",
            f"needs labelled data; data set {dataset.name!r} has no class labels (mixtures, "
            "digits and files with data.labels have them)",
        )
    return dataset.num_classes


def build_experiment(
    data: Section,
    sde: Section,
    model: Section | None = None,
    *,
    dataset: DataSet | None = None,
    normalizer: Normalizer | None = None,
    seed: int | None = None,
) -> Experiment:
    """The whole recipe (the module docstring's steps 1-5; step 5 only when ``model`` is
    given). May raise the WorkbenchError of a section that does not build (the caller adds
    the section's name to a ConfigError's key)."""
    found = build_data(data, dataset=dataset, normalizer=normalizer)
    units = found.normalizer()
    process = build_sde(sde.kind, dict(sde.params))
    mixture = model_units_mixture(found, units)
    net = None if model is None else build_model(model, process, found, mixture, seed=seed)
    return Experiment(found, units, process, net, mixture)


# -- an experiment config's sections (read by attribute: core does not import the config) ----
def model_section(config: Any) -> Section:
    """[model] of an experiment config: its kind and every declared key."""
    section = config.model
    return Section(section.kind, {p.name: getattr(section, p.name) for p in section.PARAMS})


def data_section(config: Any) -> Section:
    """[data] of an experiment config: the data set's name and its keys."""
    return Section(config.data.name, dict(config.data.params))


def sde_section(config: Any) -> Section:
    """[sde] of an experiment config: its kind and its keys."""
    return Section(config.sde.kind, dict(config.sde.params))


def sections(config: Any) -> tuple[Section, Section, Section]:
    """The [data], [sde] and [model] sections of an experiment config
    (:class:`workbench.config.ExperimentConfig`)."""
    return data_section(config), sde_section(config), model_section(config)


def experiment_of(
    config: Any,
    *,
    with_model: bool = False,
    dataset: DataSet | None = None,
    normalizer: Normalizer | None = None,
    seed: int | None = None,
) -> Experiment:
    """:func:`build_experiment` for an experiment config (the model only ``with_model``)."""
    data, sde, model = sections(config)
    return build_experiment(
        data,
        sde,
        model if with_model else None,
        dataset=dataset,
        normalizer=normalizer,
        seed=seed,
    )


def dataset_of(config: Any) -> DataSet:
    """Step 1 alone: an experiment config's data set."""
    return build_data(data_section(config))


def sde_of(config: Any) -> SDE:
    """Step 3 alone: an experiment config's SDE."""
    section = sde_section(config)
    return build_sde(section.kind, dict(section.params))
