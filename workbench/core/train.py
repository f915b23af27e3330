"""The trainer: model, EMA, optimiser and a step loop that reports and can be stopped.

:class:`Trainer` owns everything that a checkpoint must restore (weights, EMA weights, optimiser
moments, step, RNG state) and exposes it as a plain ``state_dict`` of tensors and numbers. Its
:meth:`Trainer.run` is the long work: it calls ``on_progress`` every ``log_every`` steps, checks
``cancel`` after every step, and hands itself to ``on_checkpoint`` every ``checkpoint_every``
steps. Files are not its business: the run-folder layer (``workbench.io.runs``) writes them, and
the GUI and the CLI both wrap that.

Learning rate: linear warm-up over ``warmup`` steps, then constant, cosine or linear decay to 0
at ``steps`` (a pure function of the step, so resuming needs no scheduler state).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from workbench.core.data import DataSet, build_dataset
from workbench.core.losses import build_loss
from workbench.core.nets import build_score_model
from workbench.core.sde import build_sde
from workbench.errors import ConfigError, WorkbenchError

if TYPE_CHECKING:
    from workbench.config import ExperimentConfig

__all__ = [
    "Progress",
    "TrainResult",
    "Trainer",
    "learning_rate",
    "resolve_device",
]


def _section_values(section: Any) -> dict[str, Any]:
    """A fixed config section's keys and values (its declared PARAMS)."""
    return {p.name: getattr(section, p.name) for p in section.PARAMS}


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else the CPU; a CUDA request without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                "train.device",
                f"{name!r} was asked for, but this torch ({torch.__version__}) sees no CUDA "
                "device; use 'auto' or 'cpu'",
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                "train.device",
                f"{name!r} does not exist; {torch.cuda.device_count()} CUDA device(s) found",
            )
    return device


def device_description(device: torch.device) -> str:
    """What the status bar and the bench print: the GPU's name or "CPU (n threads)"."""
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    return f"CPU ({torch.get_num_threads()} threads)"


def learning_rate(step: int, base: float, warmup: int, total: int, schedule: str) -> float:
    """The learning rate for optimiser step ``step`` (0-based)."""
    warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    progress = min(1.0, step / max(1, total))
    decay = _SCHEDULES[schedule](progress)
    return base * warm * decay


_SCHEDULES: dict[str, Callable[[float], float]] = {
    "constant": lambda p: 1.0,
    "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
    "linear": lambda p: 1.0 - p,
}


@dataclass(frozen=True)
class Progress:
    """One report from the step loop; ``loss`` is the mean over the steps since the last one."""

    step: int
    total: int
    loss: float
    wall_time: float
    lr: float
    grad_norm: float
    steps_per_s: float


@dataclass(frozen=True)
class TrainResult:
    """How a run ended: ``done``, ``cancelled`` or ``diverged`` (non-finite loss)."""

    status: str
    step: int
    message: str


class Trainer:
    """Trains the score model of an experiment config."""

    def __init__(
        self,
        config: ExperimentConfig,
        device: str | torch.device | None = None,
        dataset: DataSet | None = None,
    ) -> None:
        self.config = config
        self.device = (
            resolve_device(config.train.device) if device is None else torch.device(device)
        )
        tc = config.train
        self.dataset = dataset or build_dataset(config.data.name, dict(config.data.params))
        self.normalizer = self.dataset.normalizer()
        self.sde = build_sde(config.sde.kind, dict(config.sde.params))
        mixture = self.dataset.mixture()
        if mixture is not None:
            mixture = self.normalizer.to_model_mixture(mixture)
        # Initial weights from the experiment's seed, without touching the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(tc.seed)
            self.model = build_score_model(
                config.model.kind,
                _section_values(config.model),
                self.sde,
                self.dataset.sample_shape,
                mixture,
            ).to(self.device)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not self.trainable:
            raise ConfigError(
                "model.kind",
                f"the {config.model.kind!r} model has nothing to train; sample from it directly",
            )
        self.ema_model = copy.deepcopy(self.model).requires_grad_(False)
        self.ema_params = list(self.ema_model.parameters())
        self.loss_fn = build_loss(config.loss.kind, _section_values(config.loss), self.sde)

        # The training set: n points drawn once with the experiment's seed, in model units.
        data_gen = torch.Generator().manual_seed(tc.seed)
        x = self.dataset.sample(config.data.n, data_gen, dtype=torch.float32)
        self.data = self.normalizer.to_model(x.to(torch.float64)).to(torch.float32)
        self.data = self.data.to(self.device)
        if tc.batch_size > self.data.shape[0]:
            raise ConfigError(
                "train.batch_size",
                f"{tc.batch_size} is larger than the data set ({self.data.shape[0]} points)",
            )

        self.generator = torch.Generator(device=self.device).manual_seed(tc.seed + 1)
        opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[tc.optimizer]
        # The fused kernels update every parameter in one pass: about 3x faster than the
        # foreach path on the CPU as well as on CUDA.
        self.optimizer = opt_cls(self.trainable, lr=tc.lr, weight_decay=tc.weight_decay, fused=True)
        self.step = 0
        self.wall_time = 0.0
        # bf16 autocast only where it pays: on the CPU it is slower than fp32.
        self.autocast = tc.precision == "bf16" and self.device.type == "cuda"

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly; tensors and plain values only."""
        from workbench.config import to_toml  # config imports core; import here avoids a cycle

        return {
            "step": self.step,
            "wall_time": self.wall_time,
            "config": to_toml(self.config),
            "model": self.model.state_dict(),
            "ema": self.ema_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; a different network is a clear error."""
        try:
            self.model.load_state_dict(state["model"])
            self.ema_model.load_state_dict(state["ema"])
        except (RuntimeError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise WorkbenchError(
                "the checkpoint was saved for a different network than this config builds "
                f"({first}); check [model] against the run's config.toml"
            ) from None
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.generator.set_state(state["generator"].to(torch.uint8))
            self.step = int(state["step"])
            self.wall_time = float(state.get("wall_time", 0.0))
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as exc:
            raise WorkbenchError(f"the checkpoint is incomplete or damaged: {exc}") from None

    # -- the step -----------------------------------------------------------------------------
    def _set_lr(self) -> float:
        tc = self.config.train
        lr = learning_rate(self.step, tc.lr, tc.warmup, tc.steps, tc.schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def train_step(self) -> tuple[Tensor, Tensor]:
        """One optimiser step; returns (loss, grad norm) as device tensors (no host sync)."""
        tc = self.config.train
        idx = torch.randint(
            self.data.shape[0], (tc.batch_size,), generator=self.generator, device=self.device
        )
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
            loss = self.loss_fn(self.model, self.data[idx], generator=self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            grad_norm = nn.utils.clip_grad_norm_(self.trainable, tc.grad_clip, foreach=True)
        else:
            grads = [p.grad for p in self.trainable if p.grad is not None]
            grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        return loss.detach(), grad_norm.detach()

    def ema_decay(self) -> float:
        """min(ema, (1 + k)/(10 + k)) at update k: the average forgets the random initial
        weights within a few hundred steps instead of ~1/(1 - ema) (TensorFlow's num_updates)."""
        k = self.step
        return min(self.config.train.ema, (1.0 + k) / (10.0 + k))

    @torch.no_grad()
    def update_ema(self) -> None:
        # EMA by one fused foreach op instead of a Python loop over parameters.
        torch._foreach_lerp_(self.ema_params, self.trainable, 1.0 - self.ema_decay())

    # -- the loop -----------------------------------------------------------------------------
    def run(
        self,
        steps: int | None = None,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        cancel: Callable[[], bool] | None = None,
        on_checkpoint: Callable[[Trainer], None] | None = None,
        on_eval: Callable[[int, nn.Module], None] | None = None,
        eval_every: int = 0,
    ) -> TrainResult:
        """Train until step ``steps`` (default: ``train.steps``), a cancel, or a bad loss.

        A non-finite loss is caught before its update is applied, so the model in memory, and
        the last checkpoint on disk, stay the last good ones.
        """
        tc = self.config.train
        target = tc.steps if steps is None else int(steps)
        log_every = max(1, tc.log_every)
        loss_sum = torch.zeros((), device=self.device)
        count = 0
        started = time.perf_counter()
        offset = self.wall_time
        last_report = (self.step, started)
        self.model.train()
        while self.step < target:
            lr = self._set_lr()
            loss, grad_norm = self.train_step()
            # Read back every step: the check keeps a bad update from ever being applied.
            if not bool(torch.isfinite(loss)) or not bool(torch.isfinite(grad_norm)):
                what = "loss" if not bool(torch.isfinite(loss)) else "gradient"
                self.wall_time = offset + time.perf_counter() - started
                return TrainResult(
                    "diverged",
                    self.step,
                    f"training stopped at step {self.step + 1}: the {what} became "
                    f"{float(loss) if what == 'loss' else float(grad_norm)}; the model and the "
                    "last checkpoint are kept as they were before it; try a smaller train.lr "
                    "or a grad_clip",
                )
            self.optimizer.step()
            self.update_ema()
            self.step += 1
            loss_sum += loss
            count += 1
            self.wall_time = offset + time.perf_counter() - started
            if on_progress is not None and (self.step % log_every == 0 or self.step == target):
                now = time.perf_counter()
                rate = (self.step - last_report[0]) / max(now - last_report[1], 1e-9)
                last_report = (self.step, now)
                on_progress(
                    Progress(
                        step=self.step,
                        total=target,
                        loss=float(loss_sum) / count,
                        wall_time=self.wall_time,
                        lr=lr,
                        grad_norm=float(grad_norm),
                        steps_per_s=rate,
                    )
                )
                loss_sum.zero_()
                count = 0
            if on_checkpoint is not None and self.step % tc.checkpoint_every == 0:
                on_checkpoint(self)
            if on_eval is not None and eval_every > 0 and self.step % eval_every == 0:
                on_eval(self.step, self.ema_model)
            if cancel is not None and cancel():
                return TrainResult("cancelled", self.step, f"cancelled at step {self.step}")
        return TrainResult("done", self.step, f"trained to step {self.step}")
