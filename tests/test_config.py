"""The experiment config: defaults, TOML round trips, the messages of bad input, presets."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.config import (
    SECTION_PARAMS,
    SECTIONS,
    DataConfig,
    ExperimentConfig,
    SDEConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    default_config,
    load_config,
    parse_config,
    save_config,
    section_params,
    to_toml,
)
from workbench.core.data import DATASETS
from workbench.core.params import Choice
from workbench.core.sde import MAX_PRIOR_SNR, SDES, build_sde
from workbench.errors import ConfigError, WorkbenchError
from workbench.presets import PRESETS, preset_config, preset_description, preset_names


def round_trips(cfg: ExperimentConfig) -> None:
    assert parse_config(to_toml(cfg)) == cfg
    assert config_from_dict(config_to_dict(cfg)) == cfg


def config_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    err = info.value
    assert "\n" not in str(err), str(err)
    return err


# ---------------------------------------------------------------------------------------------
# defaults
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", '[data]\nname = "8gaussians"\n', "[data]\n[sde]\n[train]\n"])
def test_a_nearly_empty_document_is_the_default_experiment(text: str) -> None:
    assert parse_config(text) == default_config()


def test_default_values() -> None:
    cfg = default_config()
    assert (cfg.data.name, cfg.data.n) == ("8gaussians", 100000)
    assert cfg.sde.kind == "vp"
    assert cfg.sde.params == {"beta_min": 0.1, "beta_max": 20.0, "T": 1.0}
    m, loss, t, s = cfg.model, cfg.loss, cfg.train, cfg.sample
    assert (m.kind, m.hidden, m.depth, m.activation, m.output) == ("mlp", 256, 3, "silu", "eps")
    assert (m.embed_dim, t.schedule) == (32, "cosine")
    assert (loss.kind, loss.weighting) == ("dsm", "sigma2")
    assert (t.steps, t.batch_size, t.lr, t.ema, t.device, t.seed) == (
        5000,
        1024,
        5e-3,
        0.999,
        "auto",
        0,
    )
    assert (s.sampler, s.steps, s.n, s.record_every) == ("em", 1000, 10000, 10)


def test_saved_defaults_are_explicit() -> None:
    tree = config_to_dict(default_config())
    assert list(tree) == list(SECTIONS)
    # the data set's and the SDE's own defaults are written out, not left implicit
    assert {"radius", "std"} <= set(tree["data"])
    assert {"beta_min", "beta_max", "T"} <= set(tree["sde"])
    for section, params in SECTION_PARAMS.items():
        assert set(tree[section]) == {p.name for p in params}
    assert None not in [v for part in tree.values() for v in part.values()]


def test_dataclass_fields_match_the_declarations() -> None:
    cfg = default_config()
    for section, params in SECTION_PARAMS.items():
        part = getattr(cfg, section)
        assert [f.name for f in dataclasses.fields(part)] == [p.name for p in params]
        for p in params:
            assert getattr(part, p.name) == p.default


def test_configs_are_frozen_and_hashable() -> None:
    cfg = default_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.steps = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.sde.params["beta_max"] = 3.0  # type: ignore[index]
    assert hash(cfg) == hash(default_config())
    assert len({cfg, default_config(), preset_config("gmm")}) == 2


def test_direct_construction_validates_and_fills_defaults() -> None:
    assert SDEConfig("ve").params == {"sigma_min": 0.01, "sigma_max": 50.0, "T": 1.0}
    assert DataConfig("moons").params == {"noise": 0.1}
    assert TrainConfig(lr=1).lr == 1.0 and isinstance(TrainConfig(lr=1).lr, float)
    with pytest.raises(ConfigError) as info:
        TrainConfig(steps=0)
    assert info.value.key == "train.steps"
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(data=DataConfig(n=10))
    assert info.value.key == "train.batch_size"


# ---------------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", preset_names())
def test_every_preset_validates_and_round_trips(name: str) -> None:
    cfg = preset_config(name)
    round_trips(cfg)
    assert preset_description(name)


def test_every_data_set_has_a_preset() -> None:
    assert set(DATASETS.names()) <= set(PRESETS)
    assert {"default", "ve", "analytic"} <= set(PRESETS)
    assert preset_config("default") == default_config()
    assert preset_config("analytic").model.kind == "analytic"
    assert preset_config("ve").sde.kind == "ve"
    digits = preset_config("digits")
    assert digits.model.kind == "unet" and digits.train.batch_size <= digits.data.n
    assert PRESETS["file"].needs_file == preset_config("file").data.params["path"]


def test_unknown_preset_suggests_a_name() -> None:
    with pytest.raises(ConfigError) as info:
        preset_config("moonz")
    assert info.value.key == "preset"
    assert "did you mean 'moons'?" in info.value.message


SDE_VARIANTS: list[dict[str, Any]] = [
    {"kind": "vp", "beta_min": 0.05, "beta_max": 12.5},
    {"kind": "subvp", "beta_max": 15},
    {"kind": "ve", "sigma_min": 0.002, "sigma_max": 80.0, "T": 2.0},
    {"kind": "cosine", "s": 0.01, "alpha_bar_min": 1e-3},
    {"kind": "linear", "a": "-0.5*(0.2 + 10*t)", "g": "sqrt(0.2 + 10*t)"},
    {"kind": "custom", "drift": "-x1 - 2*x2; 2*x1 - x2", "g": "sqrt(2)", "T": 2.0, "dt": 0.002},
    {"kind": "rectified", "T": 0.995},
]
# A non-linear SDE has no Gaussian kernel: the rest of the experiment must not ask for one.
_SDE_NEEDS = {
    "custom": {
        "loss": {"kind": "ssm", "weighting": "none"},
        "model": {"output": "score"},
        "sample": {"denoise": False},
    }
}


def test_every_sde_kind_is_covered() -> None:
    assert {v["kind"] for v in SDE_VARIANTS} == set(SDES.names())


@pytest.mark.parametrize("sde", SDE_VARIANTS, ids=lambda v: v["kind"])
def test_each_sde_kind_round_trips(sde: dict[str, Any]) -> None:
    cfg = config_from_dict({"sde": sde, **_SDE_NEEDS.get(sde["kind"], {})})
    assert cfg.sde.kind == sde["kind"]
    assert {p.name for p in SDES.get(sde["kind"]).params} == set(cfg.sde.params)
    round_trips(cfg)


def test_gmm_with_full_covariances_round_trips() -> None:
    text = """
    [data]
    name = "gmm"
    n = 5000
    means = [[0, 0, 1], [1, 2, 3]]
    covs = [[[1, 0.5, 0], [0.5, 2, 0], [0, 0, 1]], [[0.1, 0, 0], [0, 0.2, 0], [0, 0, 0.3]]]
    weights = [1, 3]
    [train]
    batch_size = 500
    """
    cfg = parse_config(text)
    assert cfg.data.params["covs"][0][0] == (1.0, 0.5, 0.0)
    assert cfg.data.params["weights"] == (1.0, 3.0)
    round_trips(cfg)
    # arrays stay compact, one matrix per line when they do not fit on one
    assert "means = [[0.0, 0.0, 1.0], [1.0, 2.0, 3.0]]" in to_toml(cfg)


def test_to_toml_is_commented_and_parses_with_tomllib() -> None:
    text = to_toml(preset_config("gmm"))
    assert text.startswith("# SDE Workbench experiment")
    assert (
        'kind = "vp"  # the forward SDE (vp | subvp | ve | cosine | linear | custom | rectified)'
        in text
    )
    assert "stds = [0.5, 0.7, 0.4]" in text


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
BAD = [
    # (toml, key, words the message must contain)
    ("[trian]\nsteps = 1", "trian", ["unknown section", "did you mean 'train'?"]),
    ("[train]\nsetps = 1", "train.setps", ["unknown key", "did you mean 'steps'?", "batch_size"]),
    ('[data]\nnme = "moons"', "data.nme", ["did you mean 'name'?"]),
    ('[sde]\nkind = "ve"\nbeta_max = 3.0', "sde.beta_max", ["unknown key", "sigma_max"]),
    ('[train]\nlr = "fast"', "train.lr", ["must be a number", "'fast'"]),
    ("[train]\nlr = 2.0", "train.lr", ["<= 1", "2.0"]),
    ("[train]\nsteps = 10.5", "train.steps", ["integer", "10.5"]),
    ("[train]\nsteps = 0", "train.steps", ["from 1", "got 0"]),
    ('[train]\nsteps = "100"', "train.steps", ["integer", "'100'"]),
    ('[train]\ndevice = "gpu"', "train.device", ["'cuda:N'", "'gpu'"]),
    ("[train]\nema = 1.0", "train.ema", ["< 1", "1.0"]),
    ("[loss]\nimportance_sampling = 1", "loss.importance_sampling", ["true or false"]),
    ('[model]\noutput = "noise"', "model.output", ["'score', 'eps', 'x0'", "'noise'"]),
    ("[model]\nhidden = 100000000000000000000000", "model.hidden", ["out of range"]),
    ("[sample]\nsnr = -1", "sample.snr", ["> 0", "-1"]),
    ("[sample]\neps = nan", "sample.eps", ["nan"]),
    ("[sde]\nbeta_min = 5.0\nbeta_max = 1.0", "sde.beta_max", ["greater than beta_min", "1"]),
    ('[sde]\nkind = "vpp"', "sde.kind", ["did you mean 'vp'?", "subvp"]),
    ('[sde]\nkind = "ve"\nsigma_min = 0.0', "sde.sigma_min", ["> 0", "0.0"]),
    ('[sde]\nkind = "ve"\nsigma_min = -0.5', "sde.sigma_min", ["> 0", "-0.5"]),
    ('[sde]\nkind = "linear"\na = "-0.5*(t +"', "sde.a", ["column"]),
    ('[sde]\nkind = "linear"\ng = "sqrt(t) $ 2"', "sde.g", ["'$'", "column 9"]),
    ('[sde]\nkind = "linear"\ng = "-1 - t"', "sde.g", [">= 0"]),
    # the expression is quoted in the message: its line break must not split the message
    ('[sde]\nkind = "linear"\ng = "-1\\n- t"', "sde.g", [">= 0"]),
    ('[data]\nname = "moonz"', "data.name", ["unknown data set", "did you mean 'moons'?"]),
    ("[data]\nname = 3", "data.name", ["8gaussians", "got 3"]),
    ("[data]\nn = 100\n[train]\nbatch_size = 1000", "train.batch_size", ["data.n", "100", "1000"]),
    ('[data]\nname = "moons"\n[model]\nkind = "analytic"', "model.kind", ["mixture", "moons"]),
    ('[data]\nname = "moons"\nnoise = -1', "data.noise", [">= 0", "-1"]),
    ('[data]\nname = "gmm"\nmeans = [[0, 0]]\nstds = [1, 2]', "data.stds", ["2 entries"]),
    ('[data]\nname = "gmm"\nmeans = [[0, 0], [1]]\nstds = [1, 2]', "data.means", ["same length"]),
    ('[data]\nname = "file"', "data.path", ["required"]),
    ("train = 5", "train", ["table"]),
    ("[train]\nsteps = 1\n[train.sub]\nx = 1", "train.sub", ["unknown key"]),
]


@pytest.mark.parametrize(("text", "key", "words"), BAD, ids=[b[1] for b in BAD])
def test_bad_input_names_the_key_and_what_is_allowed(text: str, key: str, words: list) -> None:
    err = config_error(text)
    assert err.key == key
    assert str(err).startswith(f"{key}: ")
    for word in words:
        assert word in err.message


def test_invalid_toml_names_the_source() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("[train\nsteps = 1\n", source="exp.toml")
    assert info.value.key == ""
    assert info.value.message.startswith("exp.toml: invalid TOML: ")
    assert "line 1" in info.value.message


# ---------------------------------------------------------------------------------------------
# overrides
# ---------------------------------------------------------------------------------------------
def test_with_overrides_revalidates() -> None:
    cfg = default_config().with_overrides(
        {"train.steps": 10, "train.seed": 7, "train.device": "cpu"}
    )
    assert (cfg.train.steps, cfg.train.seed, cfg.train.device) == (10, 7, "cpu")
    assert cfg.sample == default_config().sample
    with pytest.raises(ConfigError) as info:
        cfg.with_overrides({"train.device": "cuda:x"})
    assert info.value.key == "train.device"
    with pytest.raises(ConfigError) as info:
        cfg.with_overrides({"train.setps": 1})
    assert info.value.key == "train.setps" and "did you mean 'steps'?" in info.value.message
    with pytest.raises(ConfigError) as info:
        cfg.with_overrides({"trian.steps": 1})
    assert info.value.key == "trian" and "did you mean 'train'?" in info.value.message


def test_changing_the_kind_drops_the_old_kinds_keys() -> None:
    start = default_config().with_overrides({"data.n": 5000, "train.batch_size": 500})
    cfg = start.with_overrides({"sde.kind": "ve", "data.name": "moons"})
    assert set(cfg.sde.params) == {"sigma_min", "sigma_max", "T"}
    assert cfg.data.params == {"noise": 0.1}
    assert cfg.data.n == 5000  # n is not the old set's own key: it stays
    cfg = cfg.with_overrides({"sde.kind": "ve", "sde.sigma_max": 5.0})
    assert cfg.sde.params["sigma_max"] == 5.0


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
def test_save_then_load(tmp_path: Path) -> None:
    cfg = preset_config("gmm1d")
    path = tmp_path / "exp.toml"
    save_config(cfg, path)
    assert load_config(path) == cfg
    assert load_config(str(path)) == cfg
    assert os.listdir(tmp_path) == ["exp.toml"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_save_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "exp.toml"
    path.write_text("old", encoding="utf-8")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(WorkbenchError, match="No space left"):
        save_config(default_config(), path)
    assert path.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["exp.toml"]


def test_save_into_a_missing_folder_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="cannot write"):
        save_config(default_config(), tmp_path / "nope" / "exp.toml")
    with pytest.raises(WorkbenchError, match="directory"):
        save_config(default_config(), tmp_path)


def test_load_errors_name_the_path(tmp_path: Path) -> None:
    cases = {
        tmp_path / "missing.toml": "not found",
        tmp_path: "directory",
    }
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00[data]")
    cases[binary] = "not UTF-8"
    for path, words in cases.items():
        with pytest.raises(WorkbenchError) as info:
            load_config(path)
        assert not isinstance(info.value, ConfigError)
        assert str(path) in str(info.value) and words in str(info.value)
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nsteps = = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"{bad}: invalid TOML"):
        load_config(bad)


# ---------------------------------------------------------------------------------------------
# declarations for the GUI
# ---------------------------------------------------------------------------------------------
def test_section_params_follow_the_kind() -> None:
    cfg = preset_config("gmm")
    assert [p.name for p in section_params(cfg, "data")][:2] == ["name", "n"]
    assert {"means", "stds", "covs", "weights"} <= {p.name for p in section_params(cfg, "data")}
    assert [p.name for p in section_params("ve", "sde")] == ["kind", "sigma_min", "sigma_max", "T"]
    assert section_params(None, "train") == SECTION_PARAMS["train"]
    name = section_params(cfg, "data")[0]
    assert isinstance(name.check, Choice) and "digits" in name.check.options
    with pytest.raises(ConfigError, match="did you mean 'sample'"):
        section_params(cfg, "sampel")


# ---------------------------------------------------------------------------------------------
# any TOML value under any declared key: a valid config or a ConfigError naming that key
# ---------------------------------------------------------------------------------------------
def _targets() -> list[tuple[dict[str, Any], str, str, set[str]]]:
    """(base document, section, key, keys an error may name) for every declared key."""
    targets = []
    for section, params in SECTION_PARAMS.items():
        for p in params:
            cross = {"model.kind": {"model.kind"}, "train.batch_size": {"train.batch_size"}}
            allowed = {f"{section}.{p.name}"} | cross.get(f"{section}.{p.name}", set())
            targets.append(({}, section, p.name, allowed))
    every_data_key = {f"data.{p.name}" for _, cls in DATASETS.items() for p in cls.params}
    targets.append(({}, "data", "name", {"data.name"} | every_data_key))
    targets.append(({}, "data", "n", {"data.n", "train.batch_size"}))
    for name, cls in DATASETS.items():
        keys = {f"data.{p.name}" for p in cls.params}
        for p in cls.params:
            targets.append(({"data": {"name": name}}, "data", p.name, keys))
    # a non-linear kind refuses the default loss (and other kernel-based settings) by name
    refused = {"loss.kind", "loss.weighting", "model.output", "sample.denoise", "sde.drift"}
    targets.append(({}, "sde", "kind", {"sde.kind", *refused}))
    for kind, cls in SDES.items():
        keys = {f"sde.{p.name}" for p in cls.params}
        for p in cls.params:
            base = {"sde": {"kind": kind}, **_SDE_NEEDS.get(kind, {})}
            targets.append((base, "sde", p.name, keys))
    return targets


TARGETS = _targets()
_OPTIONS = sorted(
    {
        o
        for params in SECTION_PARAMS.values()
        for p in params
        if isinstance(p.check, Choice)
        for o in p.check.options
    }
    | set(DATASETS.names())
    | set(SDES.names())
)
_LEAVES = st.one_of(
    st.integers(-5, 5000),
    st.integers(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(1e-6, 1.0),
    st.text(max_size=12),
    st.sampled_from([*_OPTIONS, "t", "sqrt(t)", "-t", "1 +", "exp(50*t)", "cuda:1"]),
    st.booleans(),
)
TOML_VALUES = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=4), inner, max_size=2)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=st.sampled_from(TARGETS), value=TOML_VALUES)
def test_any_value_gives_a_config_or_a_config_error(
    target: tuple[dict[str, Any], str, str, set[str]], value: Any
) -> None:
    base, section, key, allowed = target
    tree = {name: dict(part) for name, part in base.items()}
    tree.setdefault(section, {})[key] = value
    text = tomli_w.dumps(tree)
    try:
        cfg = parse_config(text)
    except ConfigError as err:
        assert err.key in allowed, (err.key, str(err))
        assert "\n" not in str(err) and "\r" not in str(err)
        assert err.message
    else:
        round_trips(cfg)


def test_relative_data_path_is_resolved_beside_the_config(tmp_path: Path) -> None:
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "exp.toml").write_text(
        '[data]\nname = "file"\nn = 10\npath = "points.npy"\n[train]\nbatch_size = 5\n'
    )
    cfg = load_config(folder / "exp.toml")
    assert cfg.data.params["path"] == str((folder / "points.npy").resolve())
    absolute = tmp_path / "elsewhere.npy"
    (folder / "abs.toml").write_text(
        f'[data]\nname = "file"\nn = 10\npath = "{absolute}"\n[train]\nbatch_size = 5\n'
    )
    assert load_config(folder / "abs.toml").data.params["path"] == str(absolute)


def test_fast_path_precision_and_chunk_keys() -> None:
    cfg = default_config()
    assert (cfg.train.fast_path, cfg.sample.fast_path) == ("auto", "auto")
    assert (cfg.sample.precision, cfg.sample.chunk_size) == ("fp32", 0)
    text = (
        '[train]\nfast_path = "compile"\n'
        '[sample]\nfast_path = "off"\nprecision = "bf16"\nchunk_size = 4096\n'
    )
    cfg = parse_config(text)
    assert (cfg.train.fast_path, cfg.sample.fast_path) == ("compile", "off")
    assert (cfg.sample.precision, cfg.sample.chunk_size) == ("bf16", 4096)
    assert parse_config(to_toml(cfg)) == cfg
    assert config_error("[sample]\nchunk_size = -1").key == "sample.chunk_size"
    assert config_error('[train]\nfast_path = "graph"').key == "train.fast_path"
    assert config_error('[sample]\nprecision = "fp16"').key == "sample.precision"


# --- only a regular config file of sane size is read --------------------------------------------
@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("fifo", "named pipe (FIFO)"),
        ("dev_zero", "character device"),
        ("directory", "is a directory"),
        ("huge", "more than the 16.0 MiB a config file may be"),
    ],
)
def test_a_config_path_that_is_not_a_sane_regular_file_is_refused_at_once(
    tmp_path: Path, kind: str, fragment: str
) -> None:
    import signal

    path = tmp_path / "exp.toml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    else:
        with path.open("wb") as fh:  # sparse: 1 GiB that takes no disk
            fh.truncate(1 << 30)

    def late(signum: int, frame: Any) -> None:
        raise AssertionError("load_config blocked on the path")

    previous = signal.signal(signal.SIGALRM, late)
    signal.alarm(10)
    try:
        with pytest.raises(WorkbenchError) as info:
            load_config(path)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    message = str(info.value)
    assert fragment in message and "exp.toml" in message and "\n" not in message


def test_dev_zero_itself_is_refused_as_a_config() -> None:
    with pytest.raises(WorkbenchError, match=r"/dev/zero: is a character device"):
        load_config("/dev/zero")


# ---------------------------------------------------------------------------------------------
# experiments that cannot work are refused, with the reason and the numbers
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("g", ["0", "0*t", "t - t", "0*sqrt(1 + t)"])
def test_a_linear_sde_without_noise_is_refused(g: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f'[sde]\nkind = "linear"\ng = "{g}"\n')
    assert info.value.key == "sde.g"
    assert "zero on all of [0, T]" in info.value.message and "nothing to" in info.value.message


WEAK = [
    ({"kind": "ve", "sigma_max": 1.9}, "sde.sigma_max"),
    ({"kind": "vp", "beta_max": 2.0}, "sde.beta_max"),
    ({"kind": "subvp", "beta_max": 2.0}, "sde.beta_max"),
    ({"kind": "vp", "T": 0.05}, "sde.beta_max"),
    ({"kind": "cosine", "alpha_bar_min": 0.3}, "sde.alpha_bar_min"),
    ({"kind": "linear", "a": "-0.1", "g": "0.1"}, "sde.g"),
    ({"kind": "linear", "a": "0", "g": "1", "T": 1.0}, "sde.g"),  # s(T) = 1 = m(T)
]


@pytest.mark.parametrize(("sde", "key"), WEAK, ids=[w[0]["kind"] for w in WEAK])
def test_a_prior_far_from_p_T_is_refused_with_the_numbers(sde: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"sde": sde})
    built = build_sde(sde["kind"], {k: v for k, v in sde.items() if k != "kind"})
    m, s = (float(v) for v in built.marginal_coeffs(torch.tensor(built.T, dtype=torch.float64)))
    message = info.value.message
    assert info.value.key == key
    assert f"m(T) = {m:.4g}" in message and f"s(T) = {s:.4g}" in message
    assert f"{m * m / (s * s):.3g} > {MAX_PRIOR_SNR:g}" in message


@settings(max_examples=200, deadline=None)
@given(
    sigma_min=st.floats(1e-4, 1.0),
    sigma_max=st.floats(1e-3, 100.0),
    beta_max=st.floats(0.2, 40.0),
    T=st.floats(0.01, 10.0),
)
def test_the_prior_rule_is_the_stated_bound(
    sigma_min: float, sigma_max: float, beta_max: float, T: float
) -> None:
    """Refused exactly when m(T)^2/s(T)^2 > MAX_PRIOR_SNR, by the closed forms:
    VE m = 1, s^2 = sigma_max^2 - sigma_min^2; VP m = exp(-T^2 (b1 - b0)/4 - T b0/2)."""
    cases = []
    if sigma_max > sigma_min * (1 + 1e-9):
        snr = 1.0 / (sigma_max**2 - sigma_min**2)
        cases.append(({"kind": "ve", "sigma_min": sigma_min, "sigma_max": sigma_max}, snr))
    log_m = -0.25 * T * T * (beta_max - 0.1) - 0.5 * T * 0.1
    cases.append(
        ({"kind": "vp", "beta_max": beta_max, "T": T}, math.exp(2 * log_m) / -math.expm1(2 * log_m))
    )
    for sde, snr in cases:
        if abs(snr / MAX_PRIOR_SNR - 1) < 1e-9:
            continue  # on the boundary float rounding decides
        try:
            config_from_dict({"sde": sde})
            refused = False
        except ConfigError:
            refused = True
        assert refused == (snr > MAX_PRIOR_SNR), (sde, snr)


@pytest.mark.parametrize("sigma_max", [2.05, 3.0, 10.0])
def test_the_prior_bound_holds_for_real_data(sigma_max: float) -> None:
    """KL(p_T || prior) <= 1/2 ln(1 + m^2/s^2) per coordinate, checked by quadrature for the
    standardised gmm1d mixture under VE (p_T is the mixture widened by s(T)^2)."""
    from workbench.core.data import build_dataset

    sde = build_sde("ve", {"sigma_max": sigma_max})
    mix = build_dataset("gmm1d", {}).mixture()
    w = np.asarray(mix.weights, dtype=np.float64)
    mu = np.asarray(mix.means, dtype=np.float64).reshape(-1)
    var = np.asarray(mix.covs, dtype=np.float64).reshape(-1)
    mean = float(w @ mu)
    std = math.sqrt(float(w @ (var + mu**2)) - mean**2)
    mu, var = (mu - mean) / std, var / std**2  # standardised, as the model sees the data
    m, s = (float(v) for v in sde.marginal_coeffs(torch.tensor(1.0, dtype=torch.float64)))
    x = np.linspace(-40, 40, 400001)
    vt = m * m * var + s * s
    p = (
        w[:, None]
        * np.exp(-0.5 * (x - m * mu[:, None]) ** 2 / vt[:, None])
        / np.sqrt(2 * np.pi * vt[:, None])
    ).sum(0)
    sd = sde.prior_std()
    q = np.exp(-0.5 * (x / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
    keep = p > 1e-300
    kl = float(np.sum(p[keep] * np.log(p[keep] / q[keep])) * (x[1] - x[0]))
    assert 0 <= kl <= 0.5 * math.log1p(m * m / (s * s))
