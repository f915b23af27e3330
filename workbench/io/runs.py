"""Run folders: ``config.toml``, ``checkpoint.pt``, ``metrics.csv`` and sampled trajectories.

``metrics.csv`` is appended and flushed row by row as training goes, so a killed run keeps its
curve. On resume, rows past the checkpoint's step (written after the last checkpoint, before a
crash) are dropped first, so the curve continues with neither a gap nor a duplicate.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.config import (
    ExperimentConfig,
    config_to_dict,
    load_config,
    save_config,
    to_toml,
)
from workbench.core.train import Progress, Trainer, TrainResult
from workbench.errors import WorkbenchError
from workbench.guards import read_regular_bytes
from workbench.io.checkpoints import load_checkpoint, save_checkpoint
from workbench.io.safety import (
    RAM,
    OutOfMemoryError,
    out_of_memory_where,
    release_device_memory,
)

__all__ = [
    "METRICS_COLUMNS",
    "MetricsWriter",
    "RunFolder",
    "metrics_rows",
    "read_metrics",
    "run_config",
    "train_in_folder",
]

METRICS_COLUMNS = ("step", "wall_time", "loss", "lr", "grad_norm")


# A row is ~60 bytes: this is tens of millions of logged steps, and what the lists of floats
# read from it take stays a few GiB at most.
METRICS_MAX_BYTES = 512 << 20


def _metrics_text(path: Path) -> str | None:
    """metrics.csv's text; None if there is none. A FIFO, a device, a directory, a huge or a
    non-UTF-8 file is a one-line WorkbenchError: it is refused, never overwritten."""
    if not os.path.lexists(path):
        return None
    raw = read_regular_bytes(path, METRICS_MAX_BYTES, what="metrics file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkbenchError(
            f"{path} is not UTF-8 text (byte {exc.start}): not a metrics.csv written by "
            "sde-workbench; move it away to start a new curve"
        ) from None


def _parse_metrics(path: Path, text: str) -> dict[str, list[float]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return {name: [] for name in METRICS_COLUMNS}
        if header[: len(METRICS_COLUMNS)] != list(METRICS_COLUMNS):
            raise WorkbenchError(
                f"{path} does not start with the header {','.join(METRICS_COLUMNS)}"
            )
        return metrics_rows(reader)
    except csv.Error as exc:
        raise WorkbenchError(f"{path} is not a readable CSV file: {exc}") from None


def read_metrics(path: str | os.PathLike[str]) -> dict[str, list[float]]:
    """The columns of a metrics.csv; a torn last line (from a killed writer) is skipped."""
    path = Path(path)
    text = _metrics_text(path)
    if text is None:
        return {name: [] for name in METRICS_COLUMNS}
    return _parse_metrics(path, text)


def metrics_rows(rows: Iterable[list[str]]) -> dict[str, list[float]]:
    """The columns of metrics.csv rows (no header); short or non-numeric rows are skipped."""
    columns: dict[str, list[float]] = {name: [] for name in METRICS_COLUMNS}
    for row in rows:
        if len(row) < len(METRICS_COLUMNS):
            continue
        try:
            values = [float(v) for v in row[: len(METRICS_COLUMNS)]]
        except ValueError:
            continue
        for name, value in zip(METRICS_COLUMNS, values, strict=True):
            columns[name].append(value)
    return columns


class MetricsWriter:
    """Appends metric rows to a CSV file, flushing each one."""

    def __init__(self, path: str | os.PathLike[str], keep_until_step: int) -> None:
        self.path = Path(path)
        self._truncate(keep_until_step)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._fh = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._fh)
        if new:
            self._writer.writerow(METRICS_COLUMNS)
            self._fh.flush()

    def _truncate(self, keep_until_step: int) -> None:
        """Drop rows after ``keep_until_step`` (and any torn line); rewritten atomically."""
        text = _metrics_text(self.path)
        if text is None:
            return
        cols = _parse_metrics(self.path, text)
        keep = [i for i, step in enumerate(cols["step"]) if step <= keep_until_step]
        if len(keep) == len(cols["step"]) and (text == "" or text.endswith("\n")):
            return
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(METRICS_COLUMNS)
        for i in keep:
            writer.writerow([_fmt(name, cols[name][i]) for name in METRICS_COLUMNS])
        _atomic_write_text(self.path, buf.getvalue())

    def write(self, progress: Progress) -> None:
        row = [
            progress.step,
            f"{progress.wall_time:.4f}",
            repr(progress.loss),
            repr(progress.lr),
            repr(progress.grad_norm),
        ]
        try:
            self._writer.writerow(row)
            self._fh.flush()
        except OSError as exc:
            raise WorkbenchError(
                f"could not write {self.path}: {exc.strerror or exc}; the rows written so far "
                "are kept"
            ) from exc

    def close(self) -> None:
        self._fh.close()


def _fmt(name: str, value: float) -> str:
    return str(int(value)) if name == "step" else repr(value)


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class RunFolder:
    """A folder holding one training run."""

    path: Path

    @property
    def config_path(self) -> Path:
        return self.path / "config.toml"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunFolder:
        """An existing run folder (it must hold a config.toml)."""
        folder = cls(Path(path))
        if not folder.path.is_dir():
            raise WorkbenchError(f"run folder {folder.path} does not exist")
        if not folder.config_path.is_file():
            raise WorkbenchError(f"{folder.path} is not a run folder: it has no config.toml")
        return folder

    @classmethod
    def is_run_folder(cls, path: str | os.PathLike[str]) -> bool:
        return (Path(path) / "config.toml").is_file()

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.is_file()

    def load_config(self) -> ExperimentConfig:
        return load_config(self.config_path)

    def load_checkpoint(self) -> dict[str, Any]:
        return load_checkpoint(self.checkpoint_path)

    def read_metrics(self) -> dict[str, list[float]]:
        return read_metrics(self.metrics_path)


def _first_difference(a: ExperimentConfig, b: ExperimentConfig, ignore: set[str]) -> str | None:
    da, db = config_to_dict(a), config_to_dict(b)
    for section in da:
        for key in sorted(set(da[section]) | set(db.get(section, {}))):
            dotted = f"{section}.{key}"
            if dotted in ignore or section == "sample":
                continue
            if da[section].get(key) != db.get(section, {}).get(key):
                return dotted
    return None


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
    own config, and a ``config`` given with it must match except for ``train.steps`` and
    ``train.device``. ``steps``/``device`` override the result. Shared by one-process and
    distributed training, where every rank checks before any joins the group.
    """
    folder = RunFolder(Path(out))
    if resume:
        folder = RunFolder.open(out)
        if not folder.has_checkpoint():
            raise WorkbenchError(f"nothing to resume in {folder.path}: it has no checkpoint.pt")
        saved = folder.load_config()
        if config is not None:
            diff = _first_difference(config, saved, {"train.steps", "train.device"})
            if diff is not None:
                raise WorkbenchError(
                    f"{folder.path} was trained with a different {diff}; resume it with its own "
                    "config.toml or start a new run in another folder"
                )
            saved = saved.with_overrides({"train.steps": config.train.steps})
        config = saved
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
    return folder, config


def checkpoint_state(trainer: Trainer) -> dict[str, Any]:
    """The trainer's state with the experiment as TOML under ``config``, so a checkpoint read
    on its own still says what it was trained from. The TOML is written here, not by the
    trainer: core never imports the config."""
    return {**trainer.state_dict(), "config": to_toml(trainer.config)}


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
) -> TrainResult:
    """Train ``config`` into the run folder ``out``, or resume the run there.

    A new run refuses a folder that already holds a checkpoint. ``resume`` continues from the
    checkpoint with the folder's own config; a ``config`` given with it must match that one
    except for ``train.steps``/``train.device`` (the target and where to run may change).
    The checkpoint is written every ``train.checkpoint_every`` steps, at the end, and on a
    cancel; after a non-finite loss nothing is written, so the last good one stays.
    """
    folder, config = run_config(config, out, resume=resume, steps=steps, device=device)
    try:
        folder.path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkbenchError(f"cannot create run folder {folder.path}: {exc.strerror}") from exc

    trainer = _new_trainer(config)
    if resume:
        trainer.load_state_dict(folder.load_checkpoint())
    save_config(config, folder.config_path)
    if on_trainer is not None:
        on_trainer(trainer)
    metrics = MetricsWriter(folder.metrics_path, keep_until_step=trainer.step)

    def progress(p: Progress) -> None:
        metrics.write(p)
        if on_progress is not None:
            on_progress(p)

    def checkpoint(t: Trainer) -> None:
        save_checkpoint(checkpoint_state(t), folder.checkpoint_path)

    try:
        result = trainer.run(
            on_progress=progress,
            cancel=cancel,
            on_checkpoint=checkpoint,
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
        checkpoint(trainer)
    return result


# bytes per value of the training set while it is drawn and normalised (float32 draw, float64
# copy and result, float32 result)
_DATA_BYTES_PER_VALUE = 24


def _new_trainer(config: ExperimentConfig) -> Trainer:
    """``Trainer(config)``; running out of memory while it draws the ``data.n`` training points
    or builds the model is an OutOfMemoryError naming the one to make smaller: ``data.n``
    when the points alone would take more than half the memory available, else
    ``model.hidden``."""
    try:
        return Trainer(config)
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
    from workbench.core.data import build_dataset

    if config.data.name == "file":
        return 1
    try:
        return build_dataset(config.data.name, dict(config.data.params)).dim
    except Exception:
        return 1
