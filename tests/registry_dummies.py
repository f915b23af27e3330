"""A dummy entry for each registry (or core table) behind a closed list of config names.

Used by the config and GUI tests: registering an entry must make its name a choice everywhere,
and removing it must take the choice away again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from workbench.core.data import DATASETS, EightGaussians
from workbench.core.losses import LOSSES, PROJECTIONS, WEIGHTINGS, DenoisingScoreMatching
from workbench.core.nets import (
    ACTIVATIONS,
    NETS,
    PARAMETERISATIONS,
    TIME_EMBEDDINGS,
    EpsOutput,
    GaussianFourierEmbedding,
    MLPNet,
)
from workbench.core.odeint import METHODS
from workbench.core.registry import Registry
from workbench.core.samplers import (
    CORRECTORS,
    PREDICTORS,
    SAMPLERS,
    TIME_GRIDS,
    EulerMaruyamaPredictor,
    EulerMaruyamaSampler,
    NoneCorrector,
)
from workbench.core.sde import SDES, VPSDE
from workbench.core.train import OPTIMIZERS, SCHEDULES


def _subclass(base: type) -> Callable[[], type]:
    return lambda: type(f"Dummy{base.__name__}", (base,), {})


def _copy(fn: Callable[..., Any]) -> Callable[[], Callable[..., Any]]:
    # a new function object: registering sets config_name on it, never on the real one
    return lambda: lambda *args, **kw: fn(*args, **kw)


#: dotted config key -> (where its names come from, a maker of a working entry)
DUMMIES: dict[str, tuple[Registry[Any] | MutableMapping[str, Any], Callable[[], Any]]] = {
    "data.name": (DATASETS, _subclass(EightGaussians)),
    "sde.kind": (SDES, _subclass(VPSDE)),
    "model.kind": (NETS, _subclass(MLPNet)),
    "model.activation": (ACTIVATIONS, lambda: nn.Tanh),
    "model.output": (PARAMETERISATIONS, _subclass(EpsOutput)),
    "model.time_embedding": (TIME_EMBEDDINGS, _subclass(GaussianFourierEmbedding)),
    "loss.kind": (LOSSES, _subclass(DenoisingScoreMatching)),
    "loss.weighting": (WEIGHTINGS, lambda: WEIGHTINGS["none"]),
    "loss.projection": (PROJECTIONS, lambda: PROJECTIONS["gaussian"]),
    "train.optimizer": (OPTIMIZERS, _subclass(torch.optim.Adam)),
    "train.schedule": (SCHEDULES, lambda: SCHEDULES["linear"]),
    "sample.sampler": (SAMPLERS, _subclass(EulerMaruyamaSampler)),
    "sample.grid": (TIME_GRIDS, _copy(TIME_GRIDS.get("uniform"))),
    "sample.predictor": (PREDICTORS, _subclass(EulerMaruyamaPredictor)),
    "sample.corrector": (CORRECTORS, _subclass(NoneCorrector)),
    "sample.integrator": (METHODS, _copy(METHODS.get("euler"))),
}


@contextmanager
def registered(key: str) -> Iterator[tuple[str, Any]]:
    """A fresh name and entry added where ``key``'s choices come from, removed on exit."""
    table, make = DUMMIES[key]
    name = "dummy_" + key.replace(".", "_")
    entry = make()
    if isinstance(table, Registry):
        table.register(name)(entry)
    else:
        table[name] = entry
    try:
        yield name, entry
    finally:
        if isinstance(table, Registry):
            table.unregister(name)
        else:
            del table[name]
