"""The declarations of the experiment's fixed sections, ``[model]``, ``[loss]``, ``[train]`` and
``[sample]``: one :class:`~workbench.core.params.Param` per key, giving its default, its check
and its help line; :mod:`workbench.config` builds and validates the sections from them and the
GUI builds its forms from them.

Each closed list of names is the registry's (or the core table's) own, asked on every use, and
each default the core builders also fill in is theirs: ``MODEL_DEFAULTS`` for the network,
``SAMPLER_DEFAULTS`` for the sampler, and the whole of ``[loss]`` is core's ``LOSS_KIND`` +
``LOSS_PARAMS``. Kept apart from the config's machinery so that a new key is one line here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from workbench.core.fast import FAST_PATHS, PRECISIONS
from workbench.core.losses import LOSS_KIND
from workbench.core.losses import LOSS_PARAMS as CORE_LOSS_PARAMS
from workbench.core.nets import (
    ACTIVATIONS,
    ANALYTIC,
    MODEL_DEFAULTS,
    NETS,
    PARAMETERISATIONS,
    TIME_EMBEDDINGS,
)
from workbench.core.odeint import METHODS as ODE_METHODS
from workbench.core.params import Bool, Choice, Float, Int, Param, did_you_mean
from workbench.core.samplers import (
    AUTO_GRID,
    CORRECTORS,
    PREDICTORS,
    SAMPLER_DEFAULTS,
    SAMPLERS,
    TIME_GRIDS,
)
from workbench.core.train import OPTIMIZERS, SCHEDULES

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "LOSS_PARAMS",
    "MODEL_PARAMS",
    "SAMPLE_PARAMS",
    "SECTION_PARAMS",
    "TRAIN_PARAMS",
    "Device",
]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Device:
    """A torch device name: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""

    #: the accepted forms, as a list of choices shows them (the command line's ``--device``)
    FORMS: tuple[str, ...] = ("auto", "cpu", "cuda", "cuda:N")

    def describe(self) -> str:
        return "'auto', 'cpu', 'cuda' or 'cuda:N' (N the GPU index)"

    def __call__(self, value: Any) -> str:
        if isinstance(value, str) and re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", value):
            return value
        hint = did_you_mean(value, ("auto", "cpu", "cuda")) if isinstance(value, str) else ""
        raise ValueError(f"must be {self.describe()}, got {value!r}{hint}")


def _pos(high: float | None = None, high_open: bool = False) -> Float:
    return Float(0.0, high, low_open=True, high_open=high_open)


def _when(**keys: tuple[str, ...]) -> dict[str, Any]:
    """``Param.extra`` saying when a key is used: every named key has one of its values (a form
    shows the key only then; the config still accepts and keeps it otherwise)."""
    return {"when": dict(keys)}


_NETS = ("mlp", "resmlp", "unet")


# ---------------------------------------------------------------------------------------------
# declarations of the fixed sections
# ---------------------------------------------------------------------------------------------
# Each closed list of names is the registry's (or the core table's) own, asked on every use, and
# each default the core builders also fill in is theirs: MODEL_DEFAULTS for the network,
# SAMPLER_DEFAULTS for the sampler, and the whole of [loss] is core's LOSS_KIND + LOSS_PARAMS.
def _model_kinds() -> tuple[str, ...]:
    return (*NETS.names(), ANALYTIC)


MODEL_PARAMS: tuple[Param, ...] = (
    Param(
        "kind",
        Choice(_model_kinds),
        "mlp",
        "the score network (analytic: the exact score, Gaussian-mixture data only)",
    ),
    Param(
        "hidden",
        Int(1, 65536),
        MODEL_DEFAULTS["hidden"],
        "width of each hidden layer",
        _when(kind=("mlp", "resmlp")),
    ),
    Param(
        "depth",
        Int(1, 64),
        MODEL_DEFAULTS["depth"],
        "number of hidden layers (blocks for resmlp)",
        _when(kind=("mlp", "resmlp")),
    ),
    Param(
        "activation",
        Choice(ACTIVATIONS.keys),
        MODEL_DEFAULTS["activation"],
        "nonlinearity between layers",
        _when(kind=("mlp", "resmlp")),
    ),
    Param(
        "output",
        Choice(PARAMETERISATIONS.names),
        MODEL_DEFAULTS["output"],
        "what the network predicts",
        _when(kind=_NETS),
    ),
    Param(
        "time_embedding",
        Choice(TIME_EMBEDDINGS.names),
        MODEL_DEFAULTS["time_embedding"],
        "how the diffusion time is fed to the network",
        _when(kind=_NETS),
    ),
    Param(
        "embed_dim",
        Int(2, 4096),
        MODEL_DEFAULTS["embed_dim"],
        "size of the time embedding",
        _when(kind=_NETS),
    ),
    Param(
        "fourier_scale",
        _pos(),
        MODEL_DEFAULTS["fourier_scale"],
        "std of the random Fourier frequencies",
        _when(kind=_NETS, time_embedding=("fourier",)),
    ),
    Param(
        "channels",
        Int(1, 1024),
        MODEL_DEFAULTS["channels"],
        "base width of the U-Net",
        _when(kind=("unet",)),
    ),
    Param(
        "conditional",
        Bool(),
        False,
        "learn the score of each class too (labelled data; for sample.class_label, guidance)",
        _when(kind=_NETS),
    ),
)

LOSS_PARAMS: tuple[Param, ...] = (LOSS_KIND, *CORE_LOSS_PARAMS)

TRAIN_PARAMS: tuple[Param, ...] = (
    Param("steps", Int(1, 10**9), 5000, "optimiser steps"),
    Param("batch_size", Int(1, 2**24), 1024, "samples per step (at most data.n)"),
    # lr and schedule from the defaults study (README): 5e-3 with cosine decay learns a
    # mixture in 3,000 steps where 2e-3 constant left samples ~0.2 nats too spread out
    Param("lr", Float(0.0, 1.0, low_open=True), 5e-3, "learning rate"),
    Param("ema", Float(0.0, 1.0, high_open=True), 0.999, "decay of the weights' moving average"),
    Param("device", Device(), "auto", "where to train (auto: the GPU when there is one)"),
    Param("seed", Int(0, INT64_MAX), 0, "random seed"),
    Param("optimizer", Choice(OPTIMIZERS.keys), "adam", "optimiser"),
    Param("weight_decay", Float(0.0), 0.0, "weight decay"),
    Param("warmup", Int(0), 100, "steps of linear learning-rate warm-up"),
    Param(
        "schedule",
        Choice(SCHEDULES.keys),
        "cosine",
        "learning-rate schedule after warm-up",
    ),
    Param("grad_clip", Float(0.0), 1.0, "clip the gradient norm to this (0: off)"),
    Param("checkpoint_every", Int(1), 1000, "steps between checkpoints"),
    Param("log_every", Int(1), 10, "steps between logged losses"),
    # 500: the default 5000 steps give ten frames to scrub through, each about a quarter of
    # checkpoint.pt (EMA weights only); a long run wants a larger interval
    Param(
        "snapshot_every",
        Int(0),
        500,
        "steps between kept snapshots of the EMA weights, for the training-step slider (0: off)",
    ),
    Param(
        "precision",
        Choice(PRECISIONS),
        "fp32",
        "bf16: bfloat16 autocast on CUDA (the CPU always trains in fp32)",
    ),
    Param(
        "fast_path",
        Choice(FAST_PATHS),
        "auto",
        "auto: CUDA graphs on CUDA, the plain loop on the CPU; compile: torch.compile",
    ),
    Param(
        "p_uncond",
        Float(0.0, 1.0),
        0.1,
        "conditional models: the share of labels replaced by the null label in training",
    ),
)

_S = SAMPLER_DEFAULTS


def _grid_choices() -> tuple[str, ...]:
    # "auto" first: the default, resolved by the sampler (Sampler.default_grid)
    return (AUTO_GRID, *TIME_GRIDS.names())


SAMPLE_PARAMS: tuple[Param, ...] = (
    Param(
        "sampler",
        Choice(SAMPLERS.names),
        _S["sampler"],
        "Euler-Maruyama, predictor-corrector, the probability-flow ODE, or a solver for linear "
        "SDEs (DDIM, DPM-Solver++, Euler ancestral, Karras's Heun)",
    ),
    Param("steps", Int(1, 10**6), _S["steps"], "solver steps from T to eps"),
    Param("n", Int(1, 10**8), 10000, "number of samples"),
    Param("record_every", Int(0), 10, "steps between stored trajectory rows (0: final only)"),
    # (0, T): the upper end is the SDE's T, checked by ExperimentConfig
    Param("eps", _pos(), _S["eps"], "time the solver stops at"),
    Param(
        "grid",
        Choice(_grid_choices),
        _S["grid"],
        "spacing of the solver's time steps (auto: the sampler's own, e.g. quadratic for dpmpp_2m)",
    ),
    Param(
        "rho",
        _pos(),
        _S["rho"],
        "exponent of the edm (sigma) and power_t time grids",
        _when(grid=("edm", "power_t")),
    ),
    Param(
        "predictor",
        Choice(PREDICTORS.names),
        _S["predictor"],
        "predictor of the pc sampler",
        _when(sampler=("pc",)),
    ),
    Param(
        "corrector",
        Choice(CORRECTORS.names),
        _S["corrector"],
        "corrector of the pc sampler",
        _when(sampler=("pc",)),
    ),
    Param(
        "snr",
        _pos(),
        _S["snr"],
        "signal-to-noise ratio of the Langevin corrector",
        _when(sampler=("pc",), corrector=("langevin",)),
    ),
    Param(
        "n_corrector_steps",
        Int(0, 100),
        _S["n_corrector_steps"],
        "corrector steps per predictor step",
        _when(sampler=("pc",), corrector=("langevin",)),
    ),
    Param(
        "integrator",
        Choice(ODE_METHODS.names),
        _S["integrator"],
        "ODE integrator (rk45: adaptive)",
        _when(sampler=("ode",)),
    ),
    Param(
        "rtol",
        _pos(),
        _S["rtol"],
        "relative tolerance of the adaptive ODE integrator",
        _when(sampler=("ode",), integrator=("rk45",)),
    ),
    Param(
        "atol",
        _pos(),
        _S["atol"],
        "absolute tolerance of the adaptive ODE integrator",
        _when(sampler=("ode",), integrator=("rk45",)),
    ),
    Param(
        "eta",
        Float(0.0, 1.0),
        _S["eta"],
        "DDIM's noise: 0 deterministic, 1 the exact posterior (ancestral)",
        _when(sampler=("ddim",)),
    ),
    Param(
        "s_churn",
        Float(0.0),
        _S["s_churn"],
        "Karras's churn: noise added back per step, gamma = min(s_churn/steps, sqrt(2) - 1)",
        _when(sampler=("heun_churn",)),
    ),
    Param(
        "s_tmin",
        Float(0.0),
        _S["s_tmin"],
        "churn only where the noise level sigma = s/m is at least this",
        _when(sampler=("heun_churn",)),
    ),
    Param(
        "s_tmax",
        _pos(),
        _S["s_tmax"],
        "churn only where the noise level sigma = s/m is at most this",
        _when(sampler=("heun_churn",)),
    ),
    Param(
        "s_noise",
        Float(0.0),
        _S["s_noise"],
        "scale of the churn's fresh noise (Karras's S_noise)",
        _when(sampler=("heun_churn",)),
    ),
    Param("denoise", Bool(), _S["denoise"], "take one last noise-free step at t = eps"),
    Param("seed", Int(0, INT64_MAX), 0, "random seed of the sampler"),
    Param(
        "fast_path",
        Choice(FAST_PATHS),
        "auto",
        "auto: the score network as a CUDA graph on CUDA, the MLP fused by oneDNN on the CPU",
    ),
    Param(
        "precision",
        Choice(PRECISIONS),
        "fp32",
        "bf16: the score network in bfloat16 (pays on CUDA and on CPUs with bf16 matrix units)",
    ),
    Param("chunk_size", Int(0), 0, "samples per network call (0: as many as fit in memory)"),
    Param(
        "class_label",
        Int(-1),
        -1,
        "the class to sample (-1: none; mixtures: a component, digits: the digit)",
    ),
    Param(
        "guidance",
        Float(0.0),
        0.0,
        "classifier-free guidance w: (1+w) score(x|class) - w score(x); 0: plain conditional",
    ),
)

SECTION_PARAMS: dict[str, tuple[Param, ...]] = {
    "model": MODEL_PARAMS,
    "loss": LOSS_PARAMS,
    "train": TRAIN_PARAMS,
    "sample": SAMPLE_PARAMS,
}
