"""Sampling into a trajectory file, and loading what to sample from: the job behind both
``sde-workbench sample`` and the GUI's Sample button.

Rows are recorded every ``record_every`` solver steps (plus the prior row and the final one);
the writer's thread takes them off the sampler's hands, so the solver never waits on the disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.config import ExperimentConfig, to_toml
from workbench.core.data import DataSet
from workbench.core.experiment import dataset_of, experiment_of, sde_of
from workbench.core.guidance import guide
from workbench.core.samplers import AUTO_GRID, build_sampler, sample
from workbench.core.sde import SDE
from workbench.core.simulation import terminal_bank
from workbench.core.train import resolve_device
from workbench.errors import ConfigError, WorkbenchError
from workbench.io.recorder import RowRecorder
from workbench.io.runs import MissingData, RunFolder, check_edits, run_dataset
from workbench.io.safety import (
    RAM,
    OutOfMemoryError,
    out_of_memory_where,
    release_device_memory,
)
from workbench.io.trajectories import TrajectoryWriter

__all__ = [
    "SamplingResult",
    "load_model",
    "sample_params",
    "sample_to_file",
    "sde_for_sampling",
    "TERMINAL_BANK_SIZE",
]

#: training points simulated to T for the prior of an SDE without a closed-form p_T
TERMINAL_BANK_SIZE = 20000


@dataclass(frozen=True)
class SamplingResult:
    path: Path
    status: str  # "done" | "cancelled"
    nfe: int
    seconds: float
    rows: int


def sample_params(config: ExperimentConfig) -> dict[str, Any]:
    return {p.name: getattr(config.sample, p.name) for p in config.sample.PARAMS}


def sde_for_sampling(config: ExperimentConfig, dataset: DataSet) -> SDE:
    """The config's SDE, ready to sample from.

    An SDE whose prior p_T has no closed form (the custom SDE) gets its terminal bank here:
    the training set, drawn exactly as the trainer draws it (``data.n`` points with the
    config's seed, normalised; at most ``TERMINAL_BANK_SIZE`` of them), simulated to T by
    Euler–Maruyama in float64 on the CPU with the seed ``train.seed + 2``. The same config
    therefore always gives the same prior, wherever it is sampled.
    """
    sde = sde_of(config)
    if not hasattr(sde, "set_terminal_bank"):
        return sde
    if isinstance(dataset, MissingData):
        raise WorkbenchError(
            f"the {config.sde.kind!r} SDE has no closed-form prior: p_T is simulated from the "
            f"training data, but {dataset.why}; put it back to sample this run"
        )
    seed = config.train.seed
    x = dataset.sample(config.data.n, torch.Generator().manual_seed(seed), dtype=torch.float32)
    x0 = dataset.normalizer().to_model(x.to(torch.float64))[:TERMINAL_BANK_SIZE]
    check_dim = getattr(sde, "check_dim", None)
    if check_dim is not None:
        try:
            check_dim(x0[0].numel())
        except ConfigError as exc:
            raise exc.within("sde") from None
    if getattr(sde, "prior", None) == "fpk":
        _fpk_prior(sde, dataset, x0)
        return sde
    terminal_bank(sde, x0, generator=torch.Generator().manual_seed(seed + 2))
    return sde


def _fpk_prior(sde: Any, dataset: DataSet, x0: torch.Tensor) -> None:
    """p_T of the data's density (exact for mixtures, else a KDE) by the Fokker–Planck solver,
    on its default grid (256 cells in 1-D, 128 per axis in 2-D) sized by a short simulation."""
    from workbench.core.fpk import density_from_data, grid_bounds, solve_fpk

    if dataset.dim > 2:
        raise ConfigError(
            "sde.prior",
            f"'fpk' solves the Fokker-Planck equation on a grid, in 1-D and 2-D only; the data "
            f"have {dataset.dim} dimensions: use 'simulation'",
        )
    normalizer = dataset.normalizer()
    points = x0.reshape(len(x0), -1).numpy()
    bounds = grid_bounds(sde, points, float(sde.T))

    def initial(mesh: Any) -> Any:
        axes = [np.unique(mesh[:, i]) for i in range(mesh.shape[1])]
        return density_from_data(dataset, normalizer, axes).reshape(-1)

    n = 256 if dataset.dim == 1 else 128
    solution = solve_fpk(sde, initial, n, [float(sde.T)], bounds=bounds)
    sde.set_prior_density(solution.axes, solution.p[-1])


def load_model(
    source: str | os.PathLike[str] | ExperimentConfig, device: str | torch.device = "cpu"
) -> tuple[ExperimentConfig, nn.Module, DataSet]:
    """The config, the score model (EMA weights of a run, or the analytic score) and the data.

    ``source`` is a run folder (its checkpoint's EMA weights are used) or a config whose
    ``model.kind`` is ``analytic`` (nothing to train).

    A run folder's config.toml must agree with its checkpoint in what the model means, and its
    data file must be the one trained on (:func:`~workbench.io.runs.check_edits`); the data
    set returned maps to model units by the checkpoint's stored normaliser, and stands in for
    a data file that is gone (:func:`~workbench.io.runs.run_dataset`). A checkpoint from
    before normalisers were stored recomputes it from the data, as it always did.
    """
    from workbench.config import load_config

    checkpoint = None
    if isinstance(source, ExperimentConfig):
        config = source
    else:
        path = Path(source)
        if path.is_dir():
            folder = RunFolder.open(path)
            config = folder.load_config()
            if config.model.kind != "analytic":
                if not folder.has_checkpoint():
                    raise WorkbenchError(f"{path} has no checkpoint.pt yet: train it first")
                checkpoint = folder.load_checkpoint()
                check_edits(str(folder.config_path), config, checkpoint)
        else:
            config = load_config(path)
    if checkpoint is None and config.model.kind != "analytic":
        raise WorkbenchError(
            f"a config with model.kind = {config.model.kind!r} has no weights: sample from a "
            "trained run folder, or set model.kind = 'analytic' (Gaussian-mixture data)"
        )
    built = experiment_of(
        config,
        with_model=True,
        dataset=None if checkpoint is None else run_dataset(config, checkpoint),
    )
    dataset, model = built.dataset, built.model
    assert model is not None
    if checkpoint is not None:
        try:
            model.load_state_dict(checkpoint["ema"])
        except (RuntimeError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise WorkbenchError(
                f"the checkpoint does not fit the run's config ({first})"
            ) from None
    model.eval().requires_grad_(False)
    return config, model.to(torch.device(device)), dataset


def sample_to_file(
    config: ExperimentConfig,
    model: nn.Module,
    out: str | os.PathLike[str],
    **options: Any,
) -> SamplingResult:
    """:func:`_sample_to_file` (its keyword options: device, overwrite, progress, cancel,
    dataset); running out of memory (the GPU's or the computer's) becomes an OutOfMemoryError
    that names a smaller setting (:func:`sampling_out_of_memory`), and the app keeps running."""
    try:
        return _sample_to_file(config, model, out, **options)
    except Exception as exc:
        where = out_of_memory_where(exc)
        if where is None:
            raise
    # out of the except block: the failed call's frames, and what they held, are freed now,
    # so the memory measured below is what a retry would have
    release_device_memory()
    dataset = options.get("dataset")
    raise sampling_out_of_memory(
        config,
        where,
        dataset.dim if dataset is not None else None,
        f"{Path(out)} keeps the rows so far, marked incomplete",
    )


# float32 copies of the n x dim states a sampling run holds whatever its chunk: the state, its
# mean and noise, the score, the final samples, and the recorder's rows in flight
_STATE_COPIES = 10


def sampling_out_of_memory(
    config: ExperimentConfig, where: str, dim: int | None, kept: str
) -> OutOfMemoryError:
    """The error for sampling out of memory: the smaller setting that can help.

    The network sees ``sample.chunk_size`` samples at a time, so its activations (the large
    part on a GPU) shrink with the chunk: halve it. All ``n x dim`` states stay in memory
    whatever the chunk, though (``_STATE_COPIES`` float32 copies): when those alone take more
    than half of what the computer can give, only a smaller ``sample.n`` helps, and the one
    suggested fits.
    """
    from workbench.guards import available_memory

    n = config.sample.n
    what = f"sampling {n} samples"
    if where == RAM and dim is not None and n > 1:
        have = available_memory()
        per_sample = dim * 4 * _STATE_COPIES
        if have is not None and n * per_sample > have / 2:
            fit = max(1, min(n // 2, int(have / 2 / per_sample)))
            return OutOfMemoryError.trying(what, "sample.n", n, fit, kept, where=where)
    chunk = min(config.sample.chunk_size or n, n)
    return OutOfMemoryError.while_doing(what, "sample.chunk_size", chunk, kept, where=where)


def _sample_to_file(
    config: ExperimentConfig,
    model: nn.Module,
    out: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    dataset: DataSet | None = None,
) -> SamplingResult:
    """Run the config's sampler with ``model`` and write every recorded row to ``out``.

    ``progress(done, total)`` counts solver steps (for the adaptive ODE solver, thousandths of
    the time interval). A cancel stops after the current step and leaves a valid file whose
    root attribute ``complete`` is false.
    """
    sc = config.sample
    dev = resolve_device(sc_device(config) if device is None else str(device))
    if dataset is None:  # a run's own data set (load_model) carries its stored normaliser
        dataset = dataset_of(config)
    normalizer = dataset.normalizer()
    sde = sde_for_sampling(config, dataset)
    model = guided_model(model, config).to(dev)
    sampler = build_sampler(sde, model, sample_params(config))
    if sc.grid == AUTO_GRID and sampler.grid:
        # the file's config names the grid that ran: "auto" means whatever the sampler's
        # default is in the version that reads it
        config = config.with_overrides({"sample.grid": sampler.grid})
    generator = torch.Generator(device=dev).manual_seed(sc.seed)
    n_steps = sampler.n_steps
    total = n_steps if n_steps is not None else 1000
    span = sde.T - sc.eps
    started = time.perf_counter()
    rows = 0
    with (
        TrajectoryWriter(
            out,
            n_samples=sc.n,
            sample_shape=dataset.sample_shape,
            config_toml=to_toml(config),
            sampler=sc.sampler,
            direction="reverse",
            normalizer=normalizer,
            overwrite=overwrite,
            extra_attrs=guidance_attrs(config),
        ) as writer,
        RowRecorder(writer, dev) as recorder,
    ):
        # the recorder copies rows off the device on a side stream and hands them to the
        # writer's thread: the loop below never waits on the GPU or the disk
        last = None
        with torch.no_grad():
            for item in sample(
                sampler,
                sc.n,
                dataset.sample_shape,
                generator,
                dev,
                chunk_size=sc.chunk_size,
                fast_path=sc.fast_path,
                precision=sc.precision,
            ):
                last = item
                if sc.record_every and item.step % sc.record_every == 0:
                    recorder.record(item.step, item.t, item.x)
                    rows += 1
                if progress is not None:
                    done = (
                        min(item.step, total)
                        if n_steps is not None
                        else round(1000 * (sde.T - max(item.t, sc.eps)) / span)
                    )
                    progress(done, total)
                if cancel is not None and cancel():
                    recorder.abort()
                    writer.abort()
                    return SamplingResult(
                        Path(out), "cancelled", sampler.nfe, time.perf_counter() - started, rows
                    )
        if last is None:
            raise WorkbenchError("the sampler produced nothing")
        final = last.x.reshape(sc.n, -1)
        if sc.record_every and last.step % sc.record_every != 0:
            recorder.record(last.step, last.t, final)  # the final row is always kept
            rows += 1
        recorder.close()  # every row is with the writer; a writer error is raised here
        if not bool(torch.isfinite(final).all()):
            bad = int((~torch.isfinite(final)).any(-1).sum())
            writer.abort()
            raise WorkbenchError(
                f"{bad} of {sc.n} samples are not finite; the model may be undertrained or the "
                f"step count too small for the {sc.sampler!r} sampler ({Path(out)} is kept, "
                "marked incomplete)"
            )
        samples = normalizer.to_data(final.to("cpu", torch.float64)).to(torch.float32)
        writer.close(samples=samples.numpy(), nfe=sampler.nfe)
    seconds = time.perf_counter() - started
    return SamplingResult(Path(out), "done", sampler.nfe, seconds, rows)


def guided_model(model: nn.Module, config: ExperimentConfig) -> nn.Module:
    """``model``, or its :class:`~workbench.core.guidance.GuidedScore` for ``sample.class_label``
    and ``sample.guidance``; a ConfigError names the sample key that cannot be met."""
    try:
        return guide(model, config.sample.class_label, config.sample.guidance)
    except ConfigError as exc:
        raise exc.within("sample") from None


def guidance_attrs(config: ExperimentConfig) -> dict[str, Any]:
    """The trajectory file's record of a class-conditional run (nothing for an unconditional
    one): ``class_label`` (int64) and ``guidance`` (float64) on /trajectories."""
    if config.sample.class_label < 0:
        return {}
    return {
        "class_label": np.int64(config.sample.class_label),
        "guidance": np.float64(config.sample.guidance),
    }


def sc_device(config: ExperimentConfig) -> str:
    """Sampling runs where training does (the config has one device key, in [train])."""
    return config.train.device
