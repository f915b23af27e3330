"""Every key declared once: closed lists of names are the registries', the loss keys are core's,
the sampler defaults are the samplers'."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from tests.registry_dummies import DUMMIES, registered
from workbench.config import (
    LossConfig,
    SampleConfig,
    config_from_dict,
    default_config,
    parse_config,
    section_params,
    to_toml,
)
from workbench.core.losses import LOSS_KIND, LOSS_PARAMS, LOSSES, build_loss
from workbench.core.params import Choice
from workbench.core.samplers import SAMPLER_DEFAULTS, SAMPLERS, build_sampler
from workbench.core.sde import build_sde
from workbench.core.train import Trainer
from workbench.errors import ConfigError
from workbench.jobs.sample import sample_params


@pytest.fixture(params=sorted(DUMMIES))
def dummy(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(dotted key, name) with ``name`` registered where the key's choices come from."""
    with registered(request.param) as (name, _):
        yield request.param, name


def _declared(key: str) -> Any:
    section, _, name = key.partition(".")
    return next(p for p in section_params(None, section) if p.name == name)


def _value(cfg: Any, key: str) -> Any:
    section, _, name = key.partition(".")
    return getattr(getattr(cfg, section), name)


def test_every_closed_list_of_the_config_has_a_dummy_here() -> None:
    # a new Choice key must come from somewhere a class can be added to, or be listed here
    fixed = {"train.precision", "train.fast_path", "sample.precision", "sample.fast_path"}
    choices = {
        f"{section}.{p.name}"
        for section in ("data", "sde", "model", "loss", "train", "sample")
        for p in section_params(None, section)
        if isinstance(p.check, Choice)
    }
    assert choices - fixed == set(DUMMIES)


def test_a_registered_entry_is_a_choice_of_the_config(dummy: tuple[str, str]) -> None:
    key, name = dummy
    param = _declared(key)
    assert name in param.check.options
    cfg = default_config().with_overrides({key: name})
    assert _value(cfg, key) == name
    text = to_toml(cfg)
    assert parse_config(text) == cfg
    # the file's comment lists it among the options
    section = text.split(f"[{key.partition('.')[0]}]\n", 1)[1]
    line = next(line for line in section.splitlines() if line.startswith(f"{param.name} = "))
    assert name in line.partition("#")[2]


def test_a_removed_entry_is_refused_again() -> None:
    for key in DUMMIES:
        with registered(key) as (name, _):
            default_config().with_overrides({key: name})
        assert name not in _declared(key).check.options
        with pytest.raises(ConfigError) as info:
            default_config().with_overrides({key: name})
        assert info.value.key == key


def test_a_registered_loss_and_sampler_are_built_from_the_config() -> None:
    with (
        registered("loss.kind") as (loss, loss_cls),
        registered("sample.sampler") as (
            sampler,
            sampler_cls,
        ),
    ):
        cfg = default_config().with_overrides(
            {
                "loss.kind": loss,
                "sample.sampler": sampler,
                "sample.steps": 4,
                "train.device": "cpu",
                "data.n": 256,
                "train.batch_size": 64,
                "model.hidden": 8,
            }
        )
        trainer = Trainer(cfg)
        assert type(trainer.loss_fn) is loss_cls
        built = build_sampler(trainer.sde, lambda x, t: -x, sample_params(cfg))
        assert type(built) is sampler_cls and built.n_steps == 4


# ---------------------------------------------------------------------------------------------
# [loss]: one declaration, core's
# ---------------------------------------------------------------------------------------------
def test_the_loss_section_is_cores_declaration() -> None:
    assert LossConfig.PARAMS[0] is LOSS_KIND
    assert LossConfig.PARAMS[1:] == LOSS_PARAMS
    assert all(a is b for a, b in zip(LossConfig.PARAMS[1:], LOSS_PARAMS, strict=True))
    assert LOSS_KIND.check.options == tuple(LOSSES.names())
    # the loss built from no keys is the default config's loss
    sde = build_sde("vp")
    plain = build_loss("dsm", {}, sde)
    cfg = LossConfig()
    for p in LOSS_PARAMS:
        assert getattr(plain, p.name) == getattr(cfg, p.name), p.name


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("n_projections", 257),
        ("n_projections", 0),
        ("eps", 0.0),
        ("weighting", "sigma"),
        ("projection", "sobol"),
        ("importance_sampling", 1),
    ],
)
def test_the_config_and_the_loss_refuse_the_same_values(key: str, bad: Any) -> None:
    with pytest.raises(ConfigError) as by_config:
        config_from_dict({"loss": {"kind": "ssm", key: bad}})
    with pytest.raises(ConfigError) as by_core:
        build_loss("ssm", {key: bad}, build_sde("vp"))
    assert by_config.value.key == f"loss.{key}" and by_core.value.key == key
    assert by_config.value.message == by_core.value.message


@pytest.mark.parametrize("key", ["loss.eps", "sample.eps"])
def test_eps_is_bounded_by_the_sdes_T(key: str) -> None:
    """eps must lie in (0, T), T the SDE's: refused at T, accepted below it, whatever T is."""
    with pytest.raises(ConfigError) as info:
        default_config().with_overrides({"sde.T": 0.5, key: 0.5})
    assert info.value.key == key and "T = 0.5" in info.value.message
    # a longer diffusion allows a later eps than the old fixed bounds (0.5 and 1) did
    cfg = default_config().with_overrides({"sde.T": 2.0, "sde.beta_max": 10.0, key: 1.5})
    assert _value(cfg, key) == 1.5
    sde = build_sde("vp", dict(cfg.sde.params))
    if key == "loss.eps":
        assert build_loss("dsm", {"eps": 1.5}, sde).eps == 1.5
    else:
        built = build_sampler(sde, lambda x, t: -x, sample_params(cfg))
        assert float(built.times[-1]) == pytest.approx(1.5)


# ---------------------------------------------------------------------------------------------
# [sample]: the sampler defaults are in one place
# ---------------------------------------------------------------------------------------------
def test_the_sample_defaults_are_the_samplers() -> None:
    declared = {p.name: p.default for p in SampleConfig.PARAMS}
    for key, value in SAMPLER_DEFAULTS.items():
        assert declared[key] == value, key
    assert set(SAMPLER_DEFAULTS) <= set(declared)
    # what the config passes and what the sampler fills in build the same sampler
    sde = build_sde("vp")
    for name in SAMPLERS.names():
        params = sample_params(default_config().with_overrides({"sample.sampler": name}))
        a = build_sampler(sde, lambda x, t: -x, params)
        b = build_sampler(sde, lambda x, t: -x, {"sampler": name})
        assert torch.equal(a.times, b.times) and a.eps == b.eps and a.denoise == b.denoise
