"""Training into a run folder: the job behind ``sde-workbench train`` and the GUI's Train button.

The run folder itself (its files, the metrics, which edits its config may take, the stored
normaliser) is :mod:`workbench.io.runs`; the lock is :mod:`workbench.io.lock`. This module
checks a new run or a resume against the folder (:func:`prepare_run`), then trains under the
lock, appending metrics as it goes and writing the checkpoint every ``train.checkpoint_every``
steps, at the end and on a cancel, and a snapshot of the EMA weights every
``train.snapshot_every`` steps (:mod:`workbench.jobs.snapshots`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.config import ExperimentConfig, config_to_dict, save_config
from workbench.core.data import DataSet
from workbench.core.experiment import dataset_of
from workbench.core.train import Progress, Trainer, TrainResult
from workbench.errors import WorkbenchError
from workbench.io.checkpoints import save_checkpoint
from workbench.io.lock import RunLock
from workbench.io.runs import (
    MetricsWriter,
    RunFolder,
    check_edits,
    checkpoint_state,
    config_differences,
    describe_differences,
    is_free,
    run_dataset,
)
from workbench.io.safety import (
    RAM,
    OutOfMemoryError,
    out_of_memory_where,
    release_device_memory,
)

__all__ = ["make_run_folder", "prepare_run", "run_config", "train_in_folder"]


def _adopt_editable(saved: ExperimentConfig, given: ExperimentConfig) -> ExperimentConfig:
    """``saved`` with the editable keys (:data:`EDITABLE_KEYS`) as ``given`` has them."""
    tree, mine = config_to_dict(given), config_to_dict(saved)
    overrides = {
        f"{section}.{key}": value
        for section, keys in tree.items()
        for key, value in keys.items()
        if is_free(section, key, resume=True) and mine.get(section, {}).get(key) != value
    }
    return saved.with_overrides(overrides) if overrides else saved


def prepare_run(
    config: ExperimentConfig | None,
    out: str | os.PathLike[str],
    *,
    resume: bool,
    steps: int | None,
    device: str | None,
) -> tuple[RunFolder, ExperimentConfig, dict[str, Any] | None]:
    """:func:`run_config`, plus the checkpoint it read (None for a new run)."""
    folder = RunFolder(Path(out))
    checkpoint = None
    if resume:
        folder = RunFolder.open(out)
        if not folder.has_checkpoint():
            raise WorkbenchError(f"nothing to resume in {folder.path}: it has no checkpoint.pt")
        saved = folder.load_config()
        if config is not None:
            found = config_differences(config, saved, resume=True)
            if found:
                raise WorkbenchError(
                    f"the given config differs from the run in {folder.path} in "
                    f"{describe_differences(found)}; resume with the run's own config.toml, or "
                    "start a new run in another folder"
                )
            saved = _adopt_editable(saved, config)
        config = saved
        checkpoint = folder.load_checkpoint()
    else:
        if config is None:
            raise WorkbenchError("a new run needs a config")
        if folder.has_checkpoint():
            raise WorkbenchError(
                f"{folder.path} already holds a run; use --resume to continue it or choose "
                "another --out"
            )
    overrides: dict[str, Any] = {}
    if steps is not None:
        overrides["train.steps"] = steps
    if device is not None:
        overrides["train.device"] = device
    if overrides:
        config = config.with_overrides(overrides)
    if checkpoint is not None:
        check_edits(str(folder.config_path), config, checkpoint, resume=True)
    return folder, config, checkpoint


def run_config(
    config: ExperimentConfig | None,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    steps: int | None = None,
    device: str | None = None,
) -> tuple[RunFolder, ExperimentConfig]:
    """The folder and the config a training into ``out`` runs with, checked, nothing written.

    A new run refuses a folder that already holds a checkpoint; ``resume`` takes the folder's
    own config, which must agree with its checkpoint (:func:`check_edits`, the optimiser's
    keys included), and a ``config`` given with it must match that one except for the
    editable keys (:data:`EDITABLE_KEYS`), which it then sets. ``steps``/``device`` override
    the result. Shared by one-process and distributed training, where every rank checks before
    any joins the group.
    """
    folder, config, _ = prepare_run(config, out, resume=resume, steps=steps, device=device)
    return folder, config


def make_run_folder(path: Path, resume: bool) -> None:
    """The folder exists after this (a new run makes it); a lock needs a place to live."""
    if resume:
        RunFolder.open(path)  # the clear error of a folder that is not there
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkbenchError(f"cannot create run folder {path}: {exc.strerror}") from exc


def train_in_folder(
    config: ExperimentConfig | None,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    steps: int | None = None,
    device: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    on_trainer: Callable[[Trainer], None] | None = None,
    on_eval: Callable[[int, Any], None] | None = None,
    eval_every: int = 0,
    on_note: Callable[[str], None] | None = None,
    what: str = "sde-workbench train",
) -> TrainResult:
    """Train ``config`` into the run folder ``out``, or resume the run there.

    The folder is locked for the whole training (:class:`~workbench.io.lock.RunLock`): a
    second writer is refused at once, naming this one; ``what`` is how this one is named, and
    ``on_note`` receives the note about a stale lock taken over (default: stderr). The checks
    run under the lock, so two new runs cannot both find the folder free.

    A new run refuses a folder that already holds a checkpoint. ``resume`` continues from the
    checkpoint with the folder's own config (see :func:`run_config`) and the checkpoint's
    stored normaliser. The checkpoint is written every ``train.checkpoint_every`` steps, at
    the end, and on a cancel; after a non-finite loss nothing is written, so the last good one
    stays.
    """
    if not resume and config is None:
        raise WorkbenchError("a new run needs a config")
    path = Path(out)
    make_run_folder(path, resume)
    with RunLock(path, what, on_note=on_note):
        folder, config, checkpoint = prepare_run(
            config, path, resume=resume, steps=steps, device=device
        )
        return _train_locked(
            folder,
            config,
            checkpoint,
            on_progress=on_progress,
            cancel=cancel,
            on_trainer=on_trainer,
            on_eval=on_eval,
            eval_every=eval_every,
        )


def _train_locked(
    folder: RunFolder,
    config: ExperimentConfig,
    checkpoint: dict[str, Any] | None,
    *,
    on_progress: Callable[[Progress], None] | None,
    cancel: Callable[[], bool] | None,
    on_trainer: Callable[[Trainer], None] | None,
    on_eval: Callable[[int, Any], None] | None,
    eval_every: int,
) -> TrainResult:
    if checkpoint is not None:
        trainer = _new_trainer(config, run_dataset(config, checkpoint, need_data=True))
        trainer.load_state_dict(checkpoint)
    else:
        trainer = _new_trainer(config)
    save_config(config, folder.config_path)
    if on_trainer is not None:
        on_trainer(trainer)
    metrics = MetricsWriter(folder.metrics_path, keep_until_step=trainer.step)

    def progress(p: Progress) -> None:
        metrics.write(p)
        if on_progress is not None:
            on_progress(p)

    def checkpoint_now(t: Trainer) -> None:
        save_checkpoint(checkpoint_state(t, config), folder.checkpoint_path)

    from workbench.jobs.snapshots import prune_snapshots, snapshot_hook

    prune_snapshots(folder.path, trainer.step)
    on_eval, eval_every = snapshot_hook(
        folder.path, config.train.snapshot_every, on_eval, eval_every
    )
    try:
        result = trainer.run(
            on_progress=progress,
            cancel=cancel,
            on_checkpoint=checkpoint_now,
            on_eval=on_eval,
            eval_every=eval_every,
        )
    except Exception as exc:
        # running out of memory is the user's batch size, not a bug: a clear error that names
        # a smaller one; nothing is saved, so the last checkpoint stays the last good one
        where = out_of_memory_where(exc)
        if where is None:
            raise
        release_device_memory()
        raise OutOfMemoryError.while_doing(
            f"training (step {trainer.step + 1})",
            "train.batch_size",
            config.train.batch_size,
            "the last checkpoint is kept",
            where=where,
        ) from None
    finally:
        metrics.close()
    if result.status in ("done", "cancelled"):
        checkpoint_now(trainer)
    return result


# bytes per value of the training set while it is drawn and normalised (float32 draw, float64
# copy and result, float32 result)
_DATA_BYTES_PER_VALUE = 24


def _new_trainer(config: ExperimentConfig, dataset: DataSet | None = None) -> Trainer:
    """``Trainer(config, dataset=dataset)``; running out of memory while it draws the
    ``data.n`` training points or builds the model is an OutOfMemoryError naming the one to
    make smaller: ``data.n`` when the points alone would take more than half the memory
    available, else ``model.hidden``."""
    try:
        return Trainer(config, dataset=dataset)
    except Exception as exc:
        where = out_of_memory_where(exc)
        if where is None:
            raise
    release_device_memory()  # out of the except block: the half-built trainer is freed
    from workbench.guards import available_memory

    what, kept = "setting up the training", "nothing was written"
    have = available_memory() if where == RAM else None
    n = config.data.n
    per_point = _data_dim(config) * _DATA_BYTES_PER_VALUE
    if have is not None and n > 1 and n * per_point > have / 2:
        fit = max(1, min(n // 2, int(have / 2 / per_point)))
        raise OutOfMemoryError.trying(what, "data.n", n, fit, kept, where=where)
    raise OutOfMemoryError.while_doing(what, "model.hidden", config.model.hidden, kept, where=where)


def _data_dim(config: ExperimentConfig) -> int:
    """Coordinates per point of the config's data; 1 (a lower bound) where that would mean
    reading a file again."""
    if config.data.name == "file":
        return 1
    try:
        return dataset_of(config).dim
    except Exception:
        return 1
