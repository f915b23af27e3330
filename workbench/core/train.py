"""The trainer: model, EMA, optimiser and a step loop that reports and can be stopped.

:class:`Trainer` owns everything that a checkpoint must restore (weights, EMA weights, optimiser
moments, step, RNG state) and exposes it as a plain ``state_dict`` of tensors and numbers. Its
:meth:`Trainer.run` is the long work: it calls ``on_progress`` every ``log_every`` steps, checks
``cancel`` after every step, and hands itself to ``on_checkpoint`` every ``checkpoint_every``
steps. Files are not its business: the training job (``workbench.jobs.train``) writes them, and
the GUI and the CLI both wrap that.

Learning rate: linear warm-up over ``warmup`` steps, then constant, cosine or linear decay to 0
at ``steps`` (a pure function of the step, so resuming needs no scheduler state).

No host synchronisation inside the step loop: the loss and the gradient norm stay on the
device, and a device-side flag ``ok`` (every step so far finite) gates the update. A step whose
loss or gradient norm is not finite, and every step after it, is skipped on the device: Adam's
fused kernel gets ``found_inf = 1 - ok`` (it leaves weights, moments and step counts as they
were) and the EMA moves with weight (1 - decay) * ok. The host reads ``ok`` back every
``log_every`` steps (and before a checkpoint, an evaluation or a return), so a divergence is
reported at the step where it happened, with the model and the checkpoints still the last good
ones, exactly as if it had been caught at once.

Fast paths (``train.fast_path``, :mod:`workbench.core.fast`): ``cuda_graph`` captures the
whole step (batch draw, loss, backward, clipping, the guard, fused Adam with tensor learning
rate, EMA) into one CUDA graph after a few eager warm-up steps, and replays it; ``compile``
runs the loss through ``torch.compile``; ``auto`` is ``cuda_graph`` on CUDA and the plain step
on the CPU. A subclass that overrides :meth:`Trainer.train_step` (the distributed trainer)
keeps its own step, eagerly.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from workbench.core.data import DataSet, Normalizer
from workbench.core.experiment import ExperimentSections, experiment_of
from workbench.core.fast import resolve_fast_path
from workbench.core.guidance import Conditioned, drop_labels
from workbench.core.losses import build_loss
from workbench.errors import ConfigError, WorkbenchError

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
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
    decay = SCHEDULES[schedule](progress)
    return base * warm * decay


#: ``train.schedule``: the decay factor after warm-up as a function of progress in [0, 1]
SCHEDULES: dict[str, Callable[[float], float]] = {
    "constant": lambda p: 1.0,
    "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
    "linear": lambda p: 1.0 - p,
}

#: ``train.optimizer``
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
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
        config: ExperimentSections,
        device: str | torch.device | None = None,
        dataset: DataSet | None = None,
    ) -> None:
        self.config = config
        self.device = (
            resolve_device(config.train.device) if device is None else torch.device(device)
        )
        tc = config.train
        # initial weights from the experiment's seed (the caller's global RNG is left alone)
        built = experiment_of(config, with_model=True, dataset=dataset, seed=tc.seed)
        self.dataset, self.normalizer, self.sde = built.dataset, built.normalizer, built.sde
        assert built.model is not None
        self.model = built.model.to(self.device)
        self.trainable: list[Tensor] = [p for p in self.model.parameters() if p.requires_grad]
        if not self.trainable:
            raise ConfigError(
                "model.kind",
                f"the {config.model.kind!r} model has nothing to train; sample from it directly",
            )
        self.ema_model = copy.deepcopy(self.model).requires_grad_(False)
        self.ema_params: list[Tensor] = list(self.ema_model.parameters())
        self.loss_fn = build_loss(config.loss.kind, _section_values(config.loss), self.sde)

        # The training set: n points drawn once with the experiment's seed, in model units.
        data_gen = torch.Generator().manual_seed(tc.seed)
        #: the training points' classes, for a conditional network (else None); drawn with
        #: the points (the same points an unconditional run draws)
        self.labels: Tensor | None = None
        if getattr(self.model, "num_classes", 0):
            if type(self).train_step is not Trainer.train_step:
                # a subclass's own step (the distributed one) would train the null label only
                raise ConfigError(
                    "model.conditional",
                    "conditional networks train in one process for now; run without torchrun",
                )
            x, y = self.dataset.sample_with_labels(config.data.n, data_gen, dtype=torch.float32)
            self.labels = y.to(self.device)
        else:
            x = self.dataset.sample(config.data.n, data_gen, dtype=torch.float32)
        self.data = self.normalizer.to_model(x.to(torch.float64)).to(torch.float32)
        self.data = self.data.to(self.device)
        if tc.batch_size > self.data.shape[0]:
            raise ConfigError(
                "train.batch_size",
                f"{tc.batch_size} is larger than the data set ({self.data.shape[0]} points)",
            )

        # what the checkpoint records about the data, taken once, right after they were read
        self.data_fingerprint = self.dataset.fingerprint()

        self.generator = torch.Generator(device=self.device).manual_seed(tc.seed + 1)
        self.fast_path = resolve_fast_path(tc.fast_path, self.device, "train.fast_path")
        # the whole-step graph only for this class's own step (a subclass's step may talk to
        # other processes or read values back)
        if self.fast_path == "cuda_graph" and type(self).train_step is not Trainer.train_step:
            self.fast_path = "off"
        graphed = self.fast_path == "cuda_graph"
        opt_cls = OPTIMIZERS[tc.optimizer]
        # The fused kernels update every parameter in one pass: about 3x faster than the
        # foreach path on the CPU as well as on CUDA. In a graph the learning rate is a
        # device tensor that is refilled before each replay.
        lr: float | Tensor = torch.tensor(tc.lr, device=self.device) if graphed else tc.lr
        self.optimizer = opt_cls(
            self.trainable,
            lr=lr,
            weight_decay=tc.weight_decay,
            fused=True,
            **({"capturable": True} if graphed else {}),
        )
        self.step = 0
        self.wall_time = 0.0
        # bf16 autocast only where it pays: on the CPU it is slower than fp32.
        self.autocast = tc.precision == "bf16" and self.device.type == "cuda"
        self._loss = self._plain_loss
        if self.fast_path == "compile":
            self._loss = torch.compile(self._plain_loss, dynamic=False)
        self._graph: _StepGraph | None = None
        #: why the graph was not used, when fast_path was auto and capture failed; the
        #: run's result message ends with it
        self.fast_path_note = ""

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly; tensors and plain values only.

        Besides the weights it holds what the model means: under ``data`` the normaliser the
        model's units are defined by (``normalizer``, :meth:`Normalizer.to_attrs`) and the
        training data's ``fingerprint`` (:meth:`DataSet.fingerprint`), so a run can be sampled
        without its data and a changed data file is noticed. The experiment itself (``config``,
        TOML) is added by ``workbench.io.runs.checkpoint_state``: core never imports the config.
        """
        return {
            "step": self.step,
            "wall_time": self.wall_time,
            "data": {
                "normalizer": self.normalizer.to_attrs(),
                "fingerprint": self.data_fingerprint,
            },
            "model": self.model.state_dict(),
            "ema": self.ema_model.state_dict(),
            "optimizer": self._optimizer_state(),
            "generator": self.generator.get_state(),
        }

    def _optimizer_state(self) -> dict[str, Any]:
        # a graphed run keeps its learning rate in a device tensor; the checkpoint stores a
        # number, so that it loads on any device and into any path
        state = self.optimizer.state_dict()
        for group in state["param_groups"]:
            if isinstance(group.get("lr"), Tensor):
                group["lr"] = float(group["lr"])
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; a different network or normaliser is a clear error.

        A checkpoint that stores its normaliser must be resumed by a trainer built with it
        (``dataset=dataset.with_normalizer(...)``): weights trained in one set of units would
        otherwise be trained on in another. Older checkpoints without one are not checked.
        """
        data = state.get("data") if isinstance(state, dict) else None
        stored = data.get("normalizer") if isinstance(data, dict) else None
        if stored is not None:
            try:
                same = Normalizer.from_attrs(stored) == self.normalizer
            except (ValueError, KeyError, TypeError) as exc:
                raise WorkbenchError(f"the checkpoint's normaliser is damaged: {exc}") from None
            if not same:
                raise WorkbenchError(
                    "the checkpoint was trained with another normalisation of the data than "
                    "this trainer's; resume it with its stored normaliser"
                )
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
            if self.fast_path == "cuda_graph":  # a graph reads the rate from the device
                for group in self.optimizer.param_groups:
                    group["lr"] = torch.as_tensor(float(group["lr"]), device=self.device)
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
            if isinstance(group["lr"], Tensor):
                group["lr"].fill_(lr)  # a graph reads it from the device: no sync, no recapture
            else:
                group["lr"] = lr
        return lr

    def _plain_loss(self, x0: Tensor, y: Tensor | None = None) -> Tensor:
        model: Any = self.model
        if y is not None:  # a conditional network: labels bound, a share p_uncond dropped
            p_uncond = float(getattr(self.config.train, "p_uncond", 0.0))
            y = drop_labels(y, p_uncond, model.num_classes, self.generator)
            model = Conditioned(model, y)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
            return self.loss_fn(model, x0, generator=self.generator)

    def train_step(self) -> tuple[Tensor, Tensor]:
        """The gradient of one step (no update); returns (loss, grad norm) as device tensors
        (no host sync). :meth:`run` then applies the guarded update."""
        tc = self.config.train
        idx = torch.randint(
            self.data.shape[0], (tc.batch_size,), generator=self.generator, device=self.device
        )
        if self.labels is None:
            loss = self._loss(self.data[idx])
        else:
            loss = self._loss(self.data[idx], self.labels[idx])
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
    def update_ema(self, gate: Tensor | None = None) -> None:
        """ema <- ema + w (param - ema), w = (1 - decay), times ``gate`` (a 0-d device tensor,
        1 or 0) when given: the skip of a non-finite step without a host sync."""
        # EMA by one fused foreach op instead of a Python loop over parameters.
        w: float | Tensor = 1.0 - self.ema_decay()
        if gate is not None:
            w = gate * w
        # torch's stubs give the weight as a number only; the op also takes a 0-d tensor
        torch._foreach_lerp_(self.ema_params, self.trainable, w)  # type: ignore[arg-type]

    @torch.no_grad()
    def _guarded_update(self, loss: Tensor, grad_norm: Tensor, guard: _Guard) -> None:
        """Adam and the EMA, both skipped on the device unless every step so far was finite."""
        guard.observe(loss, grad_norm, self.step)
        self.optimizer.found_inf = guard.skip  # type: ignore[attr-defined]
        self.optimizer.grad_scale = None  # type: ignore[attr-defined]
        try:
            self.optimizer.step()
        finally:
            self.optimizer.found_inf = None  # type: ignore[attr-defined]
        self.update_ema(guard.ok_float)

    def _graph_step(self, guard: _Guard) -> tuple[Tensor, Tensor] | None:
        """One step through the CUDA graph (warm-up, capture or replay); None when the graph is
        not in use. A capture that fails under ``auto`` falls back to plain steps, with a
        note; asked for explicitly, it is an error."""
        if self.fast_path != "cuda_graph":
            return None
        if self._graph is None:
            self._graph = _StepGraph(self, guard)
        try:
            return self._graph.step(1.0 - self.ema_decay())
        except Exception as exc:
            if self.config.train.fast_path != "auto" or self._graph.graph is not None:
                raise WorkbenchError(f"could not capture the training step: {exc}") from exc
            # nothing of the failed capture ran on the device: this step starts again plainly
            self.fast_path, self._graph = "off", None
            self.fast_path_note = f"CUDA graph capture failed ({exc}); plain steps"
            return None

    @property
    def _guard(self) -> _Guard:
        # one per trainer: a captured graph refers to its tensors
        guard = self.__dict__.get("_guard_state")
        if guard is None:
            guard = self.__dict__["_guard_state"] = _Guard(self.device)
        return guard

    def _diverged(self, guard: _Guard, offset: float, started: float) -> TrainResult:
        bad = int(guard.bad_step)
        loss, grad_norm = guard.bad_values.tolist()
        # the steps from the bad one on were skipped on the device: the state is that of step
        # `bad`, and so is the count
        self.step = bad
        self.wall_time = offset + time.perf_counter() - started
        what = "loss" if not math.isfinite(loss) else "gradient"
        return TrainResult(
            "diverged",
            self.step,
            f"training stopped at step {bad + 1}: the {what} became "
            f"{loss if what == 'loss' else grad_norm}; the model and the "
            "last checkpoint are kept as they were before it; try a smaller train.lr "
            "or a grad_clip",
        )

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
        the last checkpoint on disk, stay the last good ones: the update is skipped on the
        device and the host learns of it at the next read-back (see the module docstring).
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
        guard = self._guard
        guard.reset()
        while self.step < target:
            lr = self._set_lr()
            guard.step.fill_(self.step)
            stepped = self._graph_step(guard)
            if stepped is not None:
                loss, grad_norm = stepped
            else:
                loss, grad_norm = self.train_step()
                self._guarded_update(loss, grad_norm, guard)
            self.step += 1
            loss_sum += torch.where(guard.ok, loss.detach().float(), 0.0)
            count += 1
            self.wall_time = offset + time.perf_counter() - started
            report = on_progress is not None and (self.step % log_every == 0 or self.step == target)
            save = on_checkpoint is not None and self.step % tc.checkpoint_every == 0
            evaluate = on_eval is not None and eval_every > 0 and self.step % eval_every == 0
            # the one host read-back: every log_every steps, and before anything leaves the loop
            # (one transfer: the flag, the loss sum and the gradient norm together)
            check = report or save or evaluate or self.step % log_every == 0
            if check or self.step == target:
                ok, total_loss, last_norm = torch.stack(
                    [guard.ok_float, loss_sum, grad_norm.detach().float()]
                ).tolist()
                if ok == 0.0:
                    return self._diverged(guard, offset, started)
            if report:
                now = time.perf_counter()
                rate = (self.step - last_report[0]) / max(now - last_report[1], 1e-9)
                last_report = (self.step, now)
                on_progress(  # type: ignore[misc]
                    Progress(
                        step=self.step,
                        total=target,
                        loss=total_loss / count,
                        wall_time=self.wall_time,
                        lr=lr,
                        grad_norm=last_norm,
                        steps_per_s=rate,
                    )
                )
                loss_sum.zero_()
                count = 0
            if save:
                on_checkpoint(self)  # type: ignore[misc]
            if evaluate:
                on_eval(self.step, self.ema_model)  # type: ignore[misc]
            if cancel is not None and cancel():
                if guard.failed():
                    return self._diverged(guard, offset, started)
                return TrainResult(
                    "cancelled", self.step, f"cancelled at step {self.step}{self._note()}"
                )
        return TrainResult("done", self.step, f"trained to step {self.step}{self._note()}")

    def _note(self) -> str:
        # the result's message is what the CLI prints and the GUI logs: a fallback shows there
        return f" ({self.fast_path_note})" if self.fast_path_note else ""


class _Guard:
    """Device-side record of the run's finiteness: ``ok`` (every step so far had a finite loss
    and gradient norm), the first bad step and its (loss, grad norm). Updated without any
    host synchronisation; :meth:`failed` is the read-back."""

    def __init__(self, device: torch.device) -> None:
        self.ok = torch.ones((), dtype=torch.bool, device=device)
        self.ok_float = torch.ones((), device=device)
        self.skip = torch.zeros((), device=device)  # Adam's found_inf: 1.0 skips the update
        self.step = torch.zeros((), dtype=torch.int64, device=device)  # the step being taken
        self.bad_step = torch.full((), -1, dtype=torch.int64, device=device)
        self.bad_values = torch.zeros(2, device=device)

    def reset(self) -> None:
        self.ok.fill_(True)
        self.ok_float.fill_(1.0)
        self.skip.zero_()
        self.bad_step.fill_(-1)
        self.bad_values.zero_()

    @torch.no_grad()
    def observe(self, loss: Tensor, grad_norm: Tensor, step: int | None = None) -> None:
        values = torch.stack([loss.detach().float(), grad_norm.detach().float()])
        finite = torch.isfinite(values).all()
        first = self.ok & ~finite
        self.bad_step.copy_(torch.where(first, self.step, self.bad_step))
        self.bad_values.copy_(torch.where(first, values, self.bad_values))
        self.ok.logical_and_(finite)
        self.ok_float.copy_(self.ok)
        self.skip.copy_(~self.ok)

    def failed(self) -> bool:
        return not bool(self.ok)


class _StepGraph:
    """The whole training step as one CUDA graph (PyTorch's whole-network capture recipe).

    Each :meth:`step` call takes exactly one training step. The first ``_WARMUP`` are eager
    steps on a side stream (lazy initialisation happens outside the graph, as the recipe asks;
    they are real steps of the run); the next one captures the step: batch indices, the loss
    with its randomness (the trainer's generator is registered with the graph, so each replay
    draws new numbers from it), backward, clipping, the guard, fused Adam (capturable, its
    learning rate a device tensor) and the EMA with its weight in a device tensor; that step
    and all later ones are replays. The trainer refills the learning rate and the guard's step
    before each call; the EMA weight is refilled here.
    """

    _WARMUP = 3

    def __init__(self, trainer: Trainer, guard: _Guard) -> None:
        if trainer.device.type != "cuda":
            raise WorkbenchError("a CUDA graph needs a CUDA device")
        self.trainer = trainer
        self.guard = guard
        self.ema_weight = torch.ones((), device=trainer.device)
        self.side = torch.cuda.Stream(trainer.device)
        self.warmups_left = self._WARMUP
        self.graph: Any = None

    def _update(self, loss: Tensor, grad_norm: Tensor) -> None:
        t = self.trainer
        self.guard.observe(loss, grad_norm)
        t.optimizer.found_inf = self.guard.skip  # type: ignore[attr-defined]
        t.optimizer.grad_scale = None  # type: ignore[attr-defined]
        t.optimizer.step()
        t.optimizer.found_inf = None  # type: ignore[attr-defined]
        with torch.no_grad():
            weight = self.ema_weight * self.guard.ok_float  # a 0-d tensor: see update_ema
            torch._foreach_lerp_(t.ema_params, t.trainable, weight)  # type: ignore[call-overload]

    def step(self, ema_weight: float) -> tuple[Tensor, Tensor]:
        self.ema_weight.fill_(ema_weight)
        device = self.trainer.device
        if self.warmups_left > 0:
            self.warmups_left -= 1
            self.side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(self.side):
                loss, grad_norm = self.trainer.train_step()
                self._update(loss, grad_norm)
            torch.cuda.current_stream(device).wait_stream(self.side)
            return loss, grad_norm
        if self.graph is None:
            graph = torch.cuda.CUDAGraph()
            register = getattr(graph, "register_generator_state", None)
            if register is not None:
                register(self.trainer.generator)
            with torch.cuda.graph(graph):
                self.loss, self.grad_norm = self.trainer.train_step()
                self._update(self.loss, self.grad_norm)
            self.graph = graph
        self.graph.replay()
        return self.loss, self.grad_norm
