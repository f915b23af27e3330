"""Ready experiments: one per built-in data set, plus a few named variations.

``sde-workbench init exp.toml --preset moons`` writes one of these as a complete TOML file; the
GUI offers them under File > New. Each preset gives only what differs from the defaults of
:mod:`workbench.config`; the written file spells out every key.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.config import ExperimentConfig, config_from_dict
from workbench.core.params import did_you_mean
from workbench.errors import ConfigError

__all__ = ["Preset", "PRESETS", "preset_names", "preset_config", "preset_description"]


@dataclass(frozen=True)
class Preset:
    """A named experiment: a one-line description and the settings that differ from defaults.

    ``needs_file`` names the data file the experiment reads, which the user has to provide.
    """

    description: str
    experiment: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    needs_file: str | None = None


# Toy 2-D sets with thin or curved structure need a wider, residual network and more steps
# than the smooth mixtures; the numbers are sized to train in minutes on a laptop CPU.
_CURVED = {
    "model": {"kind": "resmlp", "hidden": 256, "depth": 4},
    "train": {"steps": 10000, "lr": 1e-3, "schedule": "cosine"},
}

# Non-linear ("custom") forward SDEs: no Gaussian kernel, so the score is learned by sliced
# score matching on simulated x_t (DSM, the s(t)^2 weighting, eps/x0 outputs and the final
# Tweedie step all need m(t), s(t)). The drifts act in model units (data standardised per
# coordinate); the data sets put their modes near the wells at +-1 after standardisation.
# The double wells are f = -U' with U = 2 x^2 - 4 log(1 + x^2), i.e. f = -4x(x^2 - 1)/(1 + x^2):
# wells at +-1 like the quartic -4x(x^2 - 1), but f grows only linearly far out. With the
# quartic's cubic drift the reverse SDE is unstable wherever the learned score is smaller than
# f/g^2, i.e. beyond the data, and a few particles in thousands run off to infinity.
_CUSTOM_TRAINING: dict[str, dict[str, Any]] = {
    "model": {"kind": "mlp", "hidden": 128, "depth": 3, "output": "score"},
    "loss": {"kind": "ssm", "weighting": "none"},
    "train": {"steps": 3000, "batch_size": 512, "lr": 2e-3},
    "sample": {"sampler": "em", "steps": 500, "n": 5000, "denoise": False},
}


def _custom(description: str, data: Mapping[str, Any], sde: Mapping[str, Any]) -> Preset:
    return Preset(
        description, {"data": dict(data), "sde": {"kind": "custom", **sde}, **_CUSTOM_TRAINING}
    )


_CUSTOM_PRESETS: dict[str, Preset] = {
    "double-well-1d": _custom(
        "custom SDE: 1-D double well f = -4x(x^2 - 1)/(1 + x^2) (wells at +-1), g = 1; SSM",
        {
            "name": "gmm1d",
            "n": 20000,
            "means": [-2.0, 2.0],
            "stds": [0.5, 0.5],
            "weights": [0.35, 0.65],
        },
        {"drift": "-4*x*(x^2 - 1)/(1 + x^2)", "g": "1", "T": 1.0},
    ),
    "double-well-2d": _custom(
        "custom SDE: 2-D four wells, -4 x_i (x_i^2 - 1)/(1 + x_i^2) per coordinate, g = 1",
        {
            "name": "gmm",
            "n": 20000,
            "means": [[-1.5, -1.5], [1.5, -1.5], [-1.5, 1.5], [1.5, 1.5]],
            "stds": [0.4, 0.4, 0.4, 0.4],
            "weights": [0.1, 0.2, 0.3, 0.4],
        },
        {
            "drift": "-4*x1*(x1^2 - 1)/(1 + x1^2); -4*x2*(x2^2 - 1)/(1 + x2^2)",
            "g": "1",
            "T": 1.0,
        },
    ),
    "rotating-ou": _custom(
        "custom SDE: Ornstein-Uhlenbeck pull with a rotation (f = -x + 2 J x), g = sqrt(2); moons",
        {"name": "moons", "n": 20000},
        {"drift": "-x1 - 2*x2; 2*x1 - x2", "g": "sqrt(2)", "T": 4.0, "prior": "gaussian"},
    ),
    "ou-shifted": _custom(
        "custom SDE: Ornstein-Uhlenbeck pull toward (2, -1), g = sqrt(2): p_T ~ N((2, -1), I)",
        {"name": "8gaussians", "n": 20000},
        {"drift": "-(x1 - 2); -(x2 + 1)", "g": "sqrt(2)", "T": 4.0, "prior": "gaussian"},
    ),
}

# Flow matching on the rectified path x_t = (1 - t) x0 + t z (sde.kind "rectified", T just below
# 1): the network predicts the velocity and the loss regresses z - x0. Its probability-flow ODE
# is the flow-matching ODE, so "ode" (Heun, 50 steps: a near-straight flow) samples it.
_FLOW: dict[str, dict[str, Any]] = {
    "data": {"name": "8gaussians"},
    "sde": {"kind": "rectified", "T": 0.999},
    "model": {"output": "v"},
    "train": {"steps": 4000},
    "sample": {"sampler": "ode", "integrator": "heun", "steps": 50},
}

_FLOW_PRESETS: dict[str, Preset] = {
    "flow-matching": Preset(
        "flow matching: 8 Gaussians on the rectified path x_t = (1-t) x0 + t z, velocity net",
        {**_FLOW, "loss": {"kind": "fm", "weighting": "none"}},
    ),
    # The same path, network and output for both losses, so `study --losses dsm,fm` compares
    # the objectives alone (in score terms FM is DSM with lambda(t) = g(t)^4/4).
    "dsm-vs-fm": Preset(
        "DSM and flow matching on one path and network: compare with study --losses dsm,fm",
        {**_FLOW, "loss": {"kind": "dsm"}},
    ),
}

PRESETS: dict[str, Preset] = {
    "default": Preset("the built-in experiment: 8 Gaussians, VP SDE, MLP, denoising loss"),
    "gmm1d": Preset(
        "1-D mixture of three Gaussians; small MLP, quick to train",
        {
            "data": {"name": "gmm1d", "n": 50000},
            "model": {"hidden": 128, "depth": 3},
            "train": {"steps": 3000, "batch_size": 512},
            "sample": {"n": 5000},
        },
    ),
    "8gaussians": Preset(
        "eight Gaussians on a circle (FFJORD); the default experiment",
        {"data": {"name": "8gaussians"}},
    ),
    "checkerboard": Preset(
        "2-D checkerboard; residual MLP, longer training",
        {"data": {"name": "checkerboard"}, **_CURVED},
    ),
    "moons": Preset(
        "two interleaving half circles",
        {"data": {"name": "moons"}, "train": {"steps": 6000}},
    ),
    "swissroll": Preset(
        "2-D swiss roll; residual MLP, longer training",
        {"data": {"name": "swissroll"}, **_CURVED},
    ),
    "pinwheel": Preset(
        "five curved arms",
        {"data": {"name": "pinwheel"}, "train": {"steps": 8000}},
    ),
    "rings": Preset(
        "concentric rings; residual MLP, longer training",
        {"data": {"name": "rings"}, **_CURVED},
    ),
    "spirals": Preset(
        "two interleaved spirals; residual MLP, longer training",
        {"data": {"name": "spirals"}, **_CURVED},
    ),
    "gmm": Preset(
        "your own Gaussian mixture: edit means, stds (or covs) and weights",
        {
            "data": {
                "name": "gmm",
                "means": [[-2.0, -1.0], [2.0, -1.0], [0.0, 2.0]],
                "stds": [0.5, 0.7, 0.4],
                "weights": [0.3, 0.3, 0.4],
            },
        },
    ),
    "digits": Preset(
        "8x8 handwritten digits (scikit-learn, 1797 images); small U-Net",
        {
            # n is the size of the set: every image once per pass of n draws
            "data": {"name": "digits", "n": 1797},
            "sde": {"kind": "vp"},
            "model": {"kind": "unet", "channels": 32, "time_embedding": "sinusoidal"},
            "train": {
                "steps": 20000,
                "batch_size": 256,
                "lr": 2e-4,
                "warmup": 500,
                "schedule": "cosine",
                "checkpoint_every": 2000,
            },
            "sample": {"n": 1000, "record_every": 50},
        },
    ),
    "file": Preset(
        "points from your own file (edit data.path: .npy, .npz, .csv or .h5)",
        # validation reads no file, so the preset is valid before data.npy exists
        {"data": {"name": "file", "path": "data.npy"}},
        needs_file="data.npy",
    ),
    "ve": Preset(
        "8 Gaussians with the variance-exploding SDE and a predictor-corrector sampler",
        {
            "data": {"name": "8gaussians"},
            # sigma_max at least the largest distance between standardised data points
            # (about 3 here; Song & Ermon 2020, technique 1) rather than the image-sized 50
            "sde": {"kind": "ve", "sigma_min": 0.01, "sigma_max": 10.0},
            "sample": {"sampler": "pc"},
        },
    ),
    "analytic": Preset(
        "8 Gaussians with the exact score: sample and compare without training",
        {"data": {"name": "8gaussians"}, "model": {"kind": "analytic"}},
    ),
    **_FLOW_PRESETS,
    **_CUSTOM_PRESETS,
}


def preset_names() -> list[str]:
    """The preset names, ``default`` first, then one per data set, then the variations."""
    return list(PRESETS)


def _preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        hint = did_you_mean(name, PRESETS) if isinstance(name, str) else ""
        raise ConfigError(
            "preset", f"unknown preset {name!r}{hint}; choose one of: {', '.join(PRESETS)}"
        ) from None


def preset_description(name: str) -> str:
    """The one-line description of preset ``name``."""
    return _preset(name).description


def preset_config(name: str) -> ExperimentConfig:
    """The validated experiment of preset ``name``; ConfigError (key ``preset``) if unknown."""
    return config_from_dict(copy.deepcopy(dict(_preset(name).experiment)))
