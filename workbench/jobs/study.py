"""Studies: every sampler at every NFE budget, or every loss at one training budget, measured
against the exact truth of Gaussian-mixture data. The job behind ``sde-workbench study``.

Sampler study (:func:`sampler_study`): for each budget one prior draw x_T (seeded by the
study's seed and the budget's index) is shared by every sampler, each sampler runs at the step
count that costs that many score evaluations (:func:`workbench.core.study.steps_for_nfe`; an
adaptive solver runs at its tolerance and its actual count is recorded), and its samples are
measured in data units (:mod:`workbench.core.study`). Deterministic samplers also get their
pathwise error against rk45 at a tight tolerance from the same x_T.

Loss study (:func:`loss_study`): each loss trains the same model from the same seed for the
same number of steps; the trained weights' weighted score error e(t) is measured on a fixed grid
of t against the exact score, and the loss curve and wall time are kept.

Both write through :class:`workbench.io.study_file.StudyFile`, one entry at a time, flushed:
a cancelled or crashed study is resumed by running it again with the same arguments, which
skips the finished entries. ``progress(fraction, what)`` reports; ``cancel()`` stops after the
current solver or training step (the unfinished entry is not stored).
"""

from __future__ import annotations

import inspect
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from workbench.config import ExperimentConfig, to_toml
from workbench.core.analytic import AnalyticMarginal
from workbench.core.data import DataSet
from workbench.core.experiment import model_units_mixture
from workbench.core.losses import LOSSES
from workbench.core.odeint import METHODS
from workbench.core.params import did_you_mean
from workbench.core.samplers import SAMPLERS, build_sampler
from workbench.core.study import (
    floors,
    is_stochastic,
    pathwise_error,
    sample_metrics,
    score_error_curve,
    steps_for_nfe,
)
from workbench.core.train import Progress, Trainer, resolve_device
from workbench.errors import WorkbenchError
from workbench.io.study_file import StudyFile, csv_path
from workbench.jobs.sample import sample_params, sde_for_sampling

__all__ = [
    "DEFAULT_NFE",
    "REFERENCE_TOL",
    "StudyResult",
    "check_losses",
    "loss_study",
    "parse_samplers",
    "sampler_study",
]

DEFAULT_NFE = (5, 10, 20, 50, 100)
#: rtol = atol of the rk45 solution the pathwise errors are measured against: near float32's
#: resolution (the states are float32), far below any budget's discretisation error
REFERENCE_TOL = 1e-6
#: the integrator of a sampler named without one whose config says rk45: a budget sweep needs
#: a fixed grid, and Heun is the second-order choice of Karras et al. 2022
FIXED_INTEGRATOR = "heun"
#: true data points the log-density gap's reference mean is taken over (at least n)
REFERENCE_POINTS = 50000
#: t grid of the loss study's error curves: geometric from T/100 to T
N_TIMES = 16

Progress_ = Callable[[float, str], None]


@dataclass(frozen=True)
class StudyResult:
    path: Path
    csv: Path
    kind: str  # "samplers" | "losses"
    status: str  # "done" | "cancelled"
    ran: int
    skipped: int
    seconds: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------------
def _unknown(option: str, what: str, name: str, names: Sequence[str]) -> WorkbenchError:
    hint = did_you_mean(name, list(names))
    return WorkbenchError(
        f"{option}: unknown {what} {name!r}{hint}; choose from: {', '.join(names)}"
    )


def parse_samplers(specs: Sequence[str]) -> list[tuple[str, str | None]]:
    """``NAME`` or ``NAME:INTEGRATOR`` (``ode:rk45``) for each spec, checked against the
    registries as they are now (a sampler registered later is a valid name)."""
    names = SAMPLERS.names()
    out: list[tuple[str, str | None]] = []
    if not specs:
        raise WorkbenchError("--samplers: name at least one sampler")
    for spec in specs:
        name, _, integrator = spec.strip().partition(":")
        if name not in names:
            raise _unknown("--samplers", "sampler", name, names)
        if integrator:
            if "integrator" not in inspect.signature(SAMPLERS.get(name).__init__).parameters:
                raise WorkbenchError(f"--samplers: the {name!r} sampler takes no integrator")
            if integrator not in METHODS.names():
                raise _unknown("--samplers", f"{name} integrator", integrator, METHODS.names())
        out.append((name, integrator or None))
    labels = [_label(s) for s in out]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise WorkbenchError(f"--samplers: {twice[0]!r} is named twice")
    return out


def _label(spec: tuple[str, str | None]) -> str:
    return spec[0] if spec[1] is None else f"{spec[0]}:{spec[1]}"


def check_losses(names: Sequence[str]) -> list[str]:
    """The loss names, checked against :data:`LOSSES`."""
    known = LOSSES.names()
    if not names:
        raise WorkbenchError("--losses: name at least one loss")
    for name in names:
        if name not in known:
            raise _unknown("--losses", "loss", name, known)
    if len(set(names)) != len(names):
        twice = next(x for x in names if list(names).count(x) > 1)
        raise WorkbenchError(f"--losses: {twice!r} is named twice")
    return list(names)


def _data_mixture(dataset: DataSet) -> Any:
    mixture = dataset.mixture()
    if mixture is None:
        raise WorkbenchError(
            f"a study measures against the exact law of the data, and the "
            f"{getattr(dataset, 'config_name', '') or 'chosen'} data set is not a Gaussian "
            "mixture (gmm1d, 8gaussians, gmm, ...)"
        )
    return mixture


def _tick(progress: Progress_ | None, fraction: float, what: str) -> None:
    if progress is not None:
        progress(min(max(fraction, 0.0), 1.0), what)


# ---------------------------------------------------------------------------------------------
# samplers
# ---------------------------------------------------------------------------------------------
class _SamplingSetup(NamedTuple):
    n: int
    seed: int
    mixture: Any
    device: torch.device
    normalizer: Any
    sde: Any
    model: nn.Module
    params: dict[str, Any]
    shape: tuple[int, ...]


def _sampling_setup(
    config: ExperimentConfig,
    model: nn.Module,
    dataset: DataSet,
    n: int | None,
    seed: int | None,
    device: str | torch.device | None,
) -> _SamplingSetup:
    """What every sampling study (samplers, guidance) starts from: its sample count and seed
    (the config's unless given), the data's mixture (refused when there is none), the device
    with the model on it, the normaliser, the SDE to sample, the [sample] params and shape."""
    n = int(config.sample.n if n is None else n)
    if n < 2:
        raise WorkbenchError(f"--n: a study needs at least 2 samples, got {n}")
    seed = int(config.sample.seed if seed is None else seed)
    mixture = _data_mixture(dataset)
    dev = resolve_device(config.train.device if device is None else str(device))
    return _SamplingSetup(
        n,
        seed,
        mixture,
        dev,
        dataset.normalizer(),
        sde_for_sampling(config, dataset),
        model.to(dev),
        sample_params(config),
        tuple(dataset.sample_shape),
    )


def sampler_study(
    config: ExperimentConfig,
    model: nn.Module,
    dataset: DataSet,
    out: str | os.PathLike[str],
    *,
    samplers: Sequence[str],
    nfe: Sequence[int] = DEFAULT_NFE,
    n: int | None = None,
    seed: int | None = None,
    source: str = "",
    device: str | torch.device | None = None,
    progress: Progress_ | None = None,
    cancel: Callable[[], bool] | None = None,
    reference_tol: float = REFERENCE_TOL,
) -> StudyResult:
    """Run every sampler of ``samplers`` (specs as :func:`parse_samplers` reads them) at every
    budget of ``nfe`` into ``out`` (resuming it if it holds this study), and the CSV beside it.
    ``n`` and ``seed`` default to the config's ``sample.n`` and ``sample.seed``."""
    started = time.perf_counter()
    specs = parse_samplers(samplers)
    budgets = [int(b) for b in nfe]
    if not budgets or any(b < 1 for b in budgets):
        raise WorkbenchError("--nfe: give positive whole numbers of score evaluations")
    if len(set(budgets)) != len(budgets):
        raise WorkbenchError("--nfe: a budget is named twice")
    n, seed, mixture, dev, normalizer, sde, model, base, shape = _sampling_setup(
        config, model, dataset, n, seed, device
    )
    labels = [_label(s) for s in specs]
    arguments = {
        "source": source,
        "samplers": labels,
        "nfe": budgets,
        "n": n,
        "seed": seed,
        "reference_tol": reference_tol,
    }

    def params(spec: tuple[str, str | None], steps: int) -> dict[str, Any]:
        p = {**base, "sampler": spec[0], "steps": steps}
        if spec[1] is not None:
            p["integrator"] = spec[1]
        elif base.get("integrator") in ("rk45",):
            p["integrator"] = FIXED_INTEGRATOR
        return p

    warnings: list[str] = []
    reference = mixture.sample(max(n, REFERENCE_POINTS), torch.Generator().manual_seed(seed + 1))
    reference = reference.to(torch.float64)
    ran = skipped = 0
    total = len(specs) * len(budgets)
    with StudyFile.open(
        out, "samplers", arguments, to_toml(config), names=labels, nfe=budgets
    ) as study:
        if not study.has_floors():
            _tick(progress, 0.0, "noise floors")
            study.write_floors(floors(mixture, n, reference, seed + 2))
        done = study.done()
        for j, budget in enumerate(budgets):
            todo = [i for i in range(len(specs)) if not done[i, j]]
            skipped += len(specs) - len(todo)
            if not todo:
                continue
            prior = torch.Generator(device=dev).manual_seed(seed * 1009 + j)
            x_T = sde.prior_sample((n, *shape), generator=prior, dtype=torch.float32, device=dev)
            x_ref = None
            for i in todo:
                spec = specs[i]
                what = f"{labels[i]} at {budget} NFE"
                _tick(progress, (ran + skipped) / total, what)

                def make(steps: int, score: Any, spec: tuple[str, str | None] = spec) -> Any:
                    return build_sampler(sde, score, params(spec, steps))

                probe = make(1, model)
                if probe.adaptive:
                    steps = -1
                    sampler = probe
                else:
                    steps, _ = steps_for_nfe(make, budget, shape)
                    sampler = make(steps, model)
                noise = torch.Generator(device=dev).manual_seed(seed * 1009 + 7919 * (i + 1) + j)
                timed = _timed_samples(sampler, x_T, noise, cancel, normalizer)
                if timed is None:
                    return _finish(study, out, "cancelled", ran, skipped, started, warnings)
                x, seconds = timed
                finite = bool(torch.isfinite(x).all())
                values: dict[str, float] = {"seconds": seconds}
                if finite:
                    values.update(sample_metrics(mixture, x, reference, seed + 3 + j))
                else:
                    warnings.append(f"{what}: samples not finite; its measurements are left NaN")
                if finite and not is_stochastic(sampler):
                    if x_ref is None:
                        x_ref = _reference_solution(sde, model, base, x_T, reference_tol, cancel)
                        if x_ref is None:
                            return _finish(study, out, "cancelled", ran, skipped, started, warnings)
                        x_ref = normalizer.to_data(x_ref.reshape(n, -1).to("cpu", torch.float64))
                    values["pathwise_error"] = pathwise_error(x, x_ref)
                _write_entry(study, out, i, j, values, sampler, steps, x)
                ran += 1
        _tick(progress, 1.0, "done")
        return _finish(study, out, "done", ran, skipped, started, warnings)


def _run(
    sampler: Any,
    x_T: torch.Tensor,
    generator: torch.Generator,
    cancel: Callable[[], bool] | None,
) -> torch.Tensor | None:
    """The sampler's final states, or None on a cancel (checked after every solver step)."""
    last = None
    with torch.no_grad():
        for row in sampler.run(x_T, generator):
            last = row.x
            if cancel is not None and cancel():
                return None
    if last is None:
        raise WorkbenchError("the sampler produced nothing")
    return last


def _timed_samples(
    sampler: Any,
    x_T: torch.Tensor,
    noise: torch.Generator,
    cancel: Callable[[], bool] | None,
    normalizer: Any,
) -> tuple[torch.Tensor, float] | None:
    """(the final samples in data units, (n, dim) float64 on the CPU, the run's wall time in
    seconds, the device's queue drained), or None on a cancel."""
    dev = x_T.device
    t0 = time.perf_counter()
    final = _run(sampler, x_T, noise, cancel)
    if final is None:
        return None
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    return normalizer.to_data(final.reshape(len(x_T), -1).to("cpu", torch.float64)), seconds


def _write_entry(
    study: StudyFile,
    out: str | os.PathLike[str],
    i: int,
    j: int,
    values: dict[str, float],
    sampler: Any,
    steps: int,
    x: torch.Tensor,
) -> None:
    """Sampler i's entry at budget (or w) j with its samples and time grid, then the CSV."""
    study.write_sampler_entry(
        i,
        j,
        values,
        sampler.nfe,
        steps,
        time.time(),
        samples=x.numpy(),
        grid="" if sampler.adaptive else str(getattr(sampler, "grid", "")),
    )
    study.write_csv(csv_path(out))


def _reference_solution(
    sde: Any,
    model: nn.Module,
    base: dict[str, Any],
    x_T: torch.Tensor,
    tol: float,
    cancel: Callable[[], bool] | None,
) -> torch.Tensor | None:
    """The probability-flow ODE from x_T by rk45 at rtol = atol = ``tol``, with the config's
    eps and denoise: the solution every deterministic sampler is an approximation of."""
    ref = build_sampler(
        sde, model, {**base, "sampler": "ode", "integrator": "rk45", "rtol": tol, "atol": tol}
    )
    return _run(ref, x_T, torch.Generator(device=x_T.device).manual_seed(0), cancel)


def _finish(
    study: StudyFile,
    out: str | os.PathLike[str],
    status: str,
    ran: int,
    skipped: int,
    started: float,
    warnings: list[str],
) -> StudyResult:
    written = study.write_csv(csv_path(out))
    return StudyResult(
        Path(out),
        written,
        study.kind,
        status,
        ran,
        skipped,
        time.perf_counter() - started,
        study.rows(),
        warnings,
    )


# ---------------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------------
def loss_times(T: float, count: int = N_TIMES) -> np.ndarray:
    """The fixed t grid of the error curves: geometric from T/100 to T (the error's scale
    changes most near t = 0, where the data's fine structure is)."""
    return np.geomspace(T / 100.0, T, count)


def loss_study(
    config: ExperimentConfig,
    out: str | os.PathLike[str],
    *,
    losses: Sequence[str],
    steps: int | None = None,
    seed: int | None = None,
    n_eval: int = 2000,
    source: str = "",
    device: str | torch.device | None = None,
    progress: Progress_ | None = None,
    cancel: Callable[[], bool] | None = None,
) -> StudyResult:
    """Train the config's model with each loss of ``losses`` for ``steps`` steps (default
    ``train.steps``) from the same seed (default ``train.seed``), and store its weighted score
    error e(t) (:func:`workbench.core.study.score_error_curve`, ``n_eval`` points per t), its
    loss curve and its wall time. An ``analytic`` model has nothing to train: the study trains
    the default ``mlp`` in its place. The error is that of the trained weights themselves, not
    of their EMA, which lags ~1/(1 - decay) steps behind and would, on a short budget, measure
    the initial network."""
    started = time.perf_counter()
    names = check_losses(losses)
    steps = int(config.train.steps if steps is None else steps)
    if steps < 1:
        raise WorkbenchError(f"--steps: must be a positive number of steps, got {steps}")
    seed = int(config.train.seed if seed is None else seed)
    log_every = max(1, math.ceil(steps / 200))
    n_curve = math.ceil(steps / log_every)
    overrides: dict[str, Any] = {
        "train.steps": steps,
        "train.seed": seed,
        "train.log_every": log_every,
    }
    if config.model.kind == "analytic":
        overrides["model.kind"] = "mlp"
    if device is not None:
        overrides["train.device"] = str(device)
    trained = config.with_overrides(overrides)
    sde = sde_for_sampling(trained, _mixture_dataset(trained))
    times = loss_times(float(sde.T))
    arguments = {"source": source, "losses": names, "steps": steps, "seed": seed, "n_eval": n_eval}
    ran = skipped = 0
    warnings: list[str] = []
    with StudyFile.open(
        out,
        "losses",
        arguments,
        to_toml(config),
        names=names,
        times=times.tolist(),
        n_curve=n_curve,
    ) as study:
        done = study.done()
        for i, name in enumerate(names):
            if done[i]:
                skipped += 1
                continue
            curve: list[tuple[int, float]] = []
            offset = (ran + skipped) / len(names)

            def report(
                p: Progress,
                offset: float = offset,
                name: str = name,
                curve: list[tuple[int, float]] = curve,
            ) -> None:
                curve.append((p.step, p.loss))
                _tick(progress, offset + p.step / p.total / len(names), f"{name} step {p.step}")

            trainer = Trainer(trained.with_overrides({"loss.kind": name}))
            mixture = model_units_mixture(trainer.dataset, trainer.normalizer)
            if mixture is None:
                _data_mixture(trainer.dataset)
            assert mixture is not None
            truth = AnalyticMarginal(mixture, trainer.sde)
            t0 = time.perf_counter()
            result = trainer.run(on_progress=report, cancel=cancel)
            seconds = time.perf_counter() - t0
            if result.status == "cancelled":
                return _finish(study, out, "cancelled", ran, skipped, started, warnings)
            if result.status == "diverged":
                warnings.append(f"{name}: {result.message}")
            trainer.model.eval()
            error = score_error_curve(
                trainer.model,
                truth,
                times.tolist(),
                n_eval,
                seed + 5,
                trainer.device,
                trainer.dataset.sample_shape,
            )
            steps_done = np.asarray([s for s, _ in curve], dtype=np.int64)
            losses_done = np.asarray([v for _, v in curve], dtype=np.float64)
            study.write_loss_entry(i, error, steps_done, losses_done, seconds, time.time())
            study.write_csv(csv_path(out))
            ran += 1
        _tick(progress, 1.0, "done")
        return _finish(study, out, "done", ran, skipped, started, warnings)


def _mixture_dataset(config: ExperimentConfig) -> DataSet:
    from workbench.core.experiment import dataset_of

    dataset = dataset_of(config)
    _data_mixture(dataset)
    return dataset
