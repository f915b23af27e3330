"""The CPU's fast sampling path: the MLP's layers fused by oneDNN (workbench.core.cpu_fused).

It must compute the plain network's function (to float32 round-off), be what ``auto`` runs on
the CPU, read the live weights (no stale copy), leave the caller's model alone, and step aside,
saying why, for every model or input it does not handle.
"""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from workbench.config import default_config
from workbench.core.cpu_fused import FusedMLP, fuse_for_cpu, fused_linear_available
from workbench.core.guidance import GuidedScore
from workbench.core.mixture import GaussianMixture
from workbench.core.nets import MLPNet, ScoreModel, build_score_model
from workbench.core.samplers import build_sampler, sample
from workbench.core.sde import build_sde

CPU = torch.device("cpu")

pytestmark = pytest.mark.skipif(
    fused_linear_available() is not None,
    reason=f"oneDNN's fused Linear is not usable here: {fused_linear_available()}",
)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mlp(activation: str = "silu", num_classes: int = 0, hidden: int = 64, seed: int = 0):
    sde = build_sde("vp", {})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        params = {"hidden": hidden, "depth": 3, "activation": activation}
        model = build_score_model("mlp", params, sde, (2,), None, num_classes=num_classes)
    return model.eval().requires_grad_(False)


def test_oneDNN_is_usable_with_the_torch_this_project_installs() -> None:
    # the project's torch is built with oneDNN: the fast path must not silently vanish
    assert torch.backends.mkldnn.is_available()
    assert fused_linear_available() is None


@pytest.mark.parametrize("activation", ["silu", "relu", "tanh", "gelu", "softplus", "elu"])
def test_fused_mlp_is_the_network_to_float32_round_off(activation: str) -> None:
    model = mlp(activation)
    fused = FusedMLP(model.net)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(300, 2, generator=gen) * 3
    with torch.no_grad():
        for t in (1e-3, 0.4, 1.0):
            plain = model.net(x, torch.tensor([t]))
            got = fused(x, torch.tensor([t]))
            assert (got - plain).abs().max() <= 1e-5 * plain.abs().max(), (activation, t)


def test_fused_mlp_runs_the_plain_forward_where_it_does_not_apply() -> None:
    model = mlp()
    fused = FusedMLP(model.net)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.3])
    calls: list[int] = []
    hook = model.net.register_forward_hook(lambda *_: calls.append(1))
    try:
        with torch.no_grad():
            fused(x, t)
            assert calls == []  # the fused forward does not call the network's own
            # float64, a time per sample: the network itself, bit for bit
            net64 = MLPNet(2, hidden=16, embed_dim=8).double()
            x64 = x.double()
            assert torch.equal(FusedMLP(net64)(x64, t.double()), net64(x64, t.double()))
            each = torch.full((50,), 0.3)
            assert torch.equal(fused(x, each), model.net(x, each))
            assert len(calls) == 2  # per-sample time: the plain forward, once (plus the check)
        # with autograd (training): the plain forward, with its gradient
        xg = x.clone().requires_grad_(True)
        out = fused(xg, t)
        assert out.requires_grad and len(calls) == 3
    finally:
        hook.remove()


def test_fused_copy_reads_the_live_weights_and_leaves_the_model_alone() -> None:
    model = mlp()
    fused, why = fuse_for_cpu(model)
    assert why == "" and fused is not model
    assert isinstance(fused.net, FusedMLP) and type(model.net) is MLPNet  # the caller's is intact
    assert dict(fused.named_parameters()).keys() != set()  # the same parameters, under .net.net
    assert all(a is b for a, b in zip(model.parameters(), fused.net.net.parameters(), strict=True))
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(3))
    t = torch.tensor(0.5)
    other = mlp(seed=5)
    params = list(model.parameters())
    # every way training or loading changes weights in place: the fused copy follows each
    # (its oneDNN weight layouts are remade, not kept from the first call)
    changes = [
        lambda: model.net.hidden[0].weight.mul_(0.5),
        lambda: torch._foreach_lerp_(params, list(other.parameters()), 0.3),  # the EMA's update
        lambda: model.load_state_dict(other.state_dict()),
        lambda: setattr(model.net.hidden[1].weight, "data", torch.randn(64, 64) / 8),
    ]
    with torch.no_grad():
        before = fused(x, t)
        for change in changes:
            change()
            after = fused(x, t)
            assert not torch.allclose(before, after)
            assert (after - model(x, t)).abs().max() <= 1e-5 * after.abs().max()
            before = after


def _final(sampler, fast_path: str, n: int = 500, seed: int = 7) -> torch.Tensor:
    with torch.no_grad():
        rows = list(
            sample(sampler, n, (2,), torch.Generator().manual_seed(seed), fast_path=fast_path)
        )
    return rows[-1].x


@pytest.mark.parametrize("name", ["em", "pc", "ode"])
def test_auto_on_the_cpu_gives_the_plain_samples(name: str) -> None:
    sde = build_sde("vp", {})
    params = {"sampler": name, "steps": 40, "integrator": "heun"}  # fixed steps for the ODE
    sampler = build_sampler(sde, mlp(hidden=128), params)
    plain, fast = _final(sampler, "off"), _final(sampler, "auto")
    # same seed, same noise; the network differs at round-off, and 40 steps do not amplify it
    assert (plain - fast).abs().max() <= 1e-4 * plain.abs().max()
    assert not torch.equal(plain, fast)  # the fused path did run


def test_auto_is_the_default_and_runs_the_fused_network() -> None:
    # structural: the default config's sample.fast_path is auto, and under auto on the CPU the
    # MLP's own forward is never called (its weights are read by the fused one instead)
    cfg = default_config()
    assert cfg.sample.fast_path == "auto"
    model = mlp()
    sampler = build_sampler(build_sde("vp", {}), model, {"sampler": "em", "steps": 10})
    calls: list[int] = []
    hook = model.net.register_forward_hook(lambda *_: calls.append(1))
    try:
        _final(sampler, "off", n=64)
        assert len(calls) == 11  # 10 steps and the denoising step
        calls.clear()
        _final(sampler, cfg.sample.fast_path, n=64)
        assert calls == []
        assert sampler.score_model is model  # the sampler keeps the caller's model
    finally:
        hook.remove()


def test_guided_conditional_sampling_is_fused_through_the_wrapper() -> None:
    model = mlp(num_classes=3, hidden=64)
    guided = GuidedScore(model, class_label=1, guidance=2.0)
    fused, why = fuse_for_cpu(guided)
    assert why == "" and isinstance(fused.model.net, FusedMLP)
    assert type(guided.model.net) is MLPNet and fused._label is guided._label
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = guided(x, torch.tensor(0.2)), fused(x, torch.tensor(0.2))
    assert (want - got).abs().max() <= 1e-5 * want.abs().max()
    sampler = build_sampler(build_sde("vp", {}), guided, {"sampler": "em", "steps": 30})
    plain, fast = _final(sampler, "off"), _final(sampler, "auto")
    assert (plain - fast).abs().max() <= 1e-4 * plain.abs().max()
    # a class per sample is not a sampling step's: the plain forward, exactly
    y = torch.arange(100) % 3
    with torch.no_grad():
        assert torch.equal(fused.model(x, torch.tensor(0.2), y), model(x, torch.tensor(0.2), y))


class _MyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.cat([x, t.reshape(-1, 1).expand(x.shape[0], 1)], 1))


class _MyMLP(MLPNet):
    def forward(self, x, t, y=None):  # a subclass's own forward is not the one fused
        return super().forward(x, t, y) * 2


def _others() -> list[tuple[str, nn.Module]]:
    sde = build_sde("vp", {})
    mixture = GaussianMixture.isotropic([[-1.0, 0.0], [1.0, 0.0]], 0.3)
    torch.manual_seed(0)
    return [
        ("custom", ScoreModel(_MyNet(), sde, "eps")),
        ("subclass", ScoreModel(_MyMLP(2, hidden=16, embed_dim=8), sde, "eps")),
        ("resmlp", build_score_model("resmlp", {"hidden": 16}, sde, (2,))),
        ("analytic", build_score_model("analytic", {}, sde, (2,), mixture)),
    ]


@pytest.mark.parametrize("case", range(4))
def test_models_it_cannot_fuse_run_plainly_and_say_why(case: int, caplog) -> None:
    name, model = _others()[case]
    model = model.eval().requires_grad_(False)
    with caplog.at_level(logging.INFO, logger="workbench.core.cpu_fused"):
        same, why = fuse_for_cpu(model)
    assert same is model and "holds no 'mlp' network" in why, name
    assert why in caplog.text
    sampler = build_sampler(build_sde("vp", {}), model, {"sampler": "em", "steps": 8})
    assert torch.equal(_final(sampler, "auto", n=50), _final(sampler, "off", n=50))


def test_a_plain_function_is_not_fused() -> None:
    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -x

    same, why = fuse_for_cpu(score)
    assert same is score and "plain function" in why


def test_per_particle_first_layer_is_inp_plus_time_with_their_gradients() -> None:
    # training's first layer is one addmm on [x, emb(t)] with the two weights side by side:
    # the function and the parameter gradients of inp(x) + time(emb(t)), written out
    torch.manual_seed(0)
    net = MLPNet(2, hidden=32, embed_dim=8)
    gen = torch.Generator().manual_seed(1)
    x, t = torch.randn(200, 2, generator=gen), torch.rand(200, generator=gen)

    def written_out() -> torch.Tensor:
        h = net.act(net.inp(x) + net.time(net.embed(t)))
        for layer in net.hidden:
            h = net.act(layer(h))
        return net.out(h)

    grads = []
    for fn in (lambda: net(x, t), written_out):
        net.zero_grad()
        out = fn()
        (out * out).sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in net.parameters()]))
    (a, ga), (b, gb) = grads
    assert (a - b).abs().max() <= 1e-5 * b.abs().max()
    for p, q in zip(ga, gb, strict=True):
        assert (p - q).abs().max() <= 1e-4 * q.abs().max()


def test_the_sampling_job_runs_the_fused_network_by_default(tmp_path) -> None:
    # the app's and the CLI's sampling (a real HDF5 file from the default config): its MLP's
    # own forward is never called, and the file's samples are the plain path's to round-off
    import h5py

    from workbench.jobs.sample import sample_to_file

    cfg = default_config().with_overrides(
        {"sample.n": 64, "sample.steps": 12, "sample.record_every": 0}
    )
    model = build_score_model("mlp", {"hidden": 32}, build_sde("vp", {}), (2,))
    model = model.eval().requires_grad_(False)
    calls: list[int] = []
    hook = model.net.register_forward_hook(lambda *_: calls.append(1))
    try:
        sample_to_file(cfg, model, tmp_path / "auto.h5", device="cpu")
        # one call only: chunk_size 0 measures the plain network's memory per sample first
        assert cfg.sample.chunk_size == 0 and calls == [1]
        off = cfg.with_overrides({"sample.fast_path": "off"})
        sample_to_file(off, model, tmp_path / "off.h5", device="cpu")
        assert len(calls) == 1 + 1 + 13  # the probe, 12 steps and the denoising step
    finally:
        hook.remove()
    with h5py.File(tmp_path / "auto.h5", "r") as a, h5py.File(tmp_path / "off.h5", "r") as b:
        fast, plain = torch.from_numpy(a["samples"][()]), torch.from_numpy(b["samples"][()])
    assert (fast - plain).abs().max() <= 1e-4 * plain.abs().max()


BF16 = fused_linear_available(torch.bfloat16)
needs_bf16 = pytest.mark.skipif(BF16 is not None, reason=f"no fused bf16 here: {BF16}")


@needs_bf16
@pytest.mark.parametrize("activation", ["silu", "gelu", "softplus"])
def test_fused_bf16_has_autocasts_numerics(activation: str) -> None:
    # bf16 inputs and weights, fp32 accumulation: within bf16's round-off of autocast's
    # forward (each layer rounds to 2^-8 relative), far from fp32's, output in float32
    model = mlp(activation, hidden=256)
    fused = FusedMLP(model.net, "bf16")
    x = torch.randn(500, 2, generator=torch.Generator().manual_seed(2)) * 2
    t = torch.tensor([0.3])
    with torch.no_grad():
        exact = model.net(x, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            cast = model.net(x, t).float()
        got = fused(x, t)
    assert got.dtype == torch.float32 and got.shape == exact.shape
    scale = exact.abs().max()
    assert (got - exact).abs().max() <= 3e-2 * scale
    assert (got - cast).abs().max() <= 3e-2 * scale
    assert (got - exact).abs().max() >= 1e-4 * scale  # it did run in bf16


@needs_bf16
def test_bf16_sampling_on_the_cpu_runs_the_fused_network_and_stays_close() -> None:
    model = mlp(hidden=128)
    sampler = build_sampler(build_sde("vp", {}), model, {"sampler": "em", "steps": 30})
    calls: list[int] = []
    hook = model.net.register_forward_hook(lambda *_: calls.append(1))

    def final(precision: str) -> torch.Tensor:
        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():
            rows = list(sample(sampler, 400, (2,), gen, fast_path="auto", precision=precision))
        return rows[-1].x

    try:
        fp32, bf16 = final("fp32"), final("bf16")
        assert calls == []  # both ran the fused layers, never the module's own forward
    finally:
        hook.remove()
    assert bf16.dtype == torch.float32
    # same seed, same noise: the paths differ by the network's bf16 error, carried 30 steps
    assert (bf16 - fp32).abs().max() <= 5e-2 * fp32.abs().max()
    assert not torch.equal(bf16, fp32)


def test_bf16_models_it_cannot_fuse_run_under_autocast() -> None:
    # a network the fused path does not know still gets bf16, through autocast, not silently
    # fp32: its Linear layers see bfloat16 inputs
    model = build_score_model("resmlp", {"hidden": 32, "depth": 2}, build_sde("vp", {}), (2,))
    model = model.eval().requires_grad_(False)
    seen: list[torch.dtype] = []
    hook = model.net.out.register_forward_hook(lambda _m, args, _o: seen.append(args[0].dtype))
    sampler = build_sampler(build_sde("vp", {}), model, {"sampler": "em", "steps": 3})
    try:
        with torch.no_grad():
            rows = list(sample(sampler, 50, (2,), fast_path="auto", precision="bf16"))
    finally:
        hook.remove()
    assert rows[-1].x.dtype == torch.float32
    assert seen and all(d == torch.bfloat16 for d in seen), seen
