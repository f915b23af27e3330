"""The experiment config: six typed, validated sections, read from and written to TOML.

```toml
[data]   name = "8gaussians"; n = 100000   # plus the data set's own keys (means, noise, ...)
[sde]    kind = "vp"                        # plus the SDE's own keys (beta_min, sigma_max, ...)
[model]  [loss]  [train]  [sample]          # fixed keys, declared below as tuples of Param
```

Every key is declared once as a :class:`~workbench.core.params.Param`: the declaration gives the
default, the check (with the message saying what is allowed) and the help line, and the GUI reads
the same declarations (:func:`section_params`) to build its fields. The ``[data]`` and ``[sde]``
keys beyond ``name``/``kind`` come from the registered class, so a new SDE or data set brings its
own keys with it.

Every config object is valid by construction: each dataclass checks itself in
``__post_init__``, so a config built in code, read from a file or changed with
:meth:`ExperimentConfig.with_overrides` has passed the same checks. Errors are
:class:`~workbench.errors.ConfigError` with the full dotted key (``sde.beta_max``) and a one-line
message naming the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import tomli_w

from workbench.core.data import DATASETS, MixtureDataSet, validate_data_params
from workbench.core.params import Bool, Choice, Float, Int, Param, did_you_mean
from workbench.core.registry import Registry
from workbench.core.sde import SDES, validate_sde_params
from workbench.errors import ConfigError, WorkbenchError
from workbench.guards import read_regular_bytes

__all__ = [
    "SECTIONS",
    "SECTION_PARAMS",
    "Device",
    "FrozenMap",
    "DataConfig",
    "SDEConfig",
    "ModelConfig",
    "LossConfig",
    "TrainConfig",
    "SampleConfig",
    "ExperimentConfig",
    "default_config",
    "config_from_dict",
    "config_to_dict",
    "parse_config",
    "load_config",
    "to_toml",
    "save_config",
    "section_params",
]

SECTIONS: tuple[str, ...] = ("data", "sde", "model", "loss", "train", "sample")

# TOML integers are 64-bit; tomllib still hands larger ones over as Python ints, which float()
# cannot always convert, so they are refused here with a message instead of an OverflowError.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _one_line(text: str) -> str:
    return " ".join(str(text).splitlines())


def _error(key: str, message: str) -> ConfigError:
    return ConfigError(key, _one_line(message))


def _prefixed(exc: ConfigError, section: str) -> ConfigError:
    """``exc`` with ``section.`` in front of its key, its message on one line."""
    key = f"{section}.{exc.key}" if exc.key else section
    return _error(key, exc.message)


def _check_int_range(key: str, value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise _error(key, f"integer {value} is out of range (TOML integers are 64-bit)")
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_int_range(key, item)
    elif isinstance(value, Mapping):
        for item in value.values():
            _check_int_range(key, item)


class FrozenMap(Mapping[str, Any]):
    """A read-only, hashable mapping: the kind-specific keys of ``[data]`` and ``[sde]``.

    It compares equal to any mapping with the same items, so ``cfg.sde.params == {...}`` works.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        self._items: dict[str, Any] = dict(items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        try:
            return hash(frozenset(self._items.items()))
        except TypeError:  # an unhashable value: equal maps still share the key set
            return hash(frozenset(self._items))

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"


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
# declarations of the fixed sections: the one place their keys, defaults and ranges live
# ---------------------------------------------------------------------------------------------
MODEL_PARAMS: tuple[Param, ...] = (
    Param(
        "kind",
        Choice(("mlp", "resmlp", "unet", "analytic")),
        "mlp",
        "the score network (analytic: the exact score, Gaussian-mixture data only)",
    ),
    Param(
        "hidden",
        Int(1, 65536),
        256,
        "width of each hidden layer",
        _when(kind=("mlp", "resmlp")),
    ),
    Param(
        "depth",
        Int(1, 64),
        3,
        "number of hidden layers (blocks for resmlp)",
        _when(kind=("mlp", "resmlp")),
    ),
    Param(
        "activation",
        Choice(("silu", "relu", "gelu", "tanh", "softplus", "elu")),
        "silu",
        "nonlinearity between layers",
        _when(kind=("mlp", "resmlp")),
    ),
    Param(
        "output",
        Choice(("score", "eps", "x0")),
        "eps",
        "what the network predicts",
        _when(kind=_NETS),
    ),
    Param(
        "time_embedding",
        Choice(("fourier", "sinusoidal")),
        "fourier",
        "how the diffusion time is fed to the network",
        _when(kind=_NETS),
    ),
    Param("embed_dim", Int(2, 4096), 128, "size of the time embedding", _when(kind=_NETS)),
    Param(
        "fourier_scale",
        _pos(),
        16.0,
        "std of the random Fourier frequencies",
        _when(kind=_NETS, time_embedding=("fourier",)),
    ),
    Param("channels", Int(1, 1024), 32, "base width of the U-Net", _when(kind=("unet",))),
)

LOSS_PARAMS: tuple[Param, ...] = (
    Param(
        "kind",
        Choice(("dsm", "ssm", "ssm_vr", "esm")),
        "dsm",
        "score matching: denoising, sliced, sliced variance-reduced, exact",
    ),
    Param(
        "weighting",
        Choice(("sigma2", "likelihood", "none")),
        "sigma2",
        "lambda(t): s(t)^2, g(t)^2 (likelihood weighting) or 1",
    ),
    Param("eps", _pos(0.5, high_open=True), 1e-5, "smallest diffusion time trained on"),
    Param(
        "n_projections",
        Int(1, 256),
        1,
        "random projections per sample (sliced losses)",
        _when(kind=("ssm", "ssm_vr")),
    ),
    Param(
        "projection",
        Choice(("rademacher", "gaussian")),
        "rademacher",
        "distribution of the projections (sliced losses)",
        _when(kind=("ssm", "ssm_vr")),
    ),
    Param(
        "importance_sampling",
        Bool(),
        False,
        "draw t in proportion to the weighting (likelihood weighting)",
        _when(weighting=("likelihood",)),
    ),
)

TRAIN_PARAMS: tuple[Param, ...] = (
    Param("steps", Int(1, 10**9), 5000, "optimiser steps"),
    Param("batch_size", Int(1, 2**24), 1024, "samples per step (at most data.n)"),
    Param("lr", Float(0.0, 1.0, low_open=True), 2e-3, "learning rate"),
    Param("ema", Float(0.0, 1.0, high_open=True), 0.999, "decay of the weights' moving average"),
    Param("device", Device(), "auto", "where to train (auto: the GPU when there is one)"),
    Param("seed", Int(0, _INT64_MAX), 0, "random seed"),
    Param("optimizer", Choice(("adam", "adamw")), "adam", "optimiser"),
    Param("weight_decay", Float(0.0), 0.0, "weight decay"),
    Param("warmup", Int(0), 100, "steps of linear learning-rate warm-up"),
    Param(
        "schedule",
        Choice(("constant", "cosine", "linear")),
        "constant",
        "learning-rate schedule after warm-up",
    ),
    Param("grad_clip", Float(0.0), 1.0, "clip the gradient norm to this (0: off)"),
    Param("checkpoint_every", Int(1), 1000, "steps between checkpoints"),
    Param("log_every", Int(1), 10, "steps between logged losses"),
    Param(
        "precision",
        Choice(("fp32", "bf16")),
        "fp32",
        "bf16: bfloat16 autocast on CUDA (the CPU always trains in fp32)",
    ),
    Param(
        "fast_path",
        Choice(("auto", "off", "cuda_graph", "compile")),
        "auto",
        "auto: CUDA graphs on CUDA, the plain loop on the CPU; compile: torch.compile",
    ),
)

SAMPLE_PARAMS: tuple[Param, ...] = (
    Param(
        "sampler",
        Choice(("em", "pc", "ode")),
        "em",
        "Euler-Maruyama, predictor-corrector or the probability-flow ODE",
    ),
    Param("steps", Int(1, 10**6), 1000, "solver steps from T to eps"),
    Param("n", Int(1, 10**8), 10000, "number of samples"),
    Param("record_every", Int(0), 10, "steps between stored trajectory rows (0: final only)"),
    Param("eps", Float(0.0, 1.0, low_open=True, high_open=True), 1e-3, "time the solver stops at"),
    Param(
        "grid",
        Choice(("uniform", "quadratic", "edm")),
        "uniform",
        "spacing of the solver's time steps",
    ),
    Param("rho", _pos(), 7.0, "exponent of the edm time grid", _when(grid=("edm",))),
    Param(
        "predictor",
        Choice(("euler_maruyama", "reverse_diffusion", "ancestral")),
        "reverse_diffusion",
        "predictor of the pc sampler",
        _when(sampler=("pc",)),
    ),
    Param(
        "corrector",
        Choice(("langevin", "none")),
        "langevin",
        "corrector of the pc sampler",
        _when(sampler=("pc",)),
    ),
    Param(
        "snr",
        _pos(),
        0.16,
        "signal-to-noise ratio of the Langevin corrector",
        _when(sampler=("pc",), corrector=("langevin",)),
    ),
    Param(
        "n_corrector_steps",
        Int(0, 100),
        1,
        "corrector steps per predictor step",
        _when(sampler=("pc",), corrector=("langevin",)),
    ),
    Param(
        "integrator",
        Choice(("euler", "heun", "rk4", "rk45")),
        "rk45",
        "ODE integrator (rk45: adaptive)",
        _when(sampler=("ode",)),
    ),
    Param(
        "rtol",
        _pos(),
        1e-5,
        "relative tolerance of the adaptive ODE integrator",
        _when(sampler=("ode",), integrator=("rk45",)),
    ),
    Param(
        "atol",
        _pos(),
        1e-5,
        "absolute tolerance of the adaptive ODE integrator",
        _when(sampler=("ode",), integrator=("rk45",)),
    ),
    Param("denoise", Bool(), True, "take one last noise-free step at t = eps"),
    Param("seed", Int(0, _INT64_MAX), 0, "random seed of the sampler"),
    Param(
        "fast_path",
        Choice(("auto", "off", "cuda_graph", "compile")),
        "auto",
        "auto: the score network as a CUDA graph on CUDA, plain on the CPU",
    ),
    Param(
        "precision",
        Choice(("fp32", "bf16")),
        "fp32",
        "bf16: the score network under bfloat16 autocast (pays on CUDA; states stay fp32)",
    ),
    Param("chunk_size", Int(0), 0, "samples per network call (0: as many as fit in memory)"),
)

SECTION_PARAMS: dict[str, tuple[Param, ...]] = {
    "model": MODEL_PARAMS,
    "loss": LOSS_PARAMS,
    "train": TRAIN_PARAMS,
    "sample": SAMPLE_PARAMS,
}

_DATA_N = Param("n", Int(1, 10**9), 100000, "number of training samples drawn")
_DEFAULT_DATA = "8gaussians"
_DEFAULT_SDE = "vp"


def _data_name_param() -> Param:
    # built on demand: data sets registered after this module was imported appear too
    return Param("name", Choice(tuple(DATASETS.names())), _DEFAULT_DATA, "the data set")


def _sde_kind_param() -> Param:
    return Param("kind", Choice(tuple(SDES.names())), _DEFAULT_SDE, "the forward SDE")


# ---------------------------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------------------------
def _check_name(section: str, key: str, value: Any, registry: Registry[Any]) -> Any:
    """The class ``value`` names in ``registry``; ConfigError ``section.key`` if none."""
    if not isinstance(value, str):
        names = ", ".join(registry.names())
        raise _error(f"{section}.{key}", f"must be one of: {names}; got {value!r}")
    try:
        return registry.get(value)
    except ConfigError as exc:
        raise _prefixed(exc, section) from None


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: which data set, how many training samples, and the set's own keys."""

    name: str = _DEFAULT_DATA
    n: int = 100000
    params: Mapping[str, Any] = field(default_factory=FrozenMap)

    def __post_init__(self) -> None:
        _check_name("data", "name", self.name, DATASETS)
        _check_int_range("data.n", self.n)
        try:
            n = _DATA_N.check(self.n)
        except ValueError as exc:
            raise _error("data.n", str(exc)) from None
        object.__setattr__(self, "n", n)
        object.__setattr__(
            self, "params", _validated("data", self.params, self.name, validate_data_params)
        )

    @property
    def is_mixture(self) -> bool:
        """Whether the data set's law is a Gaussian mixture (exact score known)."""
        return issubclass(DATASETS.get(self.name), MixtureDataSet)


@dataclass(frozen=True)
class SDEConfig:
    """``[sde]``: which forward SDE and its own keys, every default filled in."""

    kind: str = _DEFAULT_SDE
    params: Mapping[str, Any] = field(default_factory=FrozenMap)

    def __post_init__(self) -> None:
        _check_name("sde", "kind", self.kind, SDES)
        object.__setattr__(
            self, "params", _validated("sde", self.params, self.kind, validate_sde_params)
        )


def _validated(
    section: str, params: Any, kind: str, validate: Callable[[str, Mapping[str, Any]], dict]
) -> FrozenMap:
    """The kind-specific keys of ``[data]`` or ``[sde]``, checked by ``validate``."""
    if not isinstance(params, Mapping):
        raise _error(section, f"params must be a table of keys, got {params!r}")
    for key, value in params.items():
        _check_int_range(f"{section}.{key}", value)
    try:
        return FrozenMap(validate(kind, params))
    except ConfigError as exc:
        raise _prefixed(exc, section) from None


@dataclass(frozen=True)
class _Section:
    """A fixed section: its fields are exactly the names in ``PARAMS``, checked on creation."""

    SECTION: ClassVar[str] = ""
    PARAMS: ClassVar[tuple[Param, ...]] = ()

    def __post_init__(self) -> None:
        for param in self.PARAMS:
            key = f"{self.SECTION}.{param.name}"
            value = getattr(self, param.name)
            _check_int_range(key, value)
            try:
                value = param.check(value)
            except ValueError as exc:
                raise _error(key, str(exc)) from None
            object.__setattr__(self, param.name, value)


@dataclass(frozen=True)
class ModelConfig(_Section):
    """``[model]``: the score network."""

    SECTION: ClassVar[str] = "model"
    PARAMS: ClassVar[tuple[Param, ...]] = MODEL_PARAMS

    kind: str = "mlp"
    hidden: int = 256
    depth: int = 3
    activation: str = "silu"
    output: str = "eps"
    time_embedding: str = "fourier"
    embed_dim: int = 128
    fourier_scale: float = 16.0
    channels: int = 32


@dataclass(frozen=True)
class LossConfig(_Section):
    """``[loss]``: the score-matching objective."""

    SECTION: ClassVar[str] = "loss"
    PARAMS: ClassVar[tuple[Param, ...]] = LOSS_PARAMS

    kind: str = "dsm"
    weighting: str = "sigma2"
    eps: float = 1e-5
    n_projections: int = 1
    projection: str = "rademacher"
    importance_sampling: bool = False


@dataclass(frozen=True)
class TrainConfig(_Section):
    """``[train]``: the optimisation."""

    SECTION: ClassVar[str] = "train"
    PARAMS: ClassVar[tuple[Param, ...]] = TRAIN_PARAMS

    steps: int = 5000
    batch_size: int = 1024
    lr: float = 2e-3
    ema: float = 0.999
    device: str = "auto"
    seed: int = 0
    optimizer: str = "adam"
    weight_decay: float = 0.0
    warmup: int = 100
    schedule: str = "constant"
    grad_clip: float = 1.0
    checkpoint_every: int = 1000
    log_every: int = 10
    precision: str = "fp32"
    fast_path: str = "auto"


@dataclass(frozen=True)
class SampleConfig(_Section):
    """``[sample]``: the reverse-time sampler."""

    SECTION: ClassVar[str] = "sample"
    PARAMS: ClassVar[tuple[Param, ...]] = SAMPLE_PARAMS

    sampler: str = "em"
    steps: int = 1000
    n: int = 10000
    record_every: int = 10
    eps: float = 1e-3
    grid: str = "uniform"
    rho: float = 7.0
    predictor: str = "reverse_diffusion"
    corrector: str = "langevin"
    snr: float = 0.16
    n_corrector_steps: int = 1
    integrator: str = "rk45"
    rtol: float = 1e-5
    atol: float = 1e-5
    denoise: bool = True
    seed: int = 0
    fast_path: str = "auto"
    precision: str = "fp32"
    chunk_size: int = 0


_SECTION_CLASSES: dict[str, type[_Section]] = {
    "model": ModelConfig,
    "loss": LossConfig,
    "train": TrainConfig,
    "sample": SampleConfig,
}


def _check_declarations() -> None:
    # The dataclass fields repeat the declared defaults for type checkers and readers; this
    # keeps the two from drifting apart (it runs once, at import).
    for name, cls in _SECTION_CLASSES.items():
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        declared = {p.name: p.default for p in SECTION_PARAMS[name]}
        if fields != declared:
            raise RuntimeError(f"[{name}] fields and declarations disagree: {fields} {declared}")


_check_declarations()


# MixtureDataSet subclasses are the sets whose exact score the analytic model can give.
def _mixture_names() -> list[str]:
    return [name for name, cls in DATASETS.items() if issubclass(cls, MixtureDataSet)]


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment: data, SDE, model, loss, training and sampling settings."""

    data: DataConfig = field(default_factory=DataConfig)
    sde: SDEConfig = field(default_factory=SDEConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def __post_init__(self) -> None:
        expected = {"data": DataConfig, "sde": SDEConfig, **_SECTION_CLASSES}
        for name, cls in expected.items():
            if not isinstance(getattr(self, name), cls):
                raise TypeError(f"ExperimentConfig.{name} must be a {cls.__name__}")
        # Cross-section rules; the key is the setting a user is likeliest to change.
        if self.train.batch_size > self.data.n:
            raise _error(
                "train.batch_size",
                f"must be <= data.n ({self.data.n}), got {self.train.batch_size}; "
                "lower train.batch_size or raise data.n",
            )
        if self.model.kind == "analytic" and not self.data.is_mixture:
            raise _error(
                "model.kind",
                f"'analytic' needs Gaussian-mixture data ({', '.join(_mixture_names())}), "
                f"got data.name = {self.data.name!r}",
            )
        # The SDE's own rules about the rest (a non-linear SDE refuses DSM, s(t)-based parts).
        SDES.get(self.sde.kind).check_experiment(self)

    def with_overrides(self, overrides: Mapping[str, Any]) -> ExperimentConfig:
        """A copy with ``{"section.key": value}`` changed, validated again.

        Changing ``data.name`` or ``sde.kind`` drops the old set's or SDE's own keys (they
        belong to the old kind) unless the overrides give them too.
        """
        tree = config_to_dict(self)
        changed: dict[str, dict[str, Any]] = {}
        for dotted, value in overrides.items():
            section, _, key = str(dotted).partition(".")
            if section not in SECTIONS:
                raise _unknown_section(section)
            if not key:
                raise _error(section, f"an override needs 'section.key', got {dotted!r}")
            changed.setdefault(section, {})[key] = value
        for section, keys in changed.items():
            selector = {"data": "name", "sde": "kind"}.get(section)
            if selector in keys and keys[selector] != tree[section][selector]:
                kept = ("n",) if section == "data" else ()
                tree[section] = {k: v for k, v in tree[section].items() if k in kept}
            tree[section].update(keys)
        return config_from_dict(tree)

    def describe(self) -> str:
        """One line: what the experiment is, e.g. for ``sde-workbench check`` or a title bar."""
        m, t, s = self.model, self.train, self.sample
        nets = {"analytic": "analytic score", "unet": f"unet with {m.channels} channels"}
        net = nets.get(m.kind, f"{m.kind} {m.hidden}x{m.depth}")
        return (
            f"{self.data.name} (n={self.data.n}), {self.sde.kind} SDE, {net} -> {m.output}, "
            f"{self.loss.kind}/{self.loss.weighting}, {t.steps} steps of {t.batch_size}, "
            f"{s.sampler} sampler with {s.steps} steps"
        )


# ---------------------------------------------------------------------------------------------
# dict and TOML in and out
# ---------------------------------------------------------------------------------------------
def default_config() -> ExperimentConfig:
    """The built-in experiment: 8 Gaussians, VP SDE, an MLP trained with DSM."""
    return ExperimentConfig()


def _unknown_section(name: str) -> ConfigError:
    return _error(
        str(name),
        f"unknown section [{name}]{did_you_mean(str(name), SECTIONS)}; "
        f"sections: {', '.join(SECTIONS)}",
    )


def _check_keys(section: str, given: Mapping[str, Any], allowed: list[str], what: str) -> None:
    for key in given:
        if key not in allowed:
            raise _error(
                f"{section}.{key}",
                f"unknown key for {what}{did_you_mean(str(key), allowed)}; "
                f"allowed keys: {', '.join(allowed)}",
            )


def config_from_dict(tree: Mapping[str, Any]) -> ExperimentConfig:
    """The experiment described by a parsed TOML document; missing sections and keys default."""
    if not isinstance(tree, Mapping):
        raise _error("", f"an experiment must be a table of sections, got {tree!r}")
    for name in tree:
        if name not in SECTIONS:
            raise _unknown_section(name)
    sections: dict[str, Mapping[str, Any]] = {}
    for name in SECTIONS:
        value = tree.get(name, {})
        if not isinstance(value, Mapping):
            raise _error(name, f"must be a table ([{name}] with keys under it), got {value!r}")
        sections[name] = value

    data = dict(sections["data"])
    name = data.pop("name", _DEFAULT_DATA)
    data_cls = _check_name("data", "name", name, DATASETS)
    allowed = ["name", "n", *(p.name for p in data_cls.params)]
    _check_keys("data", sections["data"], allowed, f"data set {name!r}")
    n = data.pop("n", _DATA_N.default)

    sde = dict(sections["sde"])
    kind = sde.pop("kind", _DEFAULT_SDE)
    sde_cls = _check_name("sde", "kind", kind, SDES)
    allowed = ["kind", *(p.name for p in sde_cls.params)]
    _check_keys("sde", sections["sde"], allowed, f"SDE {kind!r}")

    fixed = {}
    for section, cls in _SECTION_CLASSES.items():
        _check_keys(section, sections[section], [p.name for p in cls.PARAMS], f"[{section}]")
        fixed[section] = cls(**sections[section])
    return ExperimentConfig(
        data=DataConfig(name=name, n=n, params=data),
        sde=SDEConfig(kind=kind, params=sde),
        **fixed,
    )


def _plain(value: Any) -> Any:
    # nested tuples (FloatArray values) as lists: what TOML writers and JSON expect
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def config_to_dict(cfg: ExperimentConfig) -> dict[str, dict[str, Any]]:
    """Every setting of ``cfg`` as plain dicts and lists; optional keys left unset are absent."""
    out: dict[str, dict[str, Any]] = {
        "data": {"name": cfg.data.name, "n": cfg.data.n},
        "sde": {"kind": cfg.sde.kind},
    }
    out["data"].update({k: _plain(v) for k, v in cfg.data.params.items()})
    out["sde"].update({k: _plain(v) for k, v in cfg.sde.params.items()})
    for section in _SECTION_CLASSES:
        part = getattr(cfg, section)
        out[section] = {p.name: _plain(getattr(part, p.name)) for p in part.PARAMS}
    return out


def parse_config(text: str, source: str = "<string>") -> ExperimentConfig:
    """The experiment in TOML ``text``; ``source`` names it in syntax errors."""
    try:
        tree = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _error("", f"{source}: invalid TOML: {exc}") from None
    return config_from_dict(tree)


# far above any real experiment (a long list of mixture means is a few KiB)
CONFIG_MAX_BYTES = 16 << 20


def load_config(path: str | os.PathLike[str]) -> ExperimentConfig:
    """The experiment in the TOML file at ``path``.

    WorkbenchError when the file cannot be read, ConfigError when its content is wrong.
    """
    path = Path(path)
    if not path.exists():
        raise WorkbenchError(f"config file not found: {path}")
    if path.is_dir():
        raise WorkbenchError(f"{path} is a directory, not a config file")
    # a FIFO would block the read and /dev/zero would fill memory: regular files only
    raw = read_regular_bytes(path, CONFIG_MAX_BYTES, what="config file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WorkbenchError(
            f"{path} is not UTF-8 text (byte {exc.start}); is it really a .toml config?"
        ) from None
    cfg = parse_config(text, source=str(path))
    # A data file named relative to the config is found beside it, wherever the command runs;
    # the absolute path is what a run folder's copy of the config then records.
    data_path = cfg.data.params.get("path")
    if isinstance(data_path, str) and not Path(data_path).expanduser().is_absolute():
        cfg = cfg.with_overrides({"data.path": str((path.parent / data_path).resolve())})
    return cfg


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
_HEADER = """\
# SDE Workbench experiment
# Open with `sde-workbench gui FILE`, check with `sde-workbench check FILE`,
# train with `sde-workbench train FILE --out RUN`.
"""
_LINE = 100


def _literal(value: Any) -> str:
    return tomli_w.dumps({"v": value}).strip()[len("v = ") :]


def _array(value: list, indent: str = "") -> str:
    # tomli_w puts every element of every array on its own line; means = [[x, y], ...] reads
    # far better kept compact, with one row per line only when it does not fit.
    if not any(isinstance(v, list) for v in value):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    inner = [_array(v, indent + "    ") for v in value]
    flat = "[" + ", ".join(inner) + "]"
    if len(flat) + len(indent) <= _LINE - 20 and "\n" not in flat:
        return flat
    rows = "".join(f"{indent}    {row},\n" for row in inner)
    return f"[\n{rows}{indent}]"


def _comment(param: Param | None) -> str:
    if param is None:
        return ""
    text = param.help
    if isinstance(param.check, Choice):
        options = " | ".join(param.check.options)
        text = f"{text} ({options})" if text else options
    return f"  # {_one_line(text)}" if text else ""


def to_toml(cfg: ExperimentConfig) -> str:
    """``cfg`` as a TOML document, every key explicit, each with its help as a comment."""
    tree = config_to_dict(cfg)
    lines = [_HEADER]
    for section in SECTIONS:
        declared = {p.name: p for p in section_params(cfg, section)}
        lines.append(f"[{section}]")
        for key, value in tree[section].items():
            text = _array(value) if isinstance(value, list) else _literal(value)
            name = tomli_w.dumps({key: 0}).split(" = ")[0]  # quoted if it must be
            lines.append(f"{name} = {text}{_comment(declared.get(key))}")
        lines.append("")
    return "\n".join(lines)


def save_config(
    cfg: ExperimentConfig, path: str | os.PathLike[str], *, overwrite: bool = True
) -> None:
    """Write ``cfg`` to ``path`` as TOML, atomically: a reader sees the old file or the new one.

    Only a regular file is replaced, and only with ``overwrite`` (a directory, symlink, device,
    FIFO or socket is refused: :func:`workbench.io.paths.check_destination`).
    WorkbenchError when it cannot be written.
    """
    from workbench.io.paths import check_destination, replace_into

    path = check_destination(path, overwrite)
    text = to_toml(cfg)
    folder = path.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise WorkbenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file private (0600); a config is an ordinary document
        mode = path.stat().st_mode & 0o777 if path.is_file() else 0o644
        os.chmod(tmp, mode)
        replace_into(tmp, path, overwrite)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise WorkbenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# declarations for the GUI
# ---------------------------------------------------------------------------------------------
def section_params(cfg_or_name: ExperimentConfig | str | None, section: str) -> tuple[Param, ...]:
    """The declared keys of ``section``, in the order a form shows them.

    For ``data`` and ``sde`` that is ``name``/``n`` or ``kind`` followed by the keys of the data
    set or SDE named by ``cfg_or_name`` (a config, or the set's or SDE's name; None: the
    default). The fixed sections ignore ``cfg_or_name``.
    """
    if section in SECTION_PARAMS:
        return SECTION_PARAMS[section]
    if section not in ("data", "sde"):
        raise _unknown_section(section)
    if isinstance(cfg_or_name, ExperimentConfig):
        name = cfg_or_name.data.name if section == "data" else cfg_or_name.sde.kind
    elif cfg_or_name is None:
        name = _DEFAULT_DATA if section == "data" else _DEFAULT_SDE
    else:
        name = cfg_or_name
    if section == "data":
        cls = _check_name("data", "name", name, DATASETS)
        return (_data_name_param(), _DATA_N, *cls.params)
    cls = _check_name("sde", "kind", name, SDES)
    return (_sde_kind_param(), *cls.params)
