"""Fast paths for the step loops: CUDA graphs, ``torch.compile``, bf16, and chunk sizes.

A training or sampling step of a small score network is dominated by kernel launches, not by
arithmetic: on a GPU the ~50 kernels of one step of a 3x256 MLP cost ~10 us each to launch
whatever the batch. Two remedies are offered, both behind the same switch
(``train.fast_path`` / ``sample.fast_path``, :data:`FAST_PATHS`):

* ``cuda_graph``: the work is captured once into a CUDA graph with static input and output
  buffers (warm-up on a side stream, then ``torch.cuda.graph``) and replayed: one launch per
  step. New inputs are copied into the static buffers before each replay.
* ``compile``: ``torch.compile`` (``reduce-overhead`` on CUDA, which graphs the compiled
  kernels; the default mode on the CPU, which fuses the elementwise work). It runs on the CPU
  too, if a C++ compiler is installed. Its first call compiles (seconds to a minute); the
  workbench never uses ``max-autotune``, whose first-call autotuning takes ~50 s.
* ``auto``: ``cuda_graph`` on CUDA, ``off`` on the CPU (a step is compute-bound there and
  graphs do not exist); sampling on the CPU then fuses the MLP's Linear + bias + activation
  into oneDNN matmuls (:mod:`workbench.core.cpu_fused`, chosen in
  :func:`workbench.core.samplers.sample`), which saves the passes over memory around them.

:class:`FastScore` applies the choice to a score model's forward pass (the sampler's step
calls it once or more per step; the remaining update is a handful of elementwise kernels).
The trainer applies it to its whole step (:mod:`workbench.core.train`).

Chunks: :func:`auto_chunk_size` picks how many samples one call of the network may see from
the free memory of the device and the model's activation bytes per sample, measured by
:func:`activation_bytes_per_sample`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from workbench.errors import ConfigError, WorkbenchError

__all__ = [
    "FAST_PATHS",
    "PRECISIONS",
    "FastScore",
    "StaticGraph",
    "activation_bytes_per_sample",
    "autocast",
    "auto_chunk_size",
    "available_memory",
    "compile_unavailable_reason",
    "resolve_fast_path",
]

FAST_PATHS = ("auto", "off", "cuda_graph", "compile")
PRECISIONS = ("fp32", "bf16")
# Warm-up calls before a capture: lazy initialisation (cuBLAS handles, autotuned kernels,
# allocator pools) must happen outside the graph, on the side stream (PyTorch's recipe).
_WARMUP_CALLS = 3


def compile_unavailable_reason(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` here, or None when it can.

    Inductor writes C++ (CPU) or Triton (CUDA) kernels: the CPU needs a C++ compiler on PATH,
    CUDA needs the ``triton`` package.
    """
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "torch.compile on CUDA needs the 'triton' package, which is not installed"
        return None
    if not any(shutil.which(cc) for cc in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++")):
        return "torch.compile on the CPU needs a C++ compiler (g++ or clang++) on PATH"
    return None


def resolve_fast_path(name: str, device: torch.device, key: str = "fast_path") -> str:
    """The path actually taken: ``auto`` becomes ``cuda_graph`` on CUDA and ``off`` elsewhere.

    ``cuda_graph`` without CUDA and ``compile`` without its toolchain are errors naming ``key``.
    """
    if name not in FAST_PATHS:
        raise ConfigError(key, f"must be one of {', '.join(FAST_PATHS)}, got {name!r}")
    if name == "auto":
        return "cuda_graph" if device.type == "cuda" else "off"
    if name == "cuda_graph" and device.type != "cuda":
        raise ConfigError(
            key, f"'cuda_graph' needs a CUDA device, but this runs on {device.type}; use 'auto'"
        )
    if name == "compile":
        reason = compile_unavailable_reason(device)
        if reason is not None:
            raise ConfigError(key, f"'compile' is not available: {reason}; use 'auto' or 'off'")
    return name


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast for ``precision == "bf16"`` (matmuls in bf16, accumulation in fp32);
    a no-op context for fp32."""
    if precision not in PRECISIONS:
        raise ConfigError("precision", f"must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


# --------------------------------------------------------------------------------------------
# memory and chunks
# --------------------------------------------------------------------------------------------
def available_memory(device: torch.device) -> int:
    """Bytes that new tensors may take on ``device``: free GPU memory (``mem_get_info``, plus
    what PyTorch's caching allocator holds but does not use), or the host's MemAvailable
    (less what an address-space limit leaves)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + max(cached, 0))
    # the host's MemAvailable, or less under an address-space limit (ulimit -v)
    from workbench.guards import available_memory as host_memory

    found = host_memory()
    return found if found is not None else 4 << 30  # no way to ask: assume a modest 4 GiB


def _tensors(value: Any) -> Iterator[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v)


@torch.no_grad()
def activation_bytes_per_sample(
    model: nn.Module | Callable[[Tensor, Tensor], Tensor],
    sample_shape: tuple[int, ...],
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    probe: int = 4,
) -> int:
    """Bytes of activations one sample costs in a forward pass (no gradients).

    Measured, not guessed: a forward pass of ``probe`` samples with a hook on every module
    adds up the bytes of every tensor the modules return, divided by ``probe``. This is the
    total of all intermediate results, an upper bound on the peak (without gradients the
    caching allocator frees each one once the next layer has consumed it), so chunks chosen
    from it fit with room to spare. A plain callable (the analytic score) counts its output.
    """
    x = torch.zeros((probe, *sample_shape), device=device, dtype=dtype)
    t = torch.full((probe,), 0.5, device=device, dtype=dtype)
    total = [x.numel() * x.element_size()]

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        for out in _tensors(output):
            total[0] += out.numel() * out.element_size()

    handles = []
    if isinstance(model, nn.Module):
        handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        out = model(x, t)
        if not handles:
            total[0] += out.numel() * out.element_size()
    finally:
        for h in handles:
            h.remove()
    return max(1, -(-total[0] // probe))


def auto_chunk_size(
    n: int,
    bytes_per_sample: int,
    free_bytes: int,
    *,
    state_bytes_per_sample: int = 0,
    fraction: float = 0.5,
) -> int:
    """The largest chunk c <= n whose activations fit beside the samples' states:

        c = floor((fraction * free_bytes - n * state_bytes_per_sample) / bytes_per_sample)

    ``state_bytes_per_sample`` is what every sample costs for the whole run whatever the chunk
    (its state, the noise and the update: a few copies of one sample); ``fraction`` leaves the
    rest of the memory to everything else (the allocator's fragmentation, other programs).
    A run whose states alone do not fit is an error that says how much it needs.
    """
    if n < 1 or bytes_per_sample < 1:
        raise ValueError(f"n and bytes_per_sample must be >= 1, got {n}, {bytes_per_sample}")
    budget = fraction * free_bytes - n * state_bytes_per_sample
    if budget < bytes_per_sample:
        need = n * state_bytes_per_sample + bytes_per_sample
        raise WorkbenchError(
            f"{n} samples need about {_mib(need / fraction)} of memory and "
            f"{_mib(free_bytes)} is free; sample fewer at a time (sample.n)"
        )
    return int(min(n, budget // bytes_per_sample))


def _mib(b: float) -> str:
    return f"{b / 2**20:.0f} MiB" if b < 2**30 else f"{b / 2**30:.1f} GiB"


# --------------------------------------------------------------------------------------------
# graphs
# --------------------------------------------------------------------------------------------
class StaticGraph:
    """``fn(*args)`` captured once with static buffers, then replayed on new inputs.

    ``__call__`` copies each argument into its static buffer, replays, and returns the static
    output (the next call overwrites it: use or copy it first). Inputs must keep the shape,
    dtype and device they had at capture; :class:`FastScore` keeps one graph per shape.

    On CUDA the capture follows PyTorch's recipe: warm-up calls on a side stream, then
    ``torch.cuda.graph``. ``emulate=True`` (for tests on the CPU) runs the same buffer logic
    without a device graph: "replay" re-runs ``fn`` on the static inputs and copies its result
    into the static output, so everything but the capture itself is exercised.
    """

    def __init__(
        self,
        fn: Callable[..., Tensor],
        example_args: tuple[Tensor, ...],
        *,
        emulate: bool = False,
        pool: Any = None,
    ) -> None:
        self.fn = fn
        self.emulate = emulate
        self.static_in = tuple(a.detach().clone() for a in example_args)
        self.graph: Any = None
        if emulate:
            self.static_out = fn(*self.static_in).detach().clone()
            return
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(_WARMUP_CALLS):
                fn(*self.static_in)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self.static_out = fn(*self.static_in)

    def __call__(self, *args: Tensor) -> Tensor:
        for buf, a in zip(self.static_in, args, strict=True):
            buf.copy_(a)
        if self.emulate:
            self.static_out.copy_(self.fn(*self.static_in))
        else:
            self.graph.replay()
        return self.static_out


class FastScore(nn.Module):
    """``model(x, t)`` through a fast path: ``off``, ``compile`` or ``cuda_graph``, in fp32 or
    under bf16 autocast (the output is returned in the input's dtype).

    A graph is captured per (shape, dtype) of the inputs: lock-step chunks of sampling use two
    at most (the chunk and the last, smaller one). The output is a fresh tensor, never the
    graph's static buffer, so callers may keep it across calls (ODE solvers keep stages).
    """

    def __init__(
        self,
        model: nn.Module | Callable[[Tensor, Tensor], Tensor],
        path: str = "off",
        precision: str = "fp32",
        device: torch.device | None = None,
        *,
        emulate_graph: bool = False,
        fallback: bool = False,
    ) -> None:
        super().__init__()
        if path not in ("off", "compile", "cuda_graph"):
            raise ConfigError("fast_path", f"unresolved or unknown fast path {path!r}")
        autocast(torch.device("cpu"), precision)  # checks the name
        self.model = model
        self.path = path
        self.precision = precision
        self.emulate_graph = emulate_graph
        #: on a failed capture, go on plainly (``auto``) instead of raising; ``note`` says why
        self.fallback = fallback
        self.note = ""
        self._graphs: dict[tuple[Any, ...], StaticGraph] = {}
        self._pool: Any = None
        self._compiled: Any = None
        if path == "compile":
            cuda = device is not None and device.type == "cuda"
            # reduce-overhead graphs the compiled kernels on CUDA; no max-autotune (its
            # first call autotunes for ~50 s)
            self._compiled = torch.compile(
                self._forward, dynamic=False, mode="reduce-overhead" if cuda else None
            )

    def _forward(self, x: Tensor, t: Tensor) -> Tensor:
        with autocast(x.device, self.precision):
            out = self.model(x, t)
        return out.to(x.dtype)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        if self.path == "off":
            return self._forward(x, t)
        if self.path == "compile":
            return self._compiled(x, t).clone()
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        key = (tuple(x.shape), x.dtype, tuple(t.shape), str(x.device))
        graph = self._graphs.get(key)
        if graph is None:
            if not self.emulate_graph and self._pool is None:
                # one memory pool shared by the graphs of every shape
                self._pool = torch.cuda.graph_pool_handle()
            try:
                graph = StaticGraph(
                    self._forward, (x, t), emulate=self.emulate_graph, pool=self._pool
                )
            except Exception as exc:  # a model that syncs or branches on values
                if not self.fallback:
                    raise
                self.path, self.note = "off", f"CUDA graph capture failed ({exc}); plain calls"
                return self._forward(x, t)
            self._graphs[key] = graph
        return graph(x, t).clone()

    @property
    def n_graphs(self) -> int:
        """Graphs captured so far (one per input shape)."""
        return len(self._graphs)
