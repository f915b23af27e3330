"""Fast paths: the choice of path, chunk sizes, the static-buffer graph logic, bf16, compile.

No GPU is lent to these tests' machine: the CUDA graph's capture itself runs only on CUDA
(the ``gpu`` tests), but everything around it (static input buffers, one graph per shape,
fresh outputs, the sampler running through it, the noise stream it consumes) is exercised on
the CPU through :class:`StaticGraph`'s emulation, which replays by re-running the function on
the static buffers.
"""

import math

import pytest
import torch
from torch import nn

from workbench.core.data import build_dataset
from workbench.core.fast import (
    FastScore,
    StaticGraph,
    activation_bytes_per_sample,
    auto_chunk_size,
    available_memory,
    compile_unavailable_reason,
    resolve_fast_path,
)
from workbench.core.metrics import noise_floor, sliced_wasserstein
from workbench.core.nets import AnalyticScoreModel, build_score_model
from workbench.core.samplers import auto_sample_chunk, build_sampler, sample
from workbench.core.sde import build_sde
from workbench.errors import ConfigError, WorkbenchError

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mlp(hidden: int = 64, seed: int = 0) -> nn.Module:
    sde = build_sde("vp", {})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        params = {"kind": "mlp", "hidden": hidden, "depth": 3, "activation": "silu"}
        return build_score_model("mlp", params, sde, (2,), None).eval().requires_grad_(False)


# --------------------------------------------------------------------------------------------
# choosing the path
# --------------------------------------------------------------------------------------------
def test_auto_is_plain_on_the_cpu_and_graphs_on_cuda() -> None:
    assert resolve_fast_path("auto", CPU) == "off"
    assert resolve_fast_path("off", CPU) == "off"
    if torch.cuda.is_available():
        assert resolve_fast_path("auto", torch.device("cuda")) == "cuda_graph"
    with pytest.raises(ConfigError, match="needs a CUDA device") as err:
        resolve_fast_path("cuda_graph", CPU, "sample.fast_path")
    assert err.value.key == "sample.fast_path"
    with pytest.raises(ConfigError, match="must be one of"):
        resolve_fast_path("turbo", CPU)


# --------------------------------------------------------------------------------------------
# memory and chunks
# --------------------------------------------------------------------------------------------
class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(2, 8)
        self.act = nn.ReLU()
        self.b = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.b(self.act(self.a(x)))


def test_activation_bytes_add_up_every_module_output() -> None:
    # input 2 + Linear 8 + ReLU 8 + Linear 2 + the module's own output 2 = 22 float32 values
    assert activation_bytes_per_sample(Tiny(), (2,), CPU) == 22 * 4
    assert activation_bytes_per_sample(Tiny().double(), (2,), CPU, torch.float64) == 22 * 8


def test_auto_chunk_arithmetic() -> None:
    # 1 GiB free, half of it usable: 512 MiB - 1e6 samples x 64 B of state = 448 MiB or so
    free = 1 << 30
    budget = 0.5 * free - 1_000_000 * 64
    assert auto_chunk_size(1_000_000, 4096, free, state_bytes_per_sample=64) == int(budget // 4096)
    assert auto_chunk_size(1000, 4096, free) == 1000  # everything fits: no chunks
    assert auto_chunk_size(10**6, 10**6, free, fraction=0.25) == (1 << 28) // 10**6
    with pytest.raises(WorkbenchError, match=r"10000000 samples need about .* is free"):
        auto_chunk_size(10_000_000, 4096, free, state_bytes_per_sample=64)
    assert available_memory(CPU) > 0


def test_auto_chunk_of_the_sampler_fits_the_memory() -> None:
    model = mlp()
    per_sample = activation_bytes_per_sample(model, (2,), CPU)
    n = 5000
    chunk = auto_sample_chunk(model, n, (2,), CPU)
    assert chunk == min(n, int((0.5 * available_memory(CPU) - n * 32) // per_sample))
    assert chunk == n  # a 2-D MLP at n = 5000 fits in any machine's memory


def test_chunk_size_zero_is_automatic_and_negative_is_an_error() -> None:
    sde = build_sde("vp", {})
    sampler = build_sampler(sde, mlp(16), {"sampler": "em", "steps": 5})
    rows = list(sample(sampler, 64, (2,), torch.Generator().manual_seed(0), chunk_size=0))
    plain = list(sample(sampler, 64, (2,), torch.Generator().manual_seed(0)))
    assert torch.equal(rows[-1].x, plain[-1].x)  # automatic: one chunk, the same run
    with pytest.raises(ConfigError, match="must be >= 0"):
        list(sample(sampler, 64, (2,), None, chunk_size=-1))


# --------------------------------------------------------------------------------------------
# graphs: the static-buffer logic, emulated on the CPU
# --------------------------------------------------------------------------------------------
def test_static_graph_copies_inputs_in_and_replays_into_one_output() -> None:
    calls = {"n": 0}

    def fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return x * 2 + y

    g = StaticGraph(fn, (torch.zeros(3), torch.zeros(3)), emulate=True)
    out1 = g(torch.arange(3.0), torch.ones(3))
    assert torch.equal(out1, torch.tensor([1.0, 3.0, 5.0]))
    out2 = g(torch.ones(3), torch.zeros(3))
    assert out2 is out1  # the static output: overwritten by every replay
    assert torch.equal(out1, torch.full((3,), 2.0))


def test_fast_score_equals_the_model_and_keeps_one_graph_per_shape() -> None:
    model = mlp()
    fast = FastScore(model, "cuda_graph", emulate_graph=True)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(100, 2, generator=gen)
    t = torch.tensor(0.3)
    first = fast(x, t)
    assert torch.equal(first, model(x, t))
    second = fast(x + 1, torch.tensor(0.7))  # same shapes: a replay of the same graph
    assert torch.equal(second, model(x + 1, torch.tensor(0.7)))
    assert torch.equal(first, model(x, t)), "an earlier output must not be overwritten"
    fast(x[:30], t)
    assert fast.n_graphs == 2


def run_final(sampler, n: int, seed: int, **kw) -> torch.Tensor:
    rows = list(sample(sampler, n, (2,), torch.Generator().manual_seed(seed), **kw))
    return rows[-1].x


@pytest.mark.parametrize("chunk", [None, 70])
def test_sampling_through_the_graph_logic_equals_the_plain_path(chunk: int | None) -> None:
    """Same seed, same noise stream, same samples (lock-step chunks of two shapes too)."""
    sde = build_sde("vp", {})
    model = mlp()
    params = {"sampler": "pc", "steps": 20, "predictor": "reverse_diffusion"}
    plain = build_sampler(sde, model, params)
    graphed = plain.with_score_model(FastScore(model, "cuda_graph", emulate_graph=True))
    a = run_final(plain, 200, 5, chunk_size=chunk)
    b = run_final(graphed, 200, 5, chunk_size=chunk)
    torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
    assert graphed.nfe == plain.nfe == 20 * 2 + 1
    assert graphed.score_model.n_graphs == (1 if chunk is None else 2)


def eight_gaussians():
    data = build_dataset("8gaussians", {})
    norm = data.normalizer()
    mixture = norm.to_model_mixture(data.mixture())
    return data, norm, mixture


def test_fast_and_plain_samples_are_equally_close_to_the_data() -> None:
    """Different seeds: the sliced Wasserstein distance of each to the data lies within the
    noise floor's spread (mean + 3 sd at n = 3000), so the two cannot be told apart."""
    _, _, mixture = eight_gaussians()
    sde = build_sde("vp", {})
    model = AnalyticScoreModel(mixture, sde)
    sampler = build_sampler(sde, model, {"sampler": "em", "steps": 200})
    graphed = sampler.with_score_model(FastScore(model, "cuda_graph", emulate_graph=True))
    n = 3000
    gen = torch.Generator().manual_seed(11)

    def data(k: int, g: torch.Generator | None) -> torch.Tensor:
        return mixture.sample(k, g, dtype=torch.float64)

    floor, sd = noise_floor(sliced_wasserstein, data, n, repeats=5, generator=gen)
    reference = data(n, gen)
    sw = {}
    for name, s, seed in (("plain", sampler, 1), ("fast", graphed, 2)):
        x = run_final(s, n, seed).double()
        sw[name] = sliced_wasserstein(x, reference, generator=torch.Generator().manual_seed(0))
        assert sw[name] < floor + 3 * sd, (name, sw, floor, sd)
    assert abs(sw["fast"] - sw["plain"]) < 3 * math.sqrt(2) * sd + 1e-12, (sw, sd)


def test_bf16_error_is_small_and_measured() -> None:
    """bf16 autocast: the network's output within ~1% (bf16 keeps 8 bits of mantissa, so a
    product of 3 layers of 256-wide dot products rounds at ~2^-8 relative), samples likewise."""
    model = mlp(hidden=256)
    x = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    t = torch.rand(2000, generator=torch.Generator().manual_seed(1))
    exact = model(x, t)
    bf16 = FastScore(model, "off", "bf16")(x, t)
    assert bf16.dtype == torch.float32
    rel = float((bf16 - exact).norm() / exact.norm())
    assert 0 < rel < 0.02, rel
    sde = build_sde("vp", {})
    sampler = build_sampler(sde, model, {"sampler": "em", "steps": 10, "denoise": False})
    a = run_final(sampler, 500, 3)
    b = run_final(sampler, 500, 3, precision="bf16")
    drift = float((a - b).norm() / a.norm())
    assert 0 < drift < 0.02, drift


# --------------------------------------------------------------------------------------------
# torch.compile (on the CPU: C++ kernels from inductor) and CUDA
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_compiled_score_equals_the_model() -> None:
    reason = compile_unavailable_reason(CPU)
    if reason is not None:
        pytest.skip(reason)
    model = mlp(hidden=16)
    fast = FastScore(model, "compile", device=CPU)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    for t in (0.2, 0.9):
        tt = torch.full((64,), t)
        torch.testing.assert_close(fast(x, tt), model(x, tt), rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
def test_cuda_graph_sampling_equals_the_plain_path() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the CUDA graph capture is not tested here")
    dev = torch.device("cuda")
    sde = build_sde("vp", {})
    model = mlp(hidden=256).to(dev)
    sampler = build_sampler(sde, model, {"sampler": "em", "steps": 50})

    def final(path: str) -> torch.Tensor:
        g = torch.Generator(device=dev).manual_seed(0)
        return list(sample(sampler, 4096, (2,), g, dev, fast_path=path))[-1].x

    torch.testing.assert_close(final("cuda_graph"), final("off"), rtol=1e-4, atol=1e-4)


def test_a_failed_capture_falls_back_to_plain_calls_under_auto() -> None:
    """A model that cannot be captured (here: one that fails while being captured) runs plainly
    when the path was chosen automatically, and raises when it was asked for explicitly."""

    class Uncapturable(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("operation not permitted when stream is capturing")
            return 2 * x

    x = torch.ones(4, 2)
    auto = FastScore(Uncapturable(), "cuda_graph", emulate_graph=True, fallback=True)
    assert torch.equal(auto(x, torch.tensor(0.5)), 2 * x)
    assert auto.path == "off" and "capture failed" in auto.note and auto.n_graphs == 0
    explicit = FastScore(Uncapturable(), "cuda_graph", emulate_graph=True)
    with pytest.raises(RuntimeError, match="capturing"):
        explicit(x, torch.tensor(0.5))
