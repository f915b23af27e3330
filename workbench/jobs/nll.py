"""Negative log-likelihood of data under a trained (or analytic) model: ``sde-workbench nll``.

Fresh data points are drawn from the config's data set, mapped to model units, integrated
through the probability-flow ODE (:mod:`workbench.core.likelihood`), and mapped back: the
normalisation's Jacobian is added so the figure is in data units, comparable with the exact
log-density of the data where that is known. A trained run is evaluated in the units it was
trained in: the normaliser stored in its checkpoint, not one recomputed from the data now.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from workbench.config import ExperimentConfig
from workbench.core.likelihood import data_units_logp, log_likelihood
from workbench.errors import WorkbenchError
from workbench.io.runs import MissingData
from workbench.io.safety import OutOfMemoryError, out_of_memory_where, release_device_memory
from workbench.jobs.sample import load_model, sde_for_sampling

__all__ = ["NLLReport", "data_nll"]


@dataclass(frozen=True)
class NLLReport:
    n: int
    dim: int
    nll_nats: float  # mean -log p per sample, data units
    nats_per_dim: float
    bits_per_dim: float
    stderr_nats_per_dim: float
    exact_nats_per_dim: float | None  # the data set's own density, where known
    nfe: int


def data_nll(
    source: str | os.PathLike[str] | ExperimentConfig,
    n: int = 2000,
    *,
    seed: int = 12345,
    device: str = "cpu",
    progress: Callable[[float], None] | None = None,
) -> NLLReport:
    """Mean NLL of ``n`` fresh data points in nats/dim and bits/dim (data units).

    Running out of memory (all ``n`` points go through the ODE together) is an
    OutOfMemoryError that suggests half as many points.
    """
    try:
        return _data_nll(source, n, seed=seed, device=device, progress=progress)
    except Exception as exc:
        where = out_of_memory_where(exc)
        if where is None:
            raise
    release_device_memory()
    # n is not a config key but the argument (``sde-workbench nll --n``): named as such
    what = f"{where} ran out of memory while evaluating the NLL of {n} data points"
    if n <= 1:
        raise OutOfMemoryError(f"{what}; use a smaller model (model.hidden)")
    raise OutOfMemoryError(f"{what}; try fewer points (nll --n {n // 2})")


def _data_nll(
    source: str | os.PathLike[str] | ExperimentConfig,
    n: int,
    *,
    seed: int,
    device: str,
    progress: Callable[[float], None] | None,
) -> NLLReport:
    config, model, dataset = load_model(source, device)
    if isinstance(dataset, MissingData):
        raise WorkbenchError(
            f"nll evaluates fresh points of the training data, but {dataset.why}; put it back"
        )
    # a custom SDE's prior p_T comes from simulating the training set, as when sampling
    sde = sde_for_sampling(config, dataset)
    normalizer = dataset.normalizer()
    x = dataset.sample(n, torch.Generator().manual_seed(seed), dtype=torch.float64)
    y = normalizer.to_model(x).to(device)
    sc = config.sample
    result = log_likelihood(
        sde,
        model.double(),
        y,
        eps=min(sc.eps, 1e-3),
        rtol=sc.rtol,
        atol=sc.atol,
        generator=torch.Generator(device=device).manual_seed(seed + 1),
        progress=progress,
    )
    logp = data_units_logp(result.logp.cpu(), normalizer)
    d = dataset.dim
    per_dim = -logp / d
    exact = None
    if dataset.has_density:
        exact = float(-dataset.log_prob(x).mean()) / d
    mean = float(per_dim.mean())
    stderr = float(per_dim.std()) / math.sqrt(n) if n > 1 else float("nan")
    return NLLReport(
        n=n,
        dim=d,
        nll_nats=float(-logp.mean()),
        nats_per_dim=mean,
        bits_per_dim=mean / math.log(2.0),
        stderr_nats_per_dim=stderr,
        exact_nats_per_dim=exact,
        nfe=result.nfe,
    )
