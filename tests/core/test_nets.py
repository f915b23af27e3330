import math
import subprocess
import sys

import pytest
import torch
from torch import Tensor, nn

from workbench.core.analytic import AnalyticMarginal
from workbench.core.mixture import GaussianMixture
from workbench.core.nets import (
    ACTIVATIONS,
    NETS,
    PARAMETERISATIONS,
    TIME_EMBEDDINGS,
    AnalyticScoreModel,
    MLPNet,
    ScoreModel,
    UNet,
    apply_activation,
    as_batch_time,
    build_score_model,
    count_parameters,
)
from workbench.core.sde import SDE, build_sde
from workbench.errors import ConfigError, WorkbenchError

F64 = torch.float64
SMALL = {"hidden": 16, "depth": 2, "embed_dim": 8, "channels": 8}

VECTOR_SHAPES = [(2,), (1,), (5,)]
IMAGE_SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]
CASES = [(kind, shape) for kind in ("mlp", "resmlp") for shape in VECTOR_SHAPES + IMAGE_SHAPES]
CASES += [("unet", shape) for shape in [*IMAGE_SHAPES, (1, 7, 7), (2, 5, 9)]]


def make_net(kind: str, shape: tuple[int, ...], **overrides) -> nn.Module:
    torch.manual_seed(0)
    params = {**SMALL, **overrides}
    return NETS.get(kind).from_params(shape, **params)


def inputs(shape: tuple[int, ...], n: int = 3, dtype=torch.float32) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, *shape, generator=gen, dtype=dtype)
    t = torch.rand(n, generator=gen, dtype=dtype) * 0.98 + 0.01
    return x, t


class CubicSDE(SDE):
    """dX = -X^3 dt + dW: not linear, so it has no Gaussian transition kernel."""

    def drift(self, x, t):
        return -(x**3)

    def diffusion(self, t):
        return torch.ones_like(torch.as_tensor(t))

    def prior_sample(self, shape, generator=None, **kw):
        return torch.randn(shape, generator=generator)

    def prior_logp(self, z):
        return -0.5 * z.reshape(z.shape[0], -1).pow(2).sum(-1)


def mixture(d: int, seed: int = 0) -> GaussianMixture:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(3, d, d, generator=gen, dtype=F64)
    covs = 0.3 * a @ a.transpose(-1, -2) / d + 0.05 * torch.eye(d, dtype=F64)
    means = 1.5 * torch.randn(3, d, generator=gen, dtype=F64)
    return GaussianMixture.full(means, covs, torch.tensor([0.2, 0.5, 0.3], dtype=F64))


# --------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "shape"), CASES)
def test_output_shape_and_time_per_sample(kind: str, shape: tuple[int, ...]) -> None:
    net = make_net(kind, shape)
    x, t = inputs(shape, n=2)
    out = net(x, t)
    assert out.shape == x.shape
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # each row sees its own time: the batch equals the rows evaluated one by one
    for i in range(x.shape[0]):
        torch.testing.assert_close(out[i : i + 1], net(x[i : i + 1], t[i]))
    # a scalar time (number or 0-d tensor) is the same time for every row
    by_number = net(x, 0.3)
    torch.testing.assert_close(by_number, net(x, torch.tensor(0.3)))
    torch.testing.assert_close(by_number, net(x, torch.full((x.shape[0],), 0.3)))
    # and time matters
    assert not torch.allclose(by_number, net(x, 0.9))


@pytest.mark.parametrize("kind", ["mlp", "resmlp", "unet"])
@pytest.mark.parametrize("embedding", ["fourier", "sinusoidal"])
def test_float64_works_and_matches_float32(kind: str, embedding: str) -> None:
    shape = (1, 8, 8) if kind == "unet" else (2,)
    net = make_net(kind, shape, time_embedding=embedding)
    x, t = inputs(shape)
    out32 = net(x, t)
    net = net.double()
    out64 = net(x.double(), t.double())
    assert out64.dtype == F64
    torch.testing.assert_close(out64.float(), out32, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("kind", "shape"), [("mlp", (2,)), ("resmlp", (3,)), ("unet", (1, 7, 7))])
def test_gradient_reaches_every_parameter(kind: str, shape: tuple[int, ...]) -> None:
    net = make_net(kind, shape)
    x, t = inputs(shape, n=4)
    net(x, t).pow(2).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", ["mlp", "resmlp", "unet"])
def test_fourier_frequencies_are_a_saved_buffer(kind: str) -> None:
    shape = (1, 8, 8) if kind == "unet" else (2,)
    net = make_net(kind, shape, fourier_scale=3.0)
    assert "embed.W" in net.state_dict()
    assert "embed.W" not in dict(net.named_parameters())
    # a net built under another seed draws other frequencies; loading the state dict restores them
    torch.manual_seed(123)
    other = NETS.get(kind).from_params(shape, **SMALL, fourier_scale=3.0)
    x, t = inputs(shape)
    assert not torch.equal(other.embed.W, net.embed.W)
    other.load_state_dict(net.state_dict())
    torch.testing.assert_close(other(x, t), net(x, t))


def test_fourier_embedding_formula_and_scale() -> None:
    torch.manual_seed(0)
    emb = TIME_EMBEDDINGS.get("fourier")(4096, T=2.0, fourier_scale=5.0)
    assert emb.W.shape == (2048,)
    assert abs(emb.W.std().item() - 5.0) < 5.0 * 4 / math.sqrt(2 * 2048)
    t = torch.tensor([0.0, 0.5, 2.0], dtype=F64)
    got = emb.double()(t)
    arg = 2 * math.pi * (t / 2.0)[:, None] * emb.W.double()[None, :]
    torch.testing.assert_close(got, torch.cat([torch.sin(arg), torch.cos(arg)], -1))


@pytest.mark.parametrize("name", ["fourier", "sinusoidal"])
@pytest.mark.parametrize("embed_dim", [2, 7, 16])
def test_embeddings_are_scale_free_in_T(name: str, embed_dim: int) -> None:
    torch.manual_seed(0)
    unit = TIME_EMBEDDINGS.get(name)(embed_dim, T=1.0)
    torch.manual_seed(0)
    long = TIME_EMBEDDINGS.get(name)(embed_dim, T=10.0)
    t = torch.tensor([0.0, 0.25, 1.0])
    a, b = unit(t), long(10 * t)
    assert a.shape == (3, embed_dim)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a[1], a[2])


def test_sinusoidal_embedding_values() -> None:
    emb = TIME_EMBEDDINGS.get("sinusoidal")(8, T=1.0)
    got = emb(torch.tensor([0.0, 0.001], dtype=F64))
    torch.testing.assert_close(got[0], torch.tensor([0.0] * 4 + [1.0] * 4, dtype=F64))
    # p = 1000 t / T = 1 at t = 0.001; the first frequency is 1, the last 1/10000
    freqs = 10000.0 ** (-torch.arange(4, dtype=F64) / 3)
    torch.testing.assert_close(got[1], torch.cat([torch.sin(freqs), torch.cos(freqs)]))
    assert list(emb.state_dict()) == []


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_every_activation_builds(activation: str) -> None:
    net = make_net("mlp", (2,), activation=activation)
    assert isinstance(net.act, ACTIVATIONS[activation])
    x, t = inputs((2,))
    assert net(x, t).shape == x.shape


def test_mlp_layout() -> None:
    net = MLPNet.from_params((2,), hidden=256, depth=3)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    # input, time, two more hidden, output: depth = 3 hidden layers of width 256
    assert [(m.in_features, m.out_features) for m in linears] == [
        (2, 256),
        (128, 256),
        (256, 256),
        (256, 256),
        (256, 2),
    ]


def test_default_mlp_parameter_count() -> None:
    model = build_score_model("mlp", {}, build_sde("vp"), (2,))
    d, h, e = 2, 256, 32  # the default time embedding is 32 wide

    def linear(i: int, o: int) -> int:
        return i * o + o

    by_hand = linear(d, h) + linear(e, h) + 2 * linear(h, h) + linear(h, d)
    assert by_hand == 141314
    assert count_parameters(model) == by_hand
    # frozen parameters do not count
    model.net.out.weight.requires_grad_(False)
    assert count_parameters(model) == by_hand - h * d


@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_unet_is_small(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    net = UNet.from_params(shape, channels=32)
    assert 100_000 < count_parameters(net) < 1_000_000


# --------------------------------------------------------------------------------------------
# output parameterisations
# --------------------------------------------------------------------------------------------
def vp_coeffs(n: int) -> tuple[Tensor, Tensor]:
    t = torch.tensor([0.01, 0.1, 0.3, 0.7, 1.0], dtype=F64).repeat(n // 5 + 1)[:n]
    return build_sde("vp").marginal_coeffs(t)


@pytest.mark.parametrize("output", ["score", "eps", "x0"])
@pytest.mark.parametrize("shape", [(2,), (1, 4, 4)])
def test_from_score_inverts_to_score(output: str, shape: tuple[int, ...]) -> None:
    p = PARAMETERISATIONS.get(output)
    gen = torch.Generator().manual_seed(2)
    out = torch.randn(10, *shape, generator=gen, dtype=F64)
    x = torch.randn(10, *shape, generator=gen, dtype=F64)
    m, s = vp_coeffs(10)
    back = p.from_score(p.to_score(out, x, m, s), x, m, s)
    torch.testing.assert_close(back, out, rtol=1e-9, atol=1e-9)
    # scalar coefficients work as well
    back = p.from_score(p.to_score(out, x, m[3], s[3]), x, float(m[3]), float(s[3]))
    torch.testing.assert_close(back, out, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("output", ["score", "eps", "x0"])
def test_sigma_score_is_s_times_score(output: str) -> None:
    p = PARAMETERISATIONS.get(output)
    gen = torch.Generator().manual_seed(3)
    out = torch.randn(10, 3, generator=gen, dtype=F64)
    x = torch.randn(10, 3, generator=gen, dtype=F64)
    m, s = vp_coeffs(10)
    want = s[:, None] * p.to_score(out, x, m, s)
    torch.testing.assert_close(p.to_sigma_score(out, x, m, s), want, rtol=1e-12, atol=1e-12)


def test_eps_and_x0_describe_the_same_score() -> None:
    eps_p, x0_p, score_p = (PARAMETERISATIONS.get(k) for k in ("eps", "x0", "score"))
    gen = torch.Generator().manual_seed(4)
    eps = torch.randn(10, 2, generator=gen, dtype=F64)
    x = torch.randn(10, 2, generator=gen, dtype=F64)
    m, s = vp_coeffs(10)
    x0 = (x - s[:, None] * eps) / m[:, None]
    score = eps_p.to_score(eps, x, m, s)
    torch.testing.assert_close(score, -eps / s[:, None])
    torch.testing.assert_close(x0_p.to_score(x0, x, m, s), score, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(score_p.to_score(score, x, m, s), score)
    torch.testing.assert_close(eps_p.from_score(score, x, m, s), eps, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(x0_p.from_score(score, x, m, s), x0, rtol=1e-9, atol=1e-9)


def test_tweedie_on_a_gaussian() -> None:
    # x0 ~ N(mu, 1), x = m x0 + s z: E[x0 | x] = mu + m (x - m mu) / (m^2 + s^2)
    sde = build_sde("vp")
    mu = 0.7
    truth = AnalyticMarginal(GaussianMixture.isotropic([[mu]], 1.0), sde)
    x = torch.linspace(-2, 2, 9, dtype=F64)[:, None]
    t = torch.full((9,), 0.4, dtype=F64)
    m, s = sde.marginal_coeffs(t)
    posterior_mean = mu + m[:, None] * (x - m[:, None] * mu) / (m * m + s * s)[:, None]
    x0 = PARAMETERISATIONS.get("x0").from_score(truth.score(x, t), x, m, s)
    torch.testing.assert_close(x0, posterior_mean)


class ToX0(nn.Module):
    """Turns an eps-predicting net into the x0-predicting one: x0 = (x - s eps) / m."""

    def __init__(self, eps_net: nn.Module, sde) -> None:
        super().__init__()
        self.eps_net, self.sde = eps_net, sde

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        m, s = self.sde.marginal_coeffs(t)
        return (x - s[:, None] * self.eps_net(x, t)) / m[:, None]


@pytest.mark.parametrize("kind", ["vp", "subvp", "ve", "cosine"])
def test_score_models_with_eps_and_x0_outputs_agree(kind: str) -> None:
    sde = build_sde(kind)
    net = make_net("mlp", (2,)).double()
    eps_model = ScoreModel(net, sde, "eps")
    x0_model = ScoreModel(ToX0(net, sde), sde, "x0")
    x, t = inputs((2,), n=8, dtype=F64)
    torch.testing.assert_close(x0_model(x, t), eps_model(x, t), rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(
        x0_model.sigma_score(x, t), eps_model.sigma_score(x, t), rtol=1e-8, atol=1e-8
    )
    torch.testing.assert_close(eps_model.sigma_score(x, t), -net(x, t))


@pytest.mark.parametrize("output", ["score", "eps", "x0"])
def test_score_model_interface(output: str) -> None:
    sde = build_sde("vp")
    model = build_score_model("mlp", {**SMALL, "output": output}, sde, (1, 2, 2))
    assert isinstance(model, ScoreModel)
    assert model.output == output
    model = model.double()
    x, t = inputs((1, 2, 2), n=5, dtype=F64)
    m, s = sde.marginal_coeffs(t)
    raw = model.raw(x, t)
    want = PARAMETERISATIONS.get(output).to_score(raw, x, m, s)
    torch.testing.assert_close(model(x, t), want)
    torch.testing.assert_close(model.score(x, t), want)
    torch.testing.assert_close(model.sigma_score(x, t), s[:, None, None, None] * want)
    # t as a number, a 0-d tensor, a (batch,) tensor
    a = model(x, 0.25)
    torch.testing.assert_close(a, model(x, torch.tensor(0.25)))
    torch.testing.assert_close(a, model(x, torch.full((5,), 0.25, dtype=F64)))
    assert model(x.float().to(F64), 0.25).dtype == F64


def test_as_batch_time() -> None:
    x = torch.zeros(4, 2, dtype=F64)
    for t in (0.5, torch.tensor(0.5), torch.full((4,), 0.5, dtype=torch.float32)):
        got = as_batch_time(t, x)
        assert got.shape == (4,)
        assert got.dtype == F64
        assert torch.all(got == 0.5)


def test_score_output_works_with_a_non_linear_sde() -> None:
    net = make_net("mlp", (2,))
    model = ScoreModel(net, CubicSDE(), "score")
    x, t = inputs((2,))
    torch.testing.assert_close(model(x, t), net(x, t))
    with pytest.raises(WorkbenchError, match="linear"):
        model.sigma_score(x, t)


@pytest.mark.parametrize(("kind", "shape"), [("mlp", (2,)), ("resmlp", (2,)), ("unet", (1, 7, 7))])
def test_score_model_traces_as_one_graph(kind: str, shape: tuple[int, ...]) -> None:
    # fullgraph=True fails on any graph break (.item(), data-dependent branches, host syncs);
    # the "eager" backend checks the tracing without paying for code generation
    torch._dynamo.reset()
    model = build_score_model(kind, {**SMALL, "output": "x0"}, build_sde("vp"), shape)
    x, t = inputs(shape)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x, t), model(x, t))
    sigma = torch.compile(model.sigma_score, fullgraph=True, backend="eager")
    torch.testing.assert_close(sigma(x, t), model.sigma_score(x, t))
    torch._dynamo.reset()


# --------------------------------------------------------------------------------------------
# analytic model
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["vp", "ve", "subvp"])
def test_analytic_model_is_the_exact_score(kind: str) -> None:
    sde = build_sde(kind)
    gmm = mixture(2)
    model = build_score_model("analytic", {}, sde, (2,), gmm)
    assert isinstance(model, AnalyticScoreModel)
    assert list(model.parameters()) == []
    assert count_parameters(model) == 0
    assert model.state_dict() == {}
    x, t = inputs((2,), n=16, dtype=F64)
    want = AnalyticMarginal(gmm, sde).score(x, t)
    torch.testing.assert_close(model(x, t), want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model.score(x, t), want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model.raw(x, t), want, rtol=1e-12, atol=1e-12)
    s = sde.std(t)
    torch.testing.assert_close(model.sigma_score(x, t), s[:, None] * want)
    # float32 in, float32 out, computed in float64
    got32 = model(x.float(), t.float())
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32, want.float(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(model(x, 0.5), AnalyticMarginal(gmm, sde).score(x, 0.5))


def test_analytic_model_on_image_shaped_input() -> None:
    sde = build_sde("vp")
    gmm = mixture(16, seed=5)
    model = build_score_model("analytic", {}, sde, (1, 4, 4), gmm).to("cpu")
    x, t = inputs((1, 4, 4), n=6, dtype=F64)
    got = model(x, t)
    assert got.shape == x.shape
    want = AnalyticMarginal(gmm, sde).score(x.reshape(6, 16), t).reshape(x.shape)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError):
        build_score_model("analytic", {}, sde, (1, 4, 5), gmm)


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------
def test_unet_on_vector_data() -> None:
    with pytest.raises(ConfigError) as info:
        build_score_model("unet", SMALL, build_sde("vp"), (2,))
    assert info.value.key == "kind"
    assert "'mlp' or 'resmlp'" in str(info.value)


def test_analytic_without_a_mixture() -> None:
    with pytest.raises(ConfigError) as info:
        build_score_model("analytic", {}, build_sde("vp"), (2,))
    assert info.value.key == "kind"
    assert "8gaussians" in str(info.value)


def test_analytic_with_a_non_linear_sde() -> None:
    with pytest.raises(ConfigError) as info:
        build_score_model("analytic", {}, CubicSDE(), (2,), mixture(2))
    assert info.value.key == "kind"
    assert "linear" in str(info.value)


def test_unknown_kind_suggests_a_name() -> None:
    with pytest.raises(ConfigError) as info:
        build_score_model("mpl", {}, build_sde("vp"), (2,))
    assert info.value.key == "kind"
    assert "did you mean 'mlp'" in str(info.value)
    assert "analytic" in str(info.value)


@pytest.mark.parametrize("output", ["eps", "x0"])
def test_noise_or_data_output_needs_a_linear_sde(output: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_score_model("mlp", {**SMALL, "output": output}, CubicSDE(), (2,))
    assert info.value.key == "output"
    with pytest.raises(ConfigError) as info:
        ScoreModel(make_net("mlp", (2,)), CubicSDE(), output)
    assert info.value.key == "output"


@pytest.mark.parametrize(
    ("key", "value"),
    [("output", "noise"), ("activation", "swish"), ("time_embedding", "fourrier")],
)
def test_unknown_choices_name_their_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_score_model("mlp", {**SMALL, key: value}, build_sde("vp"), (2,))
    assert info.value.key == key


def test_core_nets_imports_neither_qt_nor_h5py() -> None:
    code = (
        "import sys, workbench.core.nets\n"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'h5py', 'pyqtgraph'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------------------------
# the time branch once per distinct t
# --------------------------------------------------------------------------------------------
def test_time_rows_reads_a_shared_time_from_the_shape() -> None:
    from workbench.core.nets import time_rows

    x = torch.zeros(5, 2)
    assert time_rows(0.3, x).shape == (1,)
    assert time_rows(torch.tensor(0.3), x).shape == (1,)
    assert time_rows(torch.tensor(0.3).reshape(1).expand(5), x).shape == (1,)
    assert time_rows(torch.rand(5), x).shape == (5,)
    # equal values in separate entries take the per-sample path (no value is compared)
    assert time_rows(torch.full((5,), 0.3), x).shape == (5,)
    assert time_rows(torch.rand(5, dtype=F64), x).dtype == torch.float32


SHARED_T_CASES = [
    (kind, shape, embedding)
    for kind, shape in [("mlp", (2,)), ("resmlp", (3,)), ("unet", (1, 7, 7))]
    for embedding in ("fourier", "sinusoidal")
]


@pytest.mark.parametrize(("kind", "shape", "embedding"), SHARED_T_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_shared_time_gives_the_per_particle_function(kind, shape, embedding, dtype) -> None:
    # the default widths (128-wide embedding, 256 hidden) where the saving matters
    sizes = {"channels": 8} if kind == "unet" else {"hidden": 256, "depth": 3}
    torch.manual_seed(0)
    net = NETS.get(kind).from_params(shape, time_embedding=embedding, embed_dim=128, **sizes)
    net = net.to(dtype)
    model = ScoreModel(net, build_sde("vp"), "eps")
    x = torch.randn(64, *shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
    seen: list[tuple[int, ...]] = []
    time_layer = net.time_mlp[0] if kind == "unet" else getattr(net, "time", None)
    if time_layer is None:
        time_layer = net.blocks[0].time
    hook = time_layer.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    # the embedding starts the time branch; the MLP's per-particle first layer takes its rows
    # in one addmm with x (no call of the time Linear), so the rows are counted there too
    rows: list[tuple[int, ...]] = []
    embed_hook = net.embed.register_forward_hook(lambda m, i, o: rows.append(tuple(o.shape)))
    try:
        for t in (0.001, 0.37, 1.0):
            shared = model(x, torch.tensor(t, dtype=dtype))
            assert seen[-1] == (1, 128)  # the time branch ran for one row
            assert rows[-1] == (1, 128)
            per_particle = model(x, torch.full((64,), t, dtype=dtype))
            assert rows[-1] == (64, 128)
            if kind != "mlp":
                assert seen[-1] == (64, 128)
            scale = per_particle.abs().max()
            tol = 1e-6 if dtype == torch.float32 else 1e-13
            assert (shared - per_particle).abs().max() <= tol * scale, (t, dtype)
            raw_shared = net(x, torch.tensor(t, dtype=dtype))
            raw_each = net(x, torch.full((64,), t, dtype=dtype))
            assert (raw_shared - raw_each).abs().max() <= tol * raw_each.abs().max()
    finally:
        hook.remove()
        embed_hook.remove()


def test_shared_time_path_keeps_parameter_names_and_shapes() -> None:
    # old runs' state dicts must load: the split first layer reuses inp/time as they were
    net = MLPNet.from_params((2,), hidden=256, depth=3)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes == {
        "embed.W": (64,),
        "inp.weight": (256, 2),
        "inp.bias": (256,),
        "time.weight": (256, 128),
        "time.bias": (256,),
        "hidden.0.weight": (256, 256),
        "hidden.0.bias": (256,),
        "hidden.1.weight": (256, 256),
        "hidden.1.bias": (256,),
        "out.weight": (2, 256),
        "out.bias": (2,),
    }


def test_gradients_flow_through_a_shared_time() -> None:
    net = make_net("mlp", (2,))
    x = torch.randn(8, 2)
    net(x, torch.tensor(0.4)).pow(2).sum().backward()
    assert net.time.weight.grad is not None and net.time.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["mlp", "resmlp"])
@pytest.mark.parametrize("activation", ["silu", "relu", "tanh", "gelu"])
def test_no_grad_forward_is_bitwise_the_autograd_forward(kind: str, activation: str) -> None:
    """Sampling overwrites hidden activations in place (apply_activation); the score it gives
    must be exactly the one training sees, for shared and per-sample times, and the input
    must be left as it was."""
    torch.manual_seed(3)
    net = NETS.get(kind)(3, hidden=32, depth=3, activation=activation, embed_dim=16)
    x = torch.randn(64, 3)
    x_before = x.clone()
    for t in (torch.tensor(0.3), torch.rand(64)):
        with torch.enable_grad():
            want = net(x, t)
        with torch.no_grad():
            got = net(x, t)
        with torch.inference_mode():
            got_inf = net(x, t)
        assert torch.equal(got, want.detach())
        assert torch.equal(got_inf, want.detach())
    assert torch.equal(x, x_before)


def test_apply_activation_keeps_autograd_input_when_grad_is_on() -> None:
    h = torch.randn(5, 4, requires_grad=True)
    pre = h * 2.0
    out = apply_activation(nn.SiLU(), pre)
    out.sum().backward()  # would fail if pre had been overwritten in place
    assert h.grad is not None
    assert torch.equal(pre, h.detach() * 2.0)
