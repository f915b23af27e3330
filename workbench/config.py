"""The experiment config: six typed, validated sections, read from and written to TOML.

```toml
[data]   name = "8gaussians"; n = 100000   # plus the data set's own keys (means, noise, ...)
[sde]    kind = "vp"                        # plus the SDE's own keys (beta_min, sigma_max, ...)
[model]  [loss]  [train]  [sample]          # fixed keys: tuples of Param (below; [loss] in core)
```

Every key is declared once as a :class:`~workbench.core.params.Param` (the fixed sections' in
:mod:`workbench.config_params`): the declaration gives the
default, the check (with the message saying what is allowed) and the help line, and the GUI reads
the same declarations (:func:`section_params`) to build its fields. The ``[data]`` and ``[sde]``
keys beyond ``name``/``kind`` come from the registered class, so a new SDE or data set brings its
own keys with it; ``[loss]`` is core's declaration (:data:`workbench.core.losses.LOSS_PARAMS`).
Every closed list of names (``model.kind``, ``loss.kind``, ``sample.sampler``, ``sample.grid``,
activations, outputs, ...) is its registry's, asked on each use, so registering a class makes it
a choice here, in the GUI's combo boxes and on the command line; and a default that a core
builder also fills in (``MODEL_DEFAULTS``, ``SAMPLER_DEFAULTS``) is read from there.

Every config object is valid by construction: each dataclass checks itself in
``__post_init__``, so a config built in code, read from a file or changed with
:meth:`ExperimentConfig.with_overrides` has passed the same checks. Errors are
:class:`~workbench.errors.ConfigError` with the full dotted key (``sde.beta_max``) and a one-line
message naming the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import tomli_w

from workbench.config_params import (
    INT64_MAX,
    INT64_MIN,
    LOSS_PARAMS,
    MODEL_PARAMS,
    SAMPLE_PARAMS,
    SECTION_PARAMS,
    TRAIN_PARAMS,
    Device,
)
from workbench.core.data import DATASETS, MixtureDataSet, validate_data_params
from workbench.core.params import Choice, Int, Param, did_you_mean
from workbench.core.registry import Registry
from workbench.core.sde import SDES, validate_sde_params
from workbench.errors import ConfigError, WorkbenchError, one_line
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


def _error(key: str, message: str) -> ConfigError:
    return ConfigError(key, one_line(message))


def _prefixed(exc: ConfigError, section: str) -> ConfigError:
    """``exc`` with ``section.`` in front of its key, its message on one line."""
    key = f"{section}.{exc.key}" if exc.key else section
    return _error(key, exc.message)


def _check_int_range(key: str, value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
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


_DATA_N = Param("n", Int(1, 10**9), 100000, "number of training samples drawn")
_DEFAULT_DATA = "8gaussians"
_DEFAULT_SDE = "vp"


_DATA_NAME = Param("name", Choice(DATASETS.names), _DEFAULT_DATA, "the data set")
_SDE_KIND = Param("kind", Choice(SDES.names), _DEFAULT_SDE, "the forward SDE")


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
    n: int = _DATA_N.default
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


def _defaults(params: tuple[Param, ...]) -> dict[str, Any]:
    return {p.name: p.default for p in params}


# The dataclass fields name each key again for type checkers and readers; their defaults are
# read from the declarations, and _check_declarations keeps the names in step.
_MODEL = _defaults(MODEL_PARAMS)
_LOSS = _defaults(LOSS_PARAMS)
_TRAIN = _defaults(TRAIN_PARAMS)
_SAMPLE = _defaults(SAMPLE_PARAMS)


@dataclass(frozen=True)
class ModelConfig(_Section):
    """``[model]``: the score network."""

    SECTION: ClassVar[str] = "model"
    PARAMS: ClassVar[tuple[Param, ...]] = MODEL_PARAMS

    kind: str = _MODEL["kind"]
    hidden: int = _MODEL["hidden"]
    depth: int = _MODEL["depth"]
    activation: str = _MODEL["activation"]
    output: str = _MODEL["output"]
    time_embedding: str = _MODEL["time_embedding"]
    embed_dim: int = _MODEL["embed_dim"]
    fourier_scale: float = _MODEL["fourier_scale"]
    channels: int = _MODEL["channels"]
    conditional: bool = _MODEL["conditional"]


@dataclass(frozen=True)
class LossConfig(_Section):
    """``[loss]``: the score-matching objective."""

    SECTION: ClassVar[str] = "loss"
    PARAMS: ClassVar[tuple[Param, ...]] = LOSS_PARAMS

    kind: str = _LOSS["kind"]
    weighting: str = _LOSS["weighting"]
    eps: float = _LOSS["eps"]
    n_projections: int = _LOSS["n_projections"]
    projection: str = _LOSS["projection"]
    importance_sampling: bool = _LOSS["importance_sampling"]


@dataclass(frozen=True)
class TrainConfig(_Section):
    """``[train]``: the optimisation."""

    SECTION: ClassVar[str] = "train"
    PARAMS: ClassVar[tuple[Param, ...]] = TRAIN_PARAMS

    steps: int = _TRAIN["steps"]
    batch_size: int = _TRAIN["batch_size"]
    lr: float = _TRAIN["lr"]
    ema: float = _TRAIN["ema"]
    device: str = _TRAIN["device"]
    seed: int = _TRAIN["seed"]
    optimizer: str = _TRAIN["optimizer"]
    weight_decay: float = _TRAIN["weight_decay"]
    warmup: int = _TRAIN["warmup"]
    schedule: str = _TRAIN["schedule"]
    grad_clip: float = _TRAIN["grad_clip"]
    checkpoint_every: int = _TRAIN["checkpoint_every"]
    log_every: int = _TRAIN["log_every"]
    snapshot_every: int = _TRAIN["snapshot_every"]
    precision: str = _TRAIN["precision"]
    fast_path: str = _TRAIN["fast_path"]
    p_uncond: float = _TRAIN["p_uncond"]


@dataclass(frozen=True)
class SampleConfig(_Section):
    """``[sample]``: the reverse-time sampler."""

    SECTION: ClassVar[str] = "sample"
    PARAMS: ClassVar[tuple[Param, ...]] = SAMPLE_PARAMS

    sampler: str = _SAMPLE["sampler"]
    steps: int = _SAMPLE["steps"]
    n: int = _SAMPLE["n"]
    record_every: int = _SAMPLE["record_every"]
    eps: float = _SAMPLE["eps"]
    grid: str = _SAMPLE["grid"]
    rho: float = _SAMPLE["rho"]
    predictor: str = _SAMPLE["predictor"]
    corrector: str = _SAMPLE["corrector"]
    snr: float = _SAMPLE["snr"]
    n_corrector_steps: int = _SAMPLE["n_corrector_steps"]
    integrator: str = _SAMPLE["integrator"]
    rtol: float = _SAMPLE["rtol"]
    atol: float = _SAMPLE["atol"]
    eta: float = _SAMPLE["eta"]
    s_churn: float = _SAMPLE["s_churn"]
    s_tmin: float = _SAMPLE["s_tmin"]
    s_tmax: float = _SAMPLE["s_tmax"]
    s_noise: float = _SAMPLE["s_noise"]
    denoise: bool = _SAMPLE["denoise"]
    seed: int = _SAMPLE["seed"]
    fast_path: str = _SAMPLE["fast_path"]
    precision: str = _SAMPLE["precision"]
    chunk_size: int = _SAMPLE["chunk_size"]
    class_label: int = _SAMPLE["class_label"]
    guidance: float = _SAMPLE["guidance"]


_SECTION_CLASSES: dict[str, type[_Section]] = {
    "model": ModelConfig,
    "loss": LossConfig,
    "train": TrainConfig,
    "sample": SampleConfig,
}


def _check_declarations() -> None:
    # The dataclass fields repeat the declared names (in order) for type checkers and readers;
    # this keeps the two from drifting apart (it runs once, at import).
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
        labelled = DATASETS.get(self.data.name).has_labels(self.data.params)
        if self.model.conditional and self.model.kind != "analytic" and not labelled:
            raise _error(
                "model.conditional",
                f"needs labelled data; data set {self.data.name!r} has no class labels "
                "(mixtures, digits and files with data.labels have them)",
            )
        if self.sample.guidance > 0 and self.sample.class_label < 0:
            raise _error(
                "sample.guidance",
                f"needs a class to guide towards: set sample.class_label (--class K) too, got "
                f"guidance {self.sample.guidance:g} and no class",
            )
        # Training draws t from [loss.eps, T] and sampling runs from T down to sample.eps; T is
        # the SDE's, so the upper end of both is checked here rather than in the declarations.
        T = float(self.sde.params.get("T", SDES.get(self.sde.kind).T))
        for key, eps in (("loss.eps", self.loss.eps), ("sample.eps", self.sample.eps)):
            if not eps < T:
                raise _error(
                    key, f"must be < T = {T:g} (sde.T), the end of the diffusion, got {eps:g}"
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

    fixed: dict[str, Any] = {}  # section name -> its config class, as ExperimentConfig takes
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
    return f"  # {one_line(text)}" if text else ""


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
        return (_DATA_NAME, _DATA_N, *cls.params)
    cls = _check_name("sde", "kind", name, SDES)
    return (_SDE_KIND, *cls.params)
