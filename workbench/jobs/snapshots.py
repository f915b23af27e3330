"""Training snapshots as a job: writing them while training, and re-sampling them afterwards.

While training, :func:`snapshot_hook` turns ``train.snapshot_every`` into the trainer's
``on_eval`` callback (the file format is :mod:`workbench.io.snapshots`). Afterwards,
:func:`resample_snapshots` loads each snapshot's EMA weights into the run's network and runs a
short, fixed sampling with them: the same seed for every snapshot, hence the same x_T and the
same Brownian increments, so the only thing that changes from one step to the next is the
network. Scrubbing through the steps then shows the model learning, not the sampler's noise.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.config import ExperimentConfig
from workbench.core.data import Normalizer
from workbench.core.experiment import dataset_of, experiment_of
from workbench.core.samplers import build_sampler, sample
from workbench.errors import WorkbenchError
from workbench.io.runs import RunFolder, check_edits, run_dataset
from workbench.io.snapshots import list_snapshots, load_snapshot, save_snapshot, snapshots_dir

__all__ = [
    "RESAMPLE_N",
    "RESAMPLE_STEPS",
    "SnapshotSamples",
    "prune_snapshots",
    "resample_snapshots",
    "snapshot_hook",
]

#: points sampled per snapshot: enough for a 2-D histogram to show the modes, few enough that a
#: dozen snapshots re-sample in seconds on a CPU
RESAMPLE_N = 512
#: solver steps per snapshot (the run's own sample.steps when that is fewer)
RESAMPLE_STEPS = 100
#: rows kept per re-sampling (the prior, every RESAMPLE_STEPS / 20 steps, the end): the
#: Densities view's "generated at t" panel finds one near every t
_ROWS = 20

EvalFn = Callable[[int, nn.Module], None]


def snapshot_hook(
    run: str | os.PathLike[str],
    snapshot_every: int,
    on_eval: EvalFn | None = None,
    eval_every: int = 0,
    *,
    write: bool = True,
) -> tuple[EvalFn | None, int]:
    """The trainer's ``(on_eval, eval_every)`` with snapshots every ``snapshot_every`` steps
    added to the caller's own ``on_eval`` every ``eval_every`` steps.

    The trainer calls ``on_eval`` every gcd(eval_every, snapshot_every) steps, after its
    finiteness read-back, so a snapshot is never written from a diverged step. ``write``
    False (the ranks of a distributed run other than 0) keeps the same schedule, and hence the
    same read-backs on every rank, without writing.
    """
    every = int(snapshot_every)
    if every <= 0:
        return on_eval, eval_every
    user_every = int(eval_every) if on_eval is not None else 0
    step_every = math.gcd(user_every, every) if user_every > 0 else every

    def hook(step: int, ema: nn.Module) -> None:
        if write and step % every == 0:
            save_snapshot(run, step, ema.state_dict())
        if on_eval is not None and user_every > 0 and step % user_every == 0:
            on_eval(step, ema)

    return hook, step_every


def prune_snapshots(run: str | os.PathLike[str], keep_until_step: int) -> list[int]:
    """Remove the snapshots after ``keep_until_step`` (a resume goes on from its checkpoint:
    the snapshots written after it, before a crash, belong to a history it will rewrite).
    Returns the steps removed."""
    gone = [s for s in list_snapshots(run) if s > keep_until_step]
    for step in gone:
        try:
            (snapshots_dir(run) / f"step-{step:07d}.pt").unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise WorkbenchError(
                f"cannot remove the stale snapshot of step {step} in {snapshots_dir(run)}: "
                f"{exc.strerror or exc}"
            ) from None
    return gone


@dataclass
class SnapshotSamples:
    """One snapshot re-sampled: its network (EMA weights, on the CPU, in eval mode) and the
    recorded rows of its sampling, in the run's model units.

    It reads like a trajectory file's rows (``times``, ``n_saved``, ``row(k)``,
    ``index_of_time(t)``, ``dim``, ``normalizer``), so the Densities view shows it as its
    "generated at t" panel.
    """

    step: int
    model: nn.Module
    times: np.ndarray
    rows: list[np.ndarray]
    normalizer: Normalizer
    sample_shape: tuple[int, ...]
    steps: list[int] = field(default_factory=list)

    @property
    def n_saved(self) -> int:
        return len(self.rows)

    @property
    def dim(self) -> int:
        return int(np.prod(self.sample_shape)) if self.sample_shape else 1

    def row(self, k: int) -> np.ndarray:
        """Row ``k`` as (n, dim), the points that are not finite left out (an early
        snapshot's sampler may blow up: what is finite is still worth a look)."""
        flat = self.rows[k].reshape(len(self.rows[k]), -1)
        return flat[np.isfinite(flat).all(axis=1)]

    def index_of_time(self, t: float) -> int:
        return int(np.argmin(np.abs(self.times - float(t))))

    @property
    def samples(self) -> np.ndarray:
        """The final row in data units (n, dim), the non-finite points left out."""
        x = torch.from_numpy(self.row(self.n_saved - 1).astype(np.float64))
        return self.normalizer.to_data(x).numpy()


def _run_setup(run: Path) -> tuple[ExperimentConfig, Any, Any]:
    """The run's config, its data set in the model's units, and its SDE ready to sample.

    With a checkpoint, its stored normaliser and the edit check, as ``sample`` has them; a
    followed run may have snapshots before its first checkpoint, and then the data set's own
    normaliser is the one the trainer uses."""
    from workbench.jobs.sample import sde_for_sampling

    folder = RunFolder.open(run)
    config = folder.load_config()
    if folder.has_checkpoint():
        checkpoint = folder.load_checkpoint()
        check_edits(str(folder.config_path), config, checkpoint)
        dataset = run_dataset(config, checkpoint)
    else:
        dataset = dataset_of(config)
    return config, dataset, sde_for_sampling(config, dataset)


def _snapshot_model(run: Path, step: int, template: nn.Module) -> nn.Module:
    """A copy of ``template`` holding the EMA weights of the snapshot at ``step``."""
    weights = load_snapshot(run, step)
    model = copy.deepcopy(template)
    try:
        model.load_state_dict(weights)
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise WorkbenchError(
            f"the snapshot of step {step} does not fit the run's network ({first})"
        ) from None
    return model


def resample_snapshots(
    run: str | os.PathLike[str],
    steps: Iterable[int] | None = None,
    *,
    n: int = RESAMPLE_N,
    seed: int = 0,
    solver_steps: int = RESAMPLE_STEPS,
    cache: dict[int, SnapshotSamples] | None = None,
    on_result: Callable[[SnapshotSamples], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    errors: dict[int, str] | None = None,
) -> dict[int, SnapshotSamples]:
    """Re-sample the run's snapshots at ``steps`` (default: all of them, in order).

    For each one the EMA weights go into a copy of the run's network, and ``n`` points are
    sampled with the run's own sampler, at most ``solver_steps`` steps, from the generator
    seeded with ``seed``: x_T and every noise draw are the same for every snapshot. Steps
    already in ``cache`` are skipped; each new result is put there and handed to
    ``on_result`` as it is made. ``progress(done, total)`` counts snapshots; ``cancel``
    stops before the next one. A damaged snapshot raises its one-line error, the results made
    before it in ``cache``; with ``errors`` given, its message goes there instead and the
    others are still sampled (one bad file in a long run hides nothing else).
    """
    run = Path(run)
    cache = {} if cache is None else cache
    wanted = list_snapshots(run) if steps is None else [int(s) for s in steps]
    todo = [s for s in wanted if s not in cache]
    if not todo:
        return cache
    config, dataset, sde = _run_setup(run)
    template = experiment_of(config, with_model=True, dataset=dataset).model
    assert template is not None
    template.eval().requires_grad_(False)
    params = {p.name: getattr(config.sample, p.name) for p in config.sample.PARAMS}
    params["steps"] = min(int(params["steps"]), int(solver_steps))
    every = max(1, params["steps"] // _ROWS)
    normalizer = dataset.normalizer()
    shape = tuple(dataset.sample_shape)
    for done, step in enumerate(todo):
        if cancel is not None and cancel():
            break
        try:
            model = _snapshot_model(run, step, template)
        except WorkbenchError as exc:
            if errors is None:
                raise
            errors[step] = str(exc)
            continue
        sampler = build_sampler(sde, model, params)
        generator = torch.Generator().manual_seed(int(seed))
        times: list[float] = []
        rows: list[np.ndarray] = []
        solver: list[int] = []
        last = None
        with torch.no_grad():
            for item in sample(sampler, n, shape, generator, "cpu"):
                last = item
                if item.step % every == 0:
                    times.append(float(item.t))
                    solver.append(int(item.step))
                    rows.append(item.x.detach().numpy().copy())
        if last is None:
            raise WorkbenchError("the sampler produced nothing")
        if not solver or solver[-1] != last.step:
            times.append(float(last.t))
            solver.append(int(last.step))
            rows.append(last.x.detach().numpy().copy())
        result = SnapshotSamples(step, model, np.asarray(times), rows, normalizer, shape, solver)
        cache[step] = result
        if on_result is not None:
            on_result(result)
        if progress is not None:
            progress(done + 1, len(todo))
    return cache
