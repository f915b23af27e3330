"""``sde-workbench bench``: the workbench's own paths against a plain PyTorch loop, same run.

Each row times one piece of work both ways on the same device, with the same network class,
the same maths and the same batch, so the ratio says what the workbench's machinery costs or
saves. Speed targets live here, not in the tests (timings on shared CI machines are noise).
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from workbench.config import default_config
from workbench.core.fast import resolve_fast_path
from workbench.core.samplers import build_sampler, sample
from workbench.core.train import Trainer, device_description, resolve_device

__all__ = [
    "BenchRow",
    "BenchSizes",
    "bench_recording",
    "bench_sampling",
    "bench_training",
    "format_table",
    "run_bench",
]


@dataclass(frozen=True)
class BenchRow:
    """One piece of work timed several ways, in ``unit`` (ms) per the row's unit of work.

    ``plain_ms``: a textbook PyTorch loop of the same maths; ``workbench_ms``: the workbench's
    own code on its plain path (``fast_path = "off"``); ``fast_ms``: the same code on
    ``fast_path`` (``cuda_graph`` on CUDA, ``compile`` where asked for), None where not run;
    ``bf16_ms``: the fast path under bf16 autocast (CUDA only).
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

    @classmethod
    def for_device(cls, device: torch.device, quick: bool = False) -> BenchSizes:
        if device.type == "cuda":
            return cls(
                train_batches=(4096, 65536),
                sample_steps=(100, 100) if quick else (1000, 1000),
                repeats=2 if quick else 5,
            )
        # The CPU cannot run 262144 particles x 1000 steps in a bench's time: it runs fewer
        # steps and reports per 1000 (every step costs the same).
        return cls(sample_steps=(10, 1) if quick else (100, 5), repeats=2 if quick else 5)


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
    net = plain_trainer.model.net
    sde = plain_trainer.sde
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
    in the warm-up, not in the timings), otherwise absent: ``auto`` is the plain path there.
    bf16 columns are CUDA only (bf16 on the CPU is slower than fp32).
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
    for n, steps in zip(sizes.sample_ns, sizes.sample_steps, strict=True):
        repeats = 1 if quick or (not cuda and n > 100_000) else sizes.repeats
        rows.append(bench_sampling(device, n, steps, repeats, fast, bf16=cuda))
    rows.append(bench_recording(device, sizes.record_n, sizes.sample_steps[0], 1 if quick else 2))
    return {
        "device": device_description(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "dtype": "float32" + (" (bf16 column: bfloat16 autocast)" if cuda else ""),
        "fast_path": fast or "off",
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
