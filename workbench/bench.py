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
from workbench.core.samplers import build_sampler, sample
from workbench.core.train import Trainer, device_description, resolve_device

__all__ = ["BenchRow", "bench_training", "run_bench"]


@dataclass(frozen=True)
class BenchRow:
    work: str
    workbench_ms: float
    plain_ms: float
    unit: str

    @property
    def speedup(self) -> float:
        return self.plain_ms / self.workbench_ms if self.workbench_ms > 0 else float("nan")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_pair(
    first: Callable[[], None], second: Callable[[], None], device: torch.device, repeats: int
) -> tuple[float, float]:
    """Best wall time of each of two pieces of work, timed alternately.

    Alternating keeps slow drifts of the machine (other load, clocks) from favouring either
    side; the minimum over repeats is the least noisy estimate of what the work itself costs.
    """
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for i, fn in enumerate((first, second)):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            best[i] = min(best[i], time.perf_counter() - start)
    return best[0], best[1]


def bench_training(
    device: torch.device, batch: int = 4096, steps: int = 20, repeats: int = 5
) -> BenchRow:
    """One DSM step of the default 3x256 MLP: the Trainer against a textbook loop."""
    cfg = default_config().with_overrides(
        {
            "train.batch_size": batch,
            "train.device": str(device),
            "train.steps": 10**9,
            "train.warmup": 0,
        }
    )
    trainer = Trainer(cfg, device=device)
    trainer.run(steps=trainer.step + 5)  # warm-up: allocator, kernels, lazy init

    def ours() -> None:
        trainer.run(steps=trainer.step + steps)

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

    ours_s, plain_s = _time_pair(ours, plain, device, repeats)
    ours_s, plain_s = ours_s / steps, plain_s / steps
    return BenchRow(
        f"DSM training step, MLP 3x256, batch {batch}", ours_s * 1e3, plain_s * 1e3, "ms"
    )


def _sampling_setup(device: torch.device, n: int) -> tuple[Any, Any, Any]:
    cfg = default_config().with_overrides(
        {"train.device": str(device), "sample.n": n, "sample.sampler": "em"}
    )
    trainer = Trainer(cfg.with_overrides({"train.batch_size": 1024}), device=device)
    model = trainer.ema_model.eval().requires_grad_(False)
    return cfg, model, trainer.sde


def bench_sampling(device: torch.device, n: int, steps: int, repeats: int = 3) -> BenchRow:
    """Reverse-SDE Euler–Maruyama with the 3x256 MLP: the workbench sampler against the
    textbook loop (score from the eps-net, drift a x - g^2 score, noise g sqrt(dt))."""
    cfg, model, sde = _sampling_setup(device, n)
    params = {p.name: getattr(cfg.sample, p.name) for p in cfg.sample.PARAMS}
    params.update(steps=steps, denoise=False)
    sampler = build_sampler(sde, model, params)
    net = model.net
    grid = torch.linspace(sde.T, cfg.sample.eps, steps + 1, dtype=torch.float64)

    @torch.no_grad()
    def ours() -> None:
        for _ in sample(sampler, n, (2,), None, device):
            pass

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

    ours()  # warm-up
    plain()
    ours_s, plain_s = _time_pair(ours, plain, device, repeats)
    scale = 1000 / steps  # reported per 1000 steps, the reference figure's unit
    return BenchRow(
        f"reverse-SDE EM, 1000 steps, {n} particles"
        + ("" if steps == 1000 else f" (x{scale:g} of {steps})"),
        ours_s * scale * 1e3,
        plain_s * scale * 1e3,
        "ms",
    )


def bench_recording(device: torch.device, n: int, steps: int, repeats: int = 2) -> BenchRow:
    """The cost of writing every 10th row to HDF5: sampling to a file with record_every = 10
    against the same run keeping only the final samples."""
    import tempfile

    from workbench.io.sampling import sample_to_file

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


def run_bench(device_name: str = "auto", quick: bool = False) -> dict:
    """All rows for one device, with what they ran on."""
    device = resolve_device(device_name)
    repeats = 2 if quick else 5
    rows = [bench_training(device, batch=4096, repeats=repeats)]
    if device.type == "cuda":
        rows.append(bench_training(device, batch=65536, repeats=repeats))
    # The CPU cannot run 262144 particles x 1000 steps in a bench's time: it runs fewer steps
    # and reports per 1000 (every step costs the same).
    cpu = device.type == "cpu"
    steps = 10 if quick else (100 if cpu else 1000)
    big_steps = 1 if quick else (5 if cpu else 1000)
    rows.append(bench_sampling(device, 4096, steps, repeats=1 if quick else 3))
    rows.append(bench_sampling(device, 262144, big_steps, repeats=1 if quick or cpu else 3))
    rows.append(bench_recording(device, 4096, steps, repeats=1 if quick else 2))
    return {
        "device": device_description(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "dtype": "float32",
        "rows": [{**asdict(r), "speedup": r.speedup} for r in rows],
    }


def _duration(ms: float) -> str:
    return f"{ms:9.3f} ms" if ms < 10_000 else f"{ms / 1e3:9.2f} s "


def format_table(report: dict) -> str:
    lines = [
        f"device: {report['device']}   torch {report['torch']}   dtype {report['dtype']}",
        f"{'work':<62} {'workbench':>12} {'reference':>12} {'ratio':>7}",
    ]
    for row in report["rows"]:
        lines.append(
            f"{row['work']:<62} {_duration(row['workbench_ms'])} {_duration(row['plain_ms'])} "
            f"{row['speedup']:>6.2f}x"
        )
    lines.append(
        "reference: a plain PyTorch loop of the same maths (for the recording row: the same "
        "sampling without recording); ratio = reference / workbench, > 1 is faster"
    )
    return "\n".join(lines)
