"""``sde-workbench bench``: the workbench's own paths against a plain PyTorch loop, same run.

Each row times one piece of work both ways on the same device, with the same network class,
the same maths and the same batch, so the ratio says what the workbench's machinery costs or
saves. Speed targets live here, not in the tests (timings on shared CI machines are noise).
:func:`benchmark_open_and_slider` times the trajectory inspector the same way.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch

from workbench.config import default_config
from workbench.core.cpu_fused import native_bf16
from workbench.core.fast import resolve_fast_path
from workbench.core.nets import ScoreModel
from workbench.core.samplers import build_sampler, sample
from workbench.core.sde import LinearSDE
from workbench.core.train import Trainer, device_description, resolve_device

__all__ = [
    "BenchRow",
    "BenchSizes",
    "EventLoopProbe",
    "ReferenceNet",
    "bench_gui",
    "bench_recording",
    "bench_reference",
    "bench_sampling",
    "bench_training",
    "benchmark_open_and_slider",
    "format_gui_table",
    "format_table",
    "run_bench",
]


@dataclass(frozen=True)
class BenchRow:
    """One piece of work timed several ways, in ``unit`` (ms) per the row's unit of work.

    ``plain_ms``: a textbook PyTorch loop of the same maths; ``workbench_ms``: the workbench's
    own code on its plain path (``fast_path = "off"``); ``fast_ms``: the same code on
    ``fast_path`` (``cuda_graph`` on CUDA, ``compile`` where asked for), None where not run;
    ``bf16_ms``: the fast path with the network in bf16 (autocast on CUDA; on a CPU with native
    bf16, sampling's fused layers in bf16), None where not run.
    """

    work: str
    workbench_ms: float
    plain_ms: float
    unit: str
    fast_ms: float | None = None
    fast_path: str = ""
    bf16_ms: float | None = None

    @property
    def speedup(self) -> float:
        """plain / the workbench's best fp32 path (> 1: the workbench is faster)."""
        fp32 = min(v for v in (self.workbench_ms, self.fast_ms) if v is not None)
        return self.plain_ms / fp32 if fp32 > 0 else float("nan")


@dataclass(frozen=True)
class BenchSizes:
    """What the bench runs; :meth:`for_device` gives the reference figures' sizes."""

    train_batches: tuple[int, ...] = (4096,)
    train_steps: int = 20
    sample_ns: tuple[int, ...] = (4096, 262144)
    sample_steps: tuple[int, ...] = (100, 5)
    record_n: int = 4096
    repeats: int = 5
    reference_steps: int = 200

    @classmethod
    def for_device(cls, device: torch.device, quick: bool = False) -> BenchSizes:
        if device.type == "cuda":
            return cls(
                train_batches=(4096, 65536),
                sample_steps=(100, 100) if quick else (1000, 1000),
                repeats=2 if quick else 5,
                reference_steps=20 if quick else 200,
            )
        # The CPU cannot run 262144 particles x 1000 steps in a bench's time: it runs fewer
        # steps and reports per 1000 (every step costs the same).
        return cls(
            sample_steps=(10, 1) if quick else (100, 5),
            repeats=2 if quick else 5,
            reference_steps=10 if quick else 200,
        )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_all(
    fns: list[Callable[[], None] | None], device: torch.device, repeats: int
) -> list[float | None]:
    """Best wall time of each piece of work, timed in turn within every repeat.

    Taking turns keeps slow drifts of the machine (other load, clocks) from favouring any
    side; the minimum over repeats is the least noisy estimate of what the work itself costs.
    """
    best: list[float | None] = [None if fn is None else float("inf") for fn in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            if fn is None:
                continue
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            best[i] = min(best[i], time.perf_counter() - start)  # type: ignore[type-var]
    return best


def _time_alternating(
    pairs: list[tuple[Callable[[], None], Callable[[], None]]],
    device: torch.device,
    repeats: int,
) -> list[tuple[float, float]]:
    """Median wall time of each side of each (workbench, plain) pair, the two run back to back.

    For ratios on a shared machine: each repeat runs the two sides of a pair one right after
    the other, in the order swapped every repeat (A B, B A, ...), so that a burst of load from
    elsewhere falls on both sides alike or, by the swap, on each side as often; the median over
    the repeats then drops the repeats a burst spoiled. The minimum of :func:`_time_all` does
    not pair the sides: one lucky quiet window for one side and none for the other moved such
    a ratio four-fold between runs.
    """
    times: list[tuple[list[float], list[float]]] = [([], []) for _ in pairs]
    for r in range(repeats):
        for (first, second), (t_first, t_second) in zip(pairs, times, strict=True):
            order = [(first, t_first), (second, t_second)]
            for fn, into in order if r % 2 == 0 else order[::-1]:
                _sync(device)
                start = time.perf_counter()
                fn()
                _sync(device)
                into.append(time.perf_counter() - start)
    return [(statistics.median(a), statistics.median(b)) for a, b in times]


def _time_pair(
    first: Callable[[], None], second: Callable[[], None], device: torch.device, repeats: int
) -> tuple[float, float]:
    a, b = _time_all([first, second], device, repeats)
    return float(a), float(b)  # type: ignore[arg-type]


def _ms(seconds: float | None, scale: float) -> float | None:
    return None if seconds is None else seconds * scale * 1e3


def bench_training(
    device: torch.device,
    batch: int = 4096,
    steps: int = 20,
    repeats: int = 5,
    fast_path: str | None = None,
    bf16: bool = False,
) -> BenchRow:
    """One DSM step of the default 3x256 MLP: the Trainer (plain path, and ``fast_path`` if
    given) against a textbook loop."""
    cfg = default_config().with_overrides(
        {
            "train.batch_size": batch,
            "train.device": str(device),
            "train.steps": 10**9,
            "train.warmup": 0,
            "train.fast_path": "off",
        }
    )

    def trainer_fn(overrides: dict[str, Any]) -> Callable[[], None]:
        trainer = Trainer(cfg.with_overrides(overrides), device=device)
        # warm-up: allocator, kernels, lazy init, and a graph's capture or a compile
        trainer.run(steps=trainer.step + 5)

        def go() -> None:
            trainer.run(steps=trainer.step + steps)

        return go

    ours = trainer_fn({})
    fast = trainer_fn({"train.fast_path": fast_path}) if fast_path else None
    half = (
        trainer_fn({"train.fast_path": fast_path or "off", "train.precision": "bf16"})
        if bf16
        else None
    )

    # The plain loop: same network class and data, DSM with sigma^2 weighting written out,
    # Adam, clipping and an EMA updated parameter by parameter, as tutorials write it.
    plain_trainer = Trainer(cfg, device=device)
    # the default experiment: a network (not the analytic model) under the VP SDE
    net = cast(ScoreModel, plain_trainer.model).net
    sde = cast(LinearSDE, plain_trainer.sde)
    data = plain_trainer.data
    params = [p for p in net.parameters() if p.requires_grad]
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=cfg.train.lr)
    eps = cfg.loss.eps

    def plain_step() -> None:
        idx = torch.randint(data.shape[0], (batch,), device=device)
        x0 = data[idx]
        t = eps + (sde.T - eps) * torch.rand(batch, device=device)
        z = torch.randn_like(x0)
        m, s = sde.marginal_coeffs(t)
        xt = m[:, None] * x0 + s[:, None] * z
        loss = 0.5 * ((net(xt, t) - z) ** 2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
        if not torch.isfinite(loss):
            raise RuntimeError("plain loop diverged")
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, params, strict=True):
                e.mul_(cfg.train.ema).add_(p, alpha=1 - cfg.train.ema)

    for _ in range(5):
        plain_step()

    def plain() -> None:
        for _ in range(steps):
            plain_step()

    t_ours, t_plain, t_fast, t_half = _time_all([ours, plain, fast, half], device, repeats)
    scale = 1.0 / steps
    return BenchRow(
        f"DSM training step, MLP 3x256, batch {batch}",
        _ms(t_ours, scale),  # type: ignore[arg-type]
        _ms(t_plain, scale),  # type: ignore[arg-type]
        "ms",
        fast_ms=_ms(t_fast, scale),
        fast_path=fast_path or "",
        bf16_ms=_ms(t_half, scale),
    )


def _sampling_setup(device: torch.device, n: int) -> tuple[Any, Any, Any]:
    cfg = default_config().with_overrides(
        {"train.device": str(device), "sample.n": n, "sample.sampler": "em"}
    )
    trainer = Trainer(cfg.with_overrides({"train.batch_size": 1024}), device=device)
    model = trainer.ema_model.eval().requires_grad_(False)
    return cfg, model, trainer.sde


def bench_sampling(
    device: torch.device,
    n: int,
    steps: int,
    repeats: int = 3,
    fast_path: str | None = None,
    bf16: bool = False,
) -> BenchRow:
    """Reverse-SDE Euler–Maruyama with the 3x256 MLP: the workbench sampler (plain, and on
    ``fast_path``) against the textbook loop (score from the eps-net, drift a x - g^2 score,
    noise g sqrt(dt))."""
    cfg, model, sde = _sampling_setup(device, n)
    params = {p.name: getattr(cfg.sample, p.name) for p in cfg.sample.PARAMS}
    params.update(steps=steps, denoise=False)
    sampler = build_sampler(sde, model, params)
    net = model.net
    grid = torch.linspace(sde.T, cfg.sample.eps, steps + 1, dtype=torch.float64)

    def ours_on(path: str, precision: str = "fp32") -> Callable[[], None]:
        @torch.no_grad()
        def go() -> None:
            for _ in sample(sampler, n, (2,), None, device, fast_path=path, precision=precision):
                pass

        go()  # warm-up (and the capture or the compile)
        return go

    @torch.no_grad()
    def plain() -> None:
        x = torch.randn(n, 2, device=device) * sde.prior_std()
        for i in range(steps):
            t, dt = float(grid[i]), float(grid[i + 1] - grid[i])
            tt = torch.full((n,), t, device=device)
            s = float(sde.std(torch.tensor(t, dtype=torch.float64)))
            a = float(sde.drift_coeff(torch.tensor(t, dtype=torch.float64)))
            g = float(sde.diffusion(torch.tensor(t, dtype=torch.float64)))
            score = -net(x, tt) / s
            x = x + (a * x - g * g * score) * dt + g * math.sqrt(-dt) * torch.randn_like(x)

    ours = ours_on("off")
    fast = ours_on(fast_path) if fast_path else None
    half = ours_on(fast_path or "off", "bf16") if bf16 else None
    plain()
    t_ours, t_plain, t_fast, t_half = _time_all([ours, plain, fast, half], device, repeats)
    scale = 1000 / steps  # reported per 1000 steps, the reference figure's unit
    return BenchRow(
        f"reverse-SDE EM, 1000 steps, {n} particles"
        + ("" if steps == 1000 else f" (x{scale:g} of {steps})"),
        _ms(t_ours, scale),  # type: ignore[arg-type]
        _ms(t_plain, scale),  # type: ignore[arg-type]
        "ms",
        fast_ms=_ms(t_fast, scale),
        fast_path=fast_path or "",
        bf16_ms=_ms(t_half, scale),
    )


class ReferenceNet(torch.nn.Module):
    """The score_sde_pytorch-style toy network: 16 Gaussian Fourier features of t (8 fixed
    frequencies ~ N(0, 16^2), sin and cos) concatenated to x, then 3 SiLU layers of 256 and a
    linear output, every particle computing its own features (as ``vec_t`` there is)."""

    W: torch.Tensor

    def __init__(self, dim: int, hidden: int = 256, features: int = 16, scale: float = 16.0):
        super().__init__()
        self.register_buffer("W", torch.randn(features // 2) * scale)
        act = torch.nn.SiLU
        self.net = torch.nn.Sequential(
            torch.nn.Linear(dim + features, hidden),
            act(),
            torch.nn.Linear(hidden, hidden),
            act(),
            torch.nn.Linear(hidden, hidden),
            act(),
            torch.nn.Linear(hidden, dim),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        arg = t[:, None] * self.W[None, :] * (2 * math.pi)
        return self.net(torch.cat([x, torch.sin(arg), torch.cos(arg)], dim=-1))


def bench_reference(
    device: torch.device,
    n: int,
    steps: int,
    batch: int,
    train_steps: int,
    repeats: int = 3,
    bf16: bool = False,
) -> list[BenchRow]:
    """The workbench's defaults (sampler ``em``, the 3x256 MLP with its 32-wide embedding,
    DSM training) against a score_sde_pytorch-style loop around :class:`ReferenceNet`, written
    as there: VP coefficients per particle (``vec_t = ones(n) * t``), score = -net / std,
    the reverse drift f - g^2 score, x_mean + g sqrt(dt) z; training with the continuous
    DSM loss ||score std + z||^2, Adam, clipping and an EMA updated parameter by parameter.
    Two rows: one sampling step, one training step.

    The two sides do the same work per step: the same batch from the same training set,
    U(eps, T) times, the same loss (the default ``sigma2`` weighting makes the workbench's
    lambda/s^2 factor 1, as in the plain loss), Adam at the same rate, clipping at the same
    norm, and an EMA. They differ where each is written its own way: the plain side's Adam is
    torch's default (foreach) and its EMA a loop over parameters, the workbench's Adam is fused
    and its EMA one foreach lerp (both cheaper on the workbench's side); the plain network sees
    16 Fourier features per particle, the workbench's default 32 through its own Linear
    (140k against 136k multiply-adds per particle in training, where the first layer is one
    addmm on [x, emb]; in sampling every particle shares t and that branch is one row). The
    workbench samples on its default fast path (``auto``: on the CPU the MLP's layers fused by
    oneDNN, :mod:`workbench.core.cpu_fused`). With ``bf16`` the sampling row also times the
    workbench with ``sample.precision = "bf16"`` (its bf16 column; the ratio stays fp32's)."""
    cfg = default_config().with_overrides(
        {
            "train.device": str(device),
            "train.batch_size": batch,
            "train.steps": 10**9,
            "train.warmup": 0,
            "train.fast_path": "off",
        }
    )
    trainer = Trainer(cfg, device=device)
    sde = trainer.sde
    b0, b1 = float(sde.beta_0), float(sde.beta_1)  # type: ignore[attr-defined]
    params = {p.name: getattr(cfg.sample, p.name) for p in cfg.sample.PARAMS}
    params.update(steps=steps, denoise=False)
    model = trainer.ema_model.eval().requires_grad_(False)
    sampler = build_sampler(sde, model, params)
    torch.manual_seed(0)
    ref = ReferenceNet(2).to(device)
    eps_t, T = cfg.sample.eps, sde.T

    def marginal(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_m = -0.25 * t**2 * (b1 - b0) - 0.5 * t * b0
        return torch.exp(log_m), torch.sqrt(1.0 - torch.exp(2.0 * log_m))

    @torch.no_grad()
    def plain_sample() -> None:
        x = torch.randn(n, 2, device=device)
        timesteps = torch.linspace(T, eps_t, steps, device=device)
        dt = -(T - eps_t) / steps
        for i in range(steps):
            vec_t = torch.ones(n, device=device) * timesteps[i]
            beta = b0 + vec_t * (b1 - b0)
            drift, g = -0.5 * beta[:, None] * x, torch.sqrt(beta)
            score = -ref(x, vec_t) / marginal(vec_t)[1][:, None]
            drift = drift - g[:, None] ** 2 * score
            x_mean = x + drift * dt
            x = x_mean + g[:, None] * math.sqrt(-dt) * torch.randn_like(x)

    def ours_sampler(precision: str) -> Callable[[], None]:
        @torch.no_grad()
        def go() -> None:
            # the default fast path (auto), as `sample` runs it
            for _ in sample(
                sampler, n, (2,), None, device, fast_path=cfg.sample.fast_path, precision=precision
            ):
                pass

        return go

    ours_sample = ours_sampler(cfg.sample.precision)
    ours_half = ours_sampler("bf16") if bf16 else None

    data = trainer.data
    ref_params = list(ref.parameters())
    ema = [p.detach().clone() for p in ref_params]
    opt = torch.optim.Adam(ref_params, lr=cfg.train.lr)

    def plain_train() -> None:
        for _ in range(train_steps):
            x0 = data[torch.randint(data.shape[0], (batch,), device=device)]
            t = torch.rand(batch, device=device) * (T - cfg.loss.eps) + cfg.loss.eps
            z = torch.randn_like(x0)
            m, std = marginal(t)
            score = -ref(m[:, None] * x0 + std[:, None] * z, t) / std[:, None]
            loss = torch.mean(0.5 * torch.sum((score * std[:, None] + z) ** 2, dim=-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ref_params, cfg.train.grad_clip)
            opt.step()
            with torch.no_grad():
                for e, p in zip(ema, ref_params, strict=True):
                    e.mul_(cfg.train.ema).add_(p, alpha=1 - cfg.train.ema)

    def ours_train() -> None:
        trainer.run(steps=trainer.step + train_steps)

    for fn in (plain_sample, ours_sample, plain_train, ours_train):
        fn()  # warm-up
    # ratios are what these rows are read for: paired, order-swapped, medians
    pairs = [(ours_sample, plain_sample), (ours_train, plain_train)]
    if ours_half is not None:
        ours_half()  # warm-up
        pairs.append((ours_half, plain_sample))
    timed = _time_alternating(pairs, device, repeats)
    (t_ours_s, t_plain_s), (t_ours_t, t_plain_t) = timed[:2]
    t_half = timed[2][0] if ours_half is not None else None
    return [
        BenchRow(
            f"vs score_sde_pytorch-style loop: EM step, {n} particles",
            _ms(t_ours_s, 1.0 / steps),  # type: ignore[arg-type]
            _ms(t_plain_s, 1.0 / steps),  # type: ignore[arg-type]
            "ms",
            bf16_ms=_ms(t_half, 1.0 / steps),
        ),
        BenchRow(
            f"vs score_sde_pytorch-style loop: DSM training step, batch {batch}",
            _ms(t_ours_t, 1.0 / train_steps),  # type: ignore[arg-type]
            _ms(t_plain_t, 1.0 / train_steps),  # type: ignore[arg-type]
            "ms",
        ),
    ]


def bench_recording(device: torch.device, n: int, steps: int, repeats: int = 2) -> BenchRow:
    """The cost of writing every 10th row to HDF5: sampling to a file with record_every = 10
    against the same run keeping only the final samples (both on the automatic fast path)."""
    import tempfile

    from workbench.jobs.sample import sample_to_file

    cfg, model, _ = _sampling_setup(device, n)
    with tempfile.TemporaryDirectory() as tmp:
        configs = {
            every: cfg.with_overrides(
                {"sample.steps": steps, "sample.record_every": every, "sample.denoise": False}
            )
            for every in (10, 0)
        }

        def run(every: int) -> Callable[[], None]:
            def go() -> None:
                sample_to_file(configs[every], model, f"{tmp}/r{every}.h5", overwrite=True)

            return go

        run(10)()
        recorded, bare = _time_pair(run(10), run(0), device, repeats)
    scale = 1000 / steps
    return BenchRow(
        f"EM as above, recording every 10th step to HDF5 ({n} particles)",
        recorded * scale * 1e3,
        bare * scale * 1e3,
        "ms",
    )


def run_bench(
    device_name: str = "auto",
    quick: bool = False,
    *,
    compile: bool = False,
    sizes: BenchSizes | None = None,
) -> dict:
    """All rows for one device, with what they ran on.

    The fast path column is ``cuda_graph`` on CUDA (what ``auto`` picks there), and on the
    CPU ``compile`` when ``compile`` is set (its first call compiles for tens of seconds, spent
    in the warm-up, not in the timings), otherwise ``auto``: for sampling the MLP fused by
    oneDNN (:mod:`workbench.core.cpu_fused`); training has no CPU fast path (its column is
    empty there).
    bf16 columns: training on CUDA only (bf16 training on the CPU is slower than fp32);
    sampling on CUDA, and on a CPU where oneDNN runs bf16 natively (AMX or AVX-512 BF16;
    :func:`workbench.core.cpu_fused.native_bf16`), where sampling's fused layers run in bf16.
    """
    device = resolve_device(device_name)
    sizes = sizes or BenchSizes.for_device(device, quick)
    cuda = device.type == "cuda"
    fast = "cuda_graph" if cuda else ("compile" if compile else None)
    if fast is not None:
        resolve_fast_path(fast, device)  # a missing toolchain is an error naming the path
    rows = [
        bench_training(device, b, sizes.train_steps, sizes.repeats, fast, bf16=cuda)
        for b in sizes.train_batches
    ]
    # sampling's auto on the CPU is a path of its own (the MLP fused by oneDNN); training's
    # auto there is the plain step, already the workbench column
    sample_fast = fast or "auto"
    sample_bf16 = cuda or native_bf16()
    bf16_what = "bfloat16 autocast" if cuda else "sampling's fused layers in bfloat16"
    for n, steps in zip(sizes.sample_ns, sizes.sample_steps, strict=True):
        repeats = 1 if quick or (not cuda and n > 100_000) else sizes.repeats
        rows.append(bench_sampling(device, n, steps, repeats, sample_fast, bf16=sample_bf16))
    rows.append(bench_recording(device, sizes.record_n, sizes.sample_steps[0], 1 if quick else 2))
    rows += bench_reference(
        device,
        sizes.record_n,
        sizes.reference_steps,
        sizes.train_batches[0] if sizes.train_batches else 4096,
        sizes.train_steps,
        1 if quick else sizes.repeats,
        bf16=sample_bf16,
    )
    return {
        "device": device_description(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "dtype": "float32" + (f" (bf16 column: {bf16_what})" if sample_bf16 else ""),
        "fast_path": sample_fast,
        "rows": [{**asdict(r), "speedup": r.speedup} for r in rows],
    }


def _duration(ms: float | None) -> str:
    if ms is None:
        return f"{'-':>12}"
    return f"{ms:9.3f} ms" if ms < 10_000 else f"{ms / 1e3:9.2f} s "


def format_table(report: dict) -> str:
    fast = report.get("fast_path", "off")
    fast = "fast path" if fast == "off" else fast  # a column of '-': none was run
    lines = [
        f"device: {report['device']}   torch {report['torch']}   dtype {report['dtype']}",
        f"{'work':<62} {'plain loop':>12} {'workbench':>12} {fast:>12} {'bf16':>12} {'ratio':>7}",
    ]
    for row in report["rows"]:
        lines.append(
            f"{row['work']:<62} {_duration(row['plain_ms'])} {_duration(row['workbench_ms'])} "
            f"{_duration(row.get('fast_ms'))} {_duration(row.get('bf16_ms'))} "
            f"{row['speedup']:>6.2f}x"
        )
    lines.append(
        "plain loop: a textbook PyTorch loop of the same maths (for the recording row: the "
        f"same sampling without recording); workbench: fast_path off; {fast}: the fast path "
        "('-': not run here); ratio = plain / the workbench's best fp32 time, > 1 is faster"
    )
    return "\n".join(lines)


# ------------------------------------------------------------------------ the inspector
def benchmark_open_and_slider(path: str | os.PathLike[str], moves: int = 20) -> dict[str, float]:
    """Seconds to open ``path`` in a fresh inspector, to draw the samples view first, and the
    median of ``moves`` slider moves (each reads a row, histograms it and redraws).

    Qt is imported here, not at the top: ``sde-workbench bench`` runs without a display."""
    import numpy as np
    from PySide6 import QtWidgets

    from workbench.errors import WorkbenchError
    from workbench.gui.inspector import InspectorWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    window = InspectorWindow()
    window.show()
    try:
        start = time.perf_counter()
        ok = window.open(path)
        app.processEvents()
        open_s = time.perf_counter() - start
        if not ok:
            raise WorkbenchError(window.last_error or f"cannot open {path}")
        view = window.current()
        assert view is not None
        start = time.perf_counter()
        view.show_view("Samples")
        app.processEvents()
        first_s = time.perf_counter() - start
        n = view.tf.n_saved
        rows = np.linspace(0, n - 1, moves + 1).round().astype(int)[1:][::-1]
        times = []
        for k in rows:
            start = time.perf_counter()
            view.slider.setValue(int(k))
            app.processEvents()
            times.append(time.perf_counter() - start)
        return {
            "open_s": open_s,
            "first_draw_s": first_s,
            "slider_median_s": float(np.median(times)),
            "slider_max_s": float(max(times)),
            "rows": float(n),
            "n_samples": float(view.tf.n_samples),
            "file_bytes": float(Path(path).stat().st_size),
        }
    finally:
        window.close()
        window.deleteLater()


# ------------------------------------------------------------------------ the event loop
GUI_PROBE_MS = 20  # the probe timer's interval
GUI_TARGET_MS = 50.0  # what "never stalls" means: no gap between ticks over this
GUI_FILE_MB = 400.0  # the trajectory file the GUI bench writes, opens and inspects


class EventLoopProbe:
    """A timer on the GUI thread ticking every ``interval_ms``; the worst gap between ticks per
    phase, and where the GUI thread was while the worst gap lasted.

    The gap is what a user feels: a click, a repaint or a key waits at most that long. The
    "where" comes from a watchdog thread that, once a gap passes ``blame_after_ms``, takes the
    GUI thread's Python stack (``sys._current_frames``); the innermost frames of the workbench
    (else of anything) name the culprit. A gap spent in C code that holds the GIL is sampled
    when the GIL comes back, so its stack is the one right after.
    """

    def __init__(self, interval_ms: int = GUI_PROBE_MS, blame_after_ms: float = 40.0) -> None:
        import threading

        from PySide6 import QtCore

        self.interval_ms = interval_ms
        self.blame_after = blame_after_ms / 1e3
        self.phases: list[dict[str, Any]] = []
        self._phase: dict[str, Any] | None = None
        self._last = time.perf_counter()
        self._gap_stack: str | None = None  # the stack sampled during the current gap
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._timer = QtCore.QTimer()
        self._timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._watchdog = threading.Thread(target=self._watch, name="gap watchdog", daemon=True)

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()
        self._watchdog.start()

    def stop(self) -> None:
        self._timer.stop()
        self._stop.set()
        self._watchdog.join()

    def _tick(self) -> None:
        now = time.perf_counter()
        gap, self._last = now - self._last, now
        stack, self._gap_stack = self._gap_stack, None
        phase = self._phase
        if phase is not None:
            phase["ticks"] += 1
            if gap * 1e3 > phase["worst_gap_ms"]:
                phase["worst_gap_ms"] = gap * 1e3
                phase["blocked_in"] = stack

    def _watch(self) -> None:
        import sys

        while not self._stop.wait(0.005):
            if self._gap_stack is None and time.perf_counter() - self._last > self.blame_after:
                frames = sys._current_frames()
                frame = frames.get(self._main) if self._main is not None else None
                if frame is not None:
                    where = _where(frame)
                    if where.split(" < ")[0].endswith(" _wait"):
                        # the GUI thread sat in its event loop: the timer's slot waited for
                        # the GIL (or a CPU); name what the other threads were running
                        others = [_where(f, 1) for i, f in frames.items() if i != self._main]
                        where = "GUI idle, waiting for the GIL or a CPU; others: " + "; ".join(
                            o for o in others if "threading.py" not in o
                        )
                    self._gap_stack = where

    def phase(self, name: str) -> Any:
        """``with probe.phase("train start"): ...``: gaps while the block (and its event
        processing) runs count for ``name``."""
        import contextlib

        @contextlib.contextmanager
        def block() -> Any:
            entry = {"phase": name, "worst_gap_ms": 0.0, "ticks": 0, "blocked_in": None}
            self._last = time.perf_counter()
            self._gap_stack = None
            self._phase = entry
            start = time.perf_counter()
            try:
                yield entry
            finally:
                self._tick()  # a gap still open at the end counts too
                entry["seconds"] = time.perf_counter() - start
                self._phase = None
                self.phases.append(entry)

        return block()


def _where(frame: Any, depth: int = 3) -> str:
    """The innermost workbench frames of a stack (else the innermost frames), as one line."""
    import traceback

    frames = traceback.extract_stack(frame)
    ours = [f for f in frames if f"{os.sep}workbench{os.sep}" in f.filename]
    chosen = (ours or frames)[-depth:]
    return " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(chosen))


def _wait(app: Any, until: Callable[[], bool], timeout_s: float) -> bool:
    """Run a real event loop until ``until()`` holds or ``timeout_s`` passes (the probe ticks
    meanwhile, as in the app's own loop)."""
    from PySide6 import QtCore

    if until():
        return True
    loop = QtCore.QEventLoop()
    poll = QtCore.QTimer()
    poll.setInterval(10)
    poll.timeout.connect(lambda: loop.quit() if until() else None)
    QtCore.QTimer.singleShot(round(timeout_s * 1e3), loop.quit)
    poll.start()
    loop.exec()
    poll.stop()
    return until()


def write_bench_trajectory(path: str | os.PathLike[str], megabytes: float) -> Path:
    """A trajectory file of about ``megabytes`` on disk: 100 000 two-dimensional particles on
    a random walk (lzf-compressed; random floats barely compress, so the size is the data's)."""
    import numpy as np

    from workbench.config import to_toml
    from workbench.io.trajectories import TrajectoryWriter

    n, dim = 100_000, 2
    rows = max(2, round(megabytes * 1e6 / (n * dim * 4)))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    cfg = default_config()
    with TrajectoryWriter(
        path,
        n_samples=n,
        sample_shape=(dim,),
        config_toml=to_toml(cfg),
        sampler="em",
        compression="lzf",
        overwrite=True,
    ) as writer:
        for k in range(rows):
            writer.append(k, 1.0 - k / (rows - 1), x)
            x = (0.98 * x + 0.05 * rng.standard_normal((n, dim))).astype(np.float32)
        writer.close(x, nfe=rows)
    return Path(path)


def bench_gui(file_mb: float = GUI_FILE_MB, train_s: float = 3.0) -> dict:
    """The GUI's event loop under the heavy work a user starts: the worst gap between ticks of
    a 20 ms timer during training's start, steady training, sampling, opening a ~``file_mb``
    trajectory file in the inspector and its Statistics tab. Target: no gap over 50 ms on an
    idle machine (reported, not asserted: a loaded machine makes gaps of its own).

    Runs on the offscreen platform where there is no display. Qt is imported here."""
    import tempfile

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtWidgets

    from workbench.gui.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    probe = EventLoopProbe()
    with tempfile.TemporaryDirectory(prefix="sde-workbench-gui-bench-") as tmp:
        big = write_bench_trajectory(Path(tmp) / "big.h5", file_mb)
        settings = QtCore.QSettings(
            str(Path(tmp) / "settings.ini"), QtCore.QSettings.Format.IniFormat
        )
        window = MainWindow(settings=settings, runs_dir=Path(tmp) / "runs")
        window.confirm = lambda _question: True
        window.set_config(
            window.config.with_overrides(
                {"train.device": "cpu", "train.steps": 10**6, "sample.n": 2000}
            )
        )
        window.show()
        from workbench.gui.collector import install_gui_collector

        collector = install_gui_collector(freeze=True)  # as the app runs (gui/app.py)
        _wait(app, window.experiment_settled, 60)  # its state is built in a worker
        _wait(app, lambda: False, 0.5)  # settle: first paints, the reference
        probe.start()
        try:
            with probe.phase("train start"):
                window.start_training()
                _wait(app, lambda: bool(window.loss_tab.runs[-1].n >= 2), 60)
            with probe.phase("steady training"):
                _wait(app, lambda: False, train_s)
            window.stop_work()
            # the run ends, then its checkpoint loads (in a worker) before Sample can start
            _wait(app, lambda: window.task is None and not window.model_loading(), 60)
            with probe.phase("sampling"):
                window.start_sampling()
                _wait(app, lambda: window.task is None, 120)
            with probe.phase(f"open a {big.stat().st_size / 1e6:.0f} MB trajectory file"):
                window.open_in_inspector(big)
                _wait(app, lambda: False, 0.2)
            view = window.inspector.current()
            with probe.phase("its Statistics tab"):
                stats = view.show_view("Statistics")
                _wait(app, lambda: stats.stats_ready(), 300)
        finally:
            probe.stop()
            if window.task is not None:
                window.task.cancel()
                window.task.wait()
            from workbench.gui.app import close_windows

            close_windows(app)  # the inspector too: see close_windows
            collector.uninstall()
    return {
        "probe_ms": probe.interval_ms,
        "target_ms": GUI_TARGET_MS,
        "cpus": os.cpu_count(),
        "phases": [
            {k: (round(v, 1) if isinstance(v, float) else v) for k, v in p.items()}
            for p in probe.phases
        ],
    }


def format_gui_table(report: dict) -> str:
    lines = [
        f"event loop probe: a {report['probe_ms']} ms timer on the GUI thread; worst gap between "
        f"ticks per phase (target: under {report['target_ms']:g} ms on an idle machine; "
        f"{report['cpus']} CPUs)",
        f"{'phase':<40} {'worst gap':>10} {'seconds':>8}  verdict  blocked in",
    ]
    for p in report["phases"]:
        verdict = "ok" if p["worst_gap_ms"] <= report["target_ms"] else "SLOW"
        lines.append(
            f"{p['phase']:<40} {p['worst_gap_ms']:>7.0f} ms {p['seconds']:>8.1f}  {verdict:<7}  "
            f"{p['blocked_in'] or '-'}"
        )
    return "\n".join(lines)
