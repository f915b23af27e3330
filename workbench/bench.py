"""``sde-workbench bench``: the workbench's own paths against a plain PyTorch loop, same run.

Each row times one piece of work both ways on the same device, with the same network class,
the same maths and the same batch, so the ratio says what the workbench's machinery costs or
saves. Speed targets live here, not in the tests (timings on shared CI machines are noise).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from workbench.config import default_config
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


def run_bench(device_name: str = "auto", quick: bool = False) -> dict:
    """All rows for one device, with what they ran on."""
    device = resolve_device(device_name)
    repeats = 2 if quick else 5
    rows = [bench_training(device, batch=4096, repeats=repeats)]
    if device.type == "cuda":
        rows.append(bench_training(device, batch=65536, repeats=repeats))
    return {
        "device": device_description(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "dtype": "float32",
        "rows": [{**asdict(r), "speedup": r.speedup} for r in rows],
    }


def format_table(report: dict) -> str:
    lines = [
        f"device: {report['device']}   torch {report['torch']}   dtype {report['dtype']}",
        f"{'work':<46} {'workbench':>12} {'plain loop':>12} {'speed-up':>9}",
    ]
    for row in report["rows"]:
        unit = row["unit"]
        lines.append(
            f"{row['work']:<46} {row['workbench_ms']:>9.3f} {unit:<2} "
            f"{row['plain_ms']:>9.3f} {unit:<2} {row['speedup']:>8.2f}x"
        )
    return "\n".join(lines)
