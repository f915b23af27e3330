import itertools
import math

import pytest
import torch

from workbench.config import ExperimentConfig, default_config
from workbench.core.analytic import AnalyticMarginal
from workbench.core.train import Progress, Trainer, learning_rate, resolve_device
from workbench.errors import ConfigError

F64 = torch.float64


def small_config(**overrides: object) -> ExperimentConfig:
    base = {
        "train.device": "cpu",
        "train.batch_size": 256,
        "train.steps": 40,
        "train.log_every": 10,
        "model.hidden": 64,
        "data.n": 4096,
    }
    base.update(overrides)
    return default_config().with_overrides(base)


def score_error(trainer: Trainer, model: torch.nn.Module, n: int = 20_000) -> float:
    """E over t ~ U[0.05, 1], x ~ p_t of s(t)^2 |s_theta(x, t) - grad log p_t(x)|^2."""
    gen = torch.Generator().manual_seed(123)
    mixture = trainer.normalizer.to_model_mixture(trainer.dataset.mixture())
    truth = AnalyticMarginal(mixture, trainer.sde)
    t = 0.05 + 0.95 * torch.rand(n, generator=gen, dtype=F64)
    m, s = trainer.sde.marginal_coeffs(t)
    x0 = mixture.sample(n, gen, dtype=F64)
    x = m[:, None] * x0 + s[:, None] * torch.randn(n, mixture.dim, generator=gen, dtype=F64)
    with torch.no_grad():
        est = model(x.float(), t.float()).double()
    return float((s[:, None] ** 2 * (est - truth.score(x, t)) ** 2).sum(-1).mean())


@pytest.mark.parametrize(
    ("kind", "steps"), [("dsm", 1000), ("ssm", 800), ("ssm_vr", 800), ("esm", 600)]
)
def test_each_loss_learns_the_analytic_score(kind: str, steps: int) -> None:
    """Weighted MSE to the true score must fall below 10% of its value at initialisation."""
    cfg = small_config(
        **{"loss.kind": kind, "train.steps": steps, "train.batch_size": 512, "model.hidden": 128}
    )
    trainer = Trainer(cfg)
    before = score_error(trainer, trainer.ema_model)
    result = trainer.run()
    assert result.status == "done" and trainer.step == steps
    after = score_error(trainer, trainer.ema_model)
    assert after < 0.1 * before, (kind, before, after)


def test_fixed_seed_gives_the_same_losses() -> None:
    def losses(seed: int) -> list[float]:
        out: list[Progress] = []
        Trainer(small_config(**{"train.seed": seed})).run(on_progress=out.append)
        return [p.loss for p in out]

    first, second = losses(3), losses(3)
    assert first == second and len(first) == 4
    assert losses(4) != first


def test_progress_reports() -> None:
    seen: list[Progress] = []
    Trainer(small_config()).run(on_progress=seen.append)
    assert [p.step for p in seen] == [10, 20, 30, 40]
    assert all(p.total == 40 and math.isfinite(p.loss) and p.steps_per_s > 0 for p in seen)
    assert all(b.wall_time >= a.wall_time for a, b in itertools.pairwise(seen))


def test_cancel_returns_within_one_step() -> None:
    trainer = Trainer(small_config(**{"train.steps": 1000}))
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] >= 7

    result = trainer.run(cancel=cancel)
    assert result.status == "cancelled" and result.step == 7 == trainer.step


def test_non_finite_loss_stops_before_the_bad_update() -> None:
    trainer = Trainer(small_config(**{"train.steps": 10}))
    trainer.run()
    good = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.data[:] = float("nan")  # data gone bad mid-run
    result = trainer.run(steps=20)
    assert result.status == "diverged"
    assert "step 11" in result.message and "nan" in result.message.lower()
    assert trainer.step == 10
    for before, now in zip(good, trainer.model.parameters(), strict=True):
        assert torch.equal(before, now)


def test_state_dict_round_trip_resumes_exactly() -> None:
    whole: list[Progress] = []
    Trainer(small_config()).run(on_progress=whole.append)

    first = Trainer(small_config())
    part: list[Progress] = []
    first.run(steps=20, on_progress=part.append)
    state = first.state_dict()
    second = Trainer(small_config())
    second.load_state_dict(state)
    assert second.step == 20
    second.run(on_progress=part.append)
    assert [p.loss for p in part] == [p.loss for p in whole]


def test_learning_rate_schedule() -> None:
    assert learning_rate(0, 1.0, 10, 100, "constant") == pytest.approx(0.1)
    assert learning_rate(9, 1.0, 10, 100, "constant") == pytest.approx(1.0)
    assert learning_rate(50, 1.0, 0, 100, "cosine") == pytest.approx(0.5)
    assert learning_rate(100, 1.0, 0, 100, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(25, 2.0, 0, 100, "linear") == pytest.approx(1.5)


def test_ema_tracks_the_weights() -> None:
    trainer = Trainer(small_config(**{"train.steps": 200, "train.ema": 0.9}))
    trainer.run()
    for ema, p in zip(trainer.ema_model.parameters(), trainer.model.parameters(), strict=True):
        assert not ema.requires_grad
        # after 200 steps at decay 0.9 the average sits close to, but not at, the weights
        assert float((ema - p).detach().abs().max()) < 0.05 * float(p.detach().abs().max()) + 1e-3
    assert any(
        not torch.equal(e, p)
        for e, p in zip(trainer.ema_model.parameters(), trainer.model.parameters(), strict=True)
    )


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"model.kind": "unet"}, "kind"),
        ({"model.kind": "analytic"}, "model.kind"),
    ],
)
def test_configs_that_cannot_train(overrides: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        Trainer(small_config(**overrides))
    assert info.value.key.endswith(key)


def test_device_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda")


# --------------------------------------------------------------------------------------------
# the device-side guard and the fast paths
# --------------------------------------------------------------------------------------------
class NaNOnce:
    """The trainer's loss, but not a number on one call (a one-off bad batch)."""

    def __init__(self, loss_fn, bad_call: int) -> None:
        self.loss_fn, self.bad_call, self.calls = loss_fn, bad_call, 0

    def __call__(self, model, x0, generator=None):
        self.calls += 1
        loss = self.loss_fn(model, x0, generator=generator)
        return loss * float("nan") if self.calls == self.bad_call else loss


def test_a_bad_step_between_read_backs_leaves_the_state_of_the_step_before() -> None:
    """Step 14 is bad, steps 15-20 are fine again, the host reads back at step 20: the
    result names step 14 and every weight, moment, EMA and step count is that of step 13."""
    cfg = small_config(**{"train.steps": 20, "train.log_every": 10})
    trainer = Trainer(cfg)
    trainer.loss_fn = NaNOnce(trainer.loss_fn, bad_call=14)
    result = trainer.run()
    assert result.status == "diverged" and "step 14" in result.message
    assert trainer.step == 13 == result.step
    reference = Trainer(cfg)
    assert reference.run(steps=13).status == "done"
    pairs = [
        (trainer.model.parameters(), reference.model.parameters()),
        (trainer.ema_model.parameters(), reference.ema_model.parameters()),
    ]
    for ours, theirs in pairs:
        for a, b in zip(ours, theirs, strict=True):
            assert torch.equal(a, b)
    for p, q in zip(trainer.trainable, reference.trainable, strict=True):
        mine, ref = trainer.optimizer.state[p], reference.optimizer.state[q]
        assert float(mine["step"]) == float(ref["step"]) == 13
        assert torch.equal(mine["exp_avg"], ref["exp_avg"])
        assert torch.equal(mine["exp_avg_sq"], ref["exp_avg_sq"])


def test_the_guarded_update_is_the_plain_update() -> None:
    """With every step finite the device-side gate changes nothing: the run equals a textbook
    loop of the Trainer's own pieces (fused Adam without found_inf, EMA by lerp)."""
    cfg = small_config(**{"train.steps": 6})
    guarded = Trainer(cfg)
    guarded.run()
    plain = Trainer(cfg)
    for _ in range(6):
        plain._set_lr()
        plain.train_step()
        plain.optimizer.step()
        plain.update_ema()
        plain.step += 1
    ours = guarded.ema_params + guarded.trainable
    theirs = plain.ema_params + plain.trainable
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


def test_fast_path_auto_is_plain_on_the_cpu_and_cuda_graph_needs_cuda() -> None:
    assert Trainer(small_config()).fast_path == "off"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="needs a CUDA device") as err:
            Trainer(small_config(**{"train.fast_path": "cuda_graph"}))
        assert err.value.key == "train.fast_path"


@pytest.mark.slow
def test_compiled_training_gives_the_plain_losses() -> None:
    from workbench.core.fast import compile_unavailable_reason

    reason = compile_unavailable_reason(torch.device("cpu"))
    if reason is not None:
        pytest.skip(reason)
    cfg = small_config(
        **{"train.steps": 6, "train.log_every": 2, "train.batch_size": 64, "model.hidden": 16}
    )
    plain: list[Progress] = []
    compiled: list[Progress] = []
    Trainer(cfg).run(on_progress=plain.append)
    Trainer(cfg.with_overrides({"train.fast_path": "compile"})).run(on_progress=compiled.append)
    assert [p.step for p in compiled] == [2, 4, 6]
    for a, b in zip(plain, compiled, strict=True):
        assert b.loss == pytest.approx(a.loss, rel=1e-5)


@pytest.mark.gpu
def test_cuda_graph_training_matches_the_eager_step() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the whole-step CUDA graph is not tested here")
    cfg = small_config(**{"train.device": "cuda", "train.steps": 30, "train.log_every": 5})
    eager: list[Progress] = []
    graphed: list[Progress] = []
    Trainer(cfg.with_overrides({"train.fast_path": "off"})).run(on_progress=eager.append)
    t = Trainer(cfg.with_overrides({"train.fast_path": "cuda_graph"}))
    t.run(on_progress=graphed.append)
    assert t._graph is not None and t._graph.graph is not None
    for a, b in zip(eager, graphed, strict=True):
        assert b.loss == pytest.approx(a.loss, rel=1e-3)


def test_a_fast_path_fallback_is_told_in_the_result() -> None:
    # the note is set when an `auto` CUDA-graph capture fails; what the user sees is the result
    trainer = Trainer(small_config(**{"train.steps": 2}))
    assert trainer.run().message == "trained to step 2"
    trainer.fast_path_note = "CUDA graph capture failed (test); plain steps"
    result = trainer.run(steps=4)
    assert result.message == "trained to step 4 (CUDA graph capture failed (test); plain steps)"
