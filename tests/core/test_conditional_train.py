"""Conditional networks: the label embedding, the null label, label dropout and a tiny run."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.config import ExperimentConfig, default_config
from workbench.core.experiment import build_data, build_model, data_section, model_section
from workbench.core.guidance import Conditioned, drop_labels, guide
from workbench.core.losses import build_loss
from workbench.core.nets import build_score_model
from workbench.core.samplers import build_sampler, sample
from workbench.core.sde import build_sde
from workbench.core.train import Trainer
from workbench.errors import ConfigError

SMALL = {"hidden": 16, "depth": 2, "embed_dim": 8}


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_label_dropout_happens_at_the_rate_asked(p):
    n, k = 200_000, 5
    y = torch.arange(n) % k
    out = drop_labels(y, p, k, torch.Generator().manual_seed(0))
    dropped = out == k
    share = float(dropped.double().mean())
    assert abs(share - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-12
    assert torch.equal(out[~dropped], y[~dropped])  # the kept labels are unchanged


@pytest.mark.parametrize("kind", ["mlp", "resmlp"])
def test_conditional_net_null_label_and_per_sample_classes(kind):
    sde = build_sde("vp", {})
    torch.manual_seed(0)
    model = build_score_model(kind, SMALL, sde, (2,), num_classes=3)
    assert model.num_classes == 3
    x, t = torch.randn(6, 2), torch.tensor(0.4)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    # no label = the null label (index num_classes)
    assert torch.equal(model(x, t), model(x, t, torch.tensor(3)))
    per_sample = model(x, t, y)
    for i in range(6):
        assert torch.allclose(per_sample[i], model(x[i : i + 1], t, int(y[i]))[0], atol=1e-6)
    # the class changes the output (the embedding is used)
    assert not torch.allclose(model(x, t, 0), model(x, t, 1))
    # an unconditional network has no label weights: old checkpoints load as they did
    plain = build_score_model(kind, SMALL, sde, (2,))
    assert plain.num_classes == 0
    assert not any("label" in key for key in plain.state_dict())
    assert {k for k in model.state_dict() if "label" in k} == {"net.label.weight"}


def test_conditional_unet():
    sde = build_sde("vp", {})
    model = build_score_model("unet", {"channels": 8}, sde, (1, 8, 8), num_classes=10)
    x = torch.randn(4, 1, 8, 8)
    out = model(x, torch.tensor(0.5), torch.tensor([0, 3, 9, 10]))
    assert out.shape == x.shape and not torch.allclose(out[0], model(x, 0.5, 1)[0])


def test_conditional_needs_labelled_data():
    with pytest.raises(ConfigError, match="needs labelled data") as info:
        default_config().with_overrides({"data.name": "moons", "model.conditional": True})
    assert info.value.key == "model.conditional"
    # files: labelled when data.labels names them
    file_keys = {"data.name": "file", "data.path": "x.npz", "model.conditional": True}
    with pytest.raises(ConfigError, match="needs labelled data"):
        default_config().with_overrides(file_keys)
    default_config().with_overrides({**file_keys, "data.labels": "y"})
    # the build refuses it too, for a config made some other way
    config = default_config().with_overrides({"data.name": "moons"})
    section = model_section(config)
    dataset = build_data(data_section(config))
    conditional = section._replace(params={**section.params, "conditional": True})
    with pytest.raises(ConfigError, match="needs labelled data"):
        build_model(conditional, build_sde("vp", {}), dataset, None)


def test_guidance_without_a_class_is_refused_by_the_config():
    with pytest.raises(ConfigError, match="needs a class") as info:
        default_config().with_overrides({"sample.guidance": 2.0})
    assert info.value.key == "sample.guidance"


def test_sliced_losses_repeat_the_bound_labels():
    sde = build_sde("vp", {})
    model = build_score_model("mlp", SMALL, sde, (2,), num_classes=3)
    x0, y = torch.randn(8, 2), torch.arange(8) % 3
    for kind in ("dsm", "ssm", "esm"):
        loss = build_loss(kind, {"n_projections": 2}, sde)
        value = loss(Conditioned(model, y), x0, generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(value)


def conditional_config(**overrides: object) -> ExperimentConfig:
    """A small class-conditional gmm1d experiment that learns its classes in 800 CPU steps."""
    base = {
        "data.name": "gmm1d",
        "data.n": 4000,
        "model.conditional": True,
        "model.hidden": 64,
        "model.depth": 2,
        "model.embed_dim": 32,
        "train.steps": 800,
        "train.batch_size": 256,
        "train.device": "cpu",
        "train.seed": 1,
        "train.warmup": 20,
        "train.checkpoint_every": 100000,
    }
    return default_config().with_overrides({**base, **overrides})


@pytest.mark.parametrize(("p", "trained_rows"), [(0.0, [0, 1, 2]), (1.0, [3])])
def test_trainer_drops_labels_as_asked(p, trained_rows):
    """p_uncond = 0: the null row of the embedding never sees a gradient; 1: only it does."""
    trainer = Trainer(
        conditional_config(**{"train.steps": 5, "train.p_uncond": p, "train.ema": 0.0})
    )
    before = trainer.model.net.label.weight.detach().clone()
    trainer.run()
    after = trainer.model.net.label.weight.detach()
    changed = [i for i in range(4) if not torch.equal(before[i], after[i])]
    assert changed == trained_rows
    # the labels are the mixture components of the very points drawn
    mix = trainer.dataset.mixture()
    x = trainer.normalizer.to_data(trainer.data.double())
    comp = mix.component_log_prob(x)
    assert (
        float(
            (comp.gather(1, trainer.labels[:, None]) > comp.mean(1, keepdim=True)).double().mean()
        )
        > 0.9
    )


def test_a_tiny_conditional_run_learns_to_separate_the_classes():
    torch.set_num_threads(1)
    trainer = Trainer(conditional_config())
    trainer.run()
    model = trainer.ema_model.eval()
    mix = trainer.dataset.mixture()
    for c in range(3):
        for w in (0.0, 2.0):
            sampler = build_sampler(
                trainer.sde, guide(model, c, w), {"sampler": "em", "steps": 100}
            )
            *_, last = sample(sampler, 1000, (1,), torch.Generator().manual_seed(c))
            x = trainer.normalizer.to_data(last.x.double())
            share = float((mix.responsibilities(x).argmax(-1) == c).double().mean())
            assert share > 0.9, (c, w, share)


def test_a_trainer_with_its_own_step_refuses_a_conditional_network():
    """The distributed trainer overrides train_step and would train the null label only."""

    class OwnStep(Trainer):
        def train_step(self):  # pragma: no cover - never reached
            return super().train_step()

    with pytest.raises(ConfigError, match="one process") as info:
        OwnStep(conditional_config(**{"train.steps": 1}))
    assert info.value.key == "model.conditional"
    OwnStep(
        conditional_config(**{"train.steps": 1, "model.conditional": False})
    )  # unconditional: fine
