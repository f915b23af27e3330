"""Run folders: ``config.toml``, ``checkpoint.pt``, ``metrics.csv`` and sampled trajectories.

A run folder is a sealed record. One process at a time trains into it (:mod:`workbench.io.lock`,
``.lock``). Its checkpoint holds what the model means: the experiment, the data normaliser and a
fingerprint of the training data; sampling and resuming use the stored normaliser, so a run
samples without its data file. Its ``config.toml`` may be edited only in keys that leave the
model's meaning alone (:data:`EDITABLE_KEYS`); any other edit, and a data file changed since
training, is refused with one line naming each difference (:func:`check_edits`).

``metrics.csv`` is appended and flushed row by row as training goes, so a killed run keeps its
curve. On resume, rows past the checkpoint's step (written after the last checkpoint, before a
crash) are dropped first, so the curve continues with neither a gap nor a duplicate.

Training into a folder is a job: :mod:`workbench.jobs.train`.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.config import (
    SECTION_PARAMS,
    ExperimentConfig,
    config_to_dict,
    load_config,
    to_toml,
)
from workbench.core.data import DataSet, Normalizer, file_fingerprint
from workbench.core.experiment import dataset_of
from workbench.core.train import Progress, Trainer
from workbench.errors import DataError, WorkbenchError
from workbench.guards import read_regular_bytes
from workbench.io.checkpoints import load_checkpoint

__all__ = [
    "EDITABLE_KEYS",
    "METRICS_COLUMNS",
    "TRAINING_ONLY_KEYS",
    "MissingData",
    "check_edits",
    "config_differences",
    "describe_differences",
    "checkpoint_state",
    "is_free",
    "run_dataset",
    "stored_experiment",
    "stored_normalizer",
    "MetricsWriter",
    "RunFolder",
    "metrics_rows",
    "read_metrics",
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


# ---------------------------------------------------------------------------------------------
# edits: which keys of a run's config.toml may differ from its checkpoint
# ---------------------------------------------------------------------------------------------
#: The keys a run's config.toml may change after training, by section ("*": all of it): how
#: long, where and how fast to train (the learning-rate schedule applies to the steps after
#: the checkpoint), how often to log and checkpoint, and how to sample. Every other key (all of
#: [data], [sde], [model], [loss], train.seed) is part of what the model means.
EDITABLE_KEYS: dict[str, tuple[str, ...]] = {
    "train": (
        "steps",
        "device",
        "lr",
        "warmup",
        "schedule",
        "checkpoint_every",
        "log_every",
        "fast_path",
        "snapshot_every",
    ),
    "sample": ("*",),
}

#: Keys that shape only the training still to come (the optimiser and its batches): free when a
#: run is sampled or evaluated, checked when it is resumed.
TRAINING_ONLY_KEYS: dict[str, tuple[str, ...]] = {
    "train": ("batch_size", "ema", "optimizer", "weight_decay", "grad_clip", "precision"),
}


def _check_key_tables() -> None:
    # a key renamed in workbench.config must not silently fall out of (or into) these tables
    for table in (EDITABLE_KEYS, TRAINING_ONLY_KEYS):
        for section, keys in table.items():
            declared = {p.name for p in SECTION_PARAMS[section]}
            unknown = [k for k in keys if k != "*" and k not in declared]
            if unknown:
                raise RuntimeError(f"run-folder key tables name unknown [{section}] {unknown}")


_check_key_tables()


def is_free(section: str, key: str, resume: bool) -> bool:
    """Whether ``[section] key`` may differ from the checkpoint (``resume``: the optimiser's
    keys may not)."""
    tables = (EDITABLE_KEYS,) if resume else (EDITABLE_KEYS, TRAINING_ONLY_KEYS)
    return any("*" in table.get(section, ()) or key in table.get(section, ()) for table in tables)


_ABSENT = object()


def _show(value: Any) -> str:
    text = "unset" if value is _ABSENT else repr(value)
    if len(text) <= 60:
        return text
    # a long path differs in its end (the file's name), a long list in its start
    return "'..." + text[-50:] if isinstance(value, str) else text[:50] + "..."


def config_differences(
    current: ExperimentConfig | dict[str, Any],
    trained: ExperimentConfig | dict[str, Any],
    *,
    resume: bool = False,
) -> list[tuple[str, Any, Any]]:
    """Every key where ``current`` and ``trained`` differ in what the model means, as
    ``(dotted key, current value, trained value)`` (a missing key's value is unset), in
    section order. ``resume`` checks the optimiser's keys too (:data:`TRAINING_ONLY_KEYS`).

    Either side may be a config or its dict (a checkpoint's stored TOML, parsed): comparing
    dicts needs no validation, so a checkpoint from an older schema is still compared, key by
    key, instead of failing to load.
    """
    a = config_to_dict(current) if isinstance(current, ExperimentConfig) else current
    b = config_to_dict(trained) if isinstance(trained, ExperimentConfig) else trained
    found: list[tuple[str, Any, Any]] = []
    for section in list(a) + [s for s in b if s not in a]:
        sa, sb = a.get(section, {}), b.get(section, {})
        if not isinstance(sa, dict) or not isinstance(sb, dict):
            if sa != sb:
                found.append((section, sa, sb))
            continue
        for key in list(sa) + [k for k in sb if k not in sa]:
            if is_free(section, key, resume):
                continue
            va, vb = sa.get(key, _ABSENT), sb.get(key, _ABSENT)
            if va != vb:
                found.append((f"{section}.{key}", va, vb))
    return found


def describe_differences(found: list[tuple[str, Any, Any]]) -> str:
    """:func:`config_differences` as one line: ``key (current vs trained), ...``."""
    return ", ".join(f"{key} ({_show(va)} vs {_show(vb)})" for key, va, vb in found)


def stored_experiment(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The experiment a checkpoint was trained with, as the dict of its stored TOML."""
    import tomllib

    text = checkpoint.get("config")
    if not isinstance(text, str):
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkbenchError(f"the checkpoint's stored experiment is damaged: {exc}") from None


def stored_normalizer(checkpoint: dict[str, Any]) -> Normalizer | None:
    """The normaliser a checkpoint's model was trained with; None for a checkpoint written
    before checkpoints stored it (then it is recomputed from the data, as it was then)."""
    data = checkpoint.get("data")
    attrs = data.get("normalizer") if isinstance(data, dict) else None
    if attrs is None:
        return None
    try:
        return Normalizer.from_attrs(attrs)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WorkbenchError(f"the checkpoint's stored normaliser is damaged: {exc}") from None


def _stored_fingerprint(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    data = checkpoint.get("data")
    found = data.get("fingerprint") if isinstance(data, dict) else None
    return found if isinstance(found, dict) else None


def _data_path(config: ExperimentConfig) -> Path | None:
    if config.data.name != "file":
        return None
    return Path(str(config.data.params["path"])).expanduser()


def _file_change(path: Path, stored: dict[str, Any]) -> str | None:
    """How the file at ``path`` differs from the fingerprint ``stored`` (None: the same)."""
    if not isinstance(stored.get("sha256"), str):
        return None  # nothing to compare with
    try:
        if path.stat().st_size != stored.get("size"):
            return f"size {path.stat().st_size} vs {stored.get('size')} bytes"
        now = file_fingerprint(path)
    except OSError as exc:
        return f"it cannot be read: {exc.strerror or exc}"
    if now["sha256"] != stored["sha256"]:
        return "same size, different sha256"
    return None


def check_edits(
    where: str,
    config: ExperimentConfig,
    checkpoint: dict[str, Any],
    *,
    resume: bool = False,
) -> None:
    """Refuse, in one line naming each difference, a config that disagrees with the
    checkpoint's stored experiment in what the model means, or a data file that changed since
    training (its size or SHA-256 differ from the stored fingerprint).

    ``where`` names the config (``runs/a/config.toml``). A data file that is gone is not a
    difference: the run samples with its stored normaliser. A data.path edited to name another
    file with the same bytes (the data were moved) passes. Old checkpoints without a stored
    experiment or fingerprint are checked as far as they go.
    """
    trained = stored_experiment(checkpoint)
    found = [] if trained is None else config_differences(config, trained, resume=resume)
    fingerprint = _stored_fingerprint(checkpoint)
    path = _data_path(config)
    problems: list[str] = []
    if path is not None and fingerprint is not None and path.exists():
        change = _file_change(path, fingerprint)
        if change is None:
            found = [d for d in found if d[0] != "data.path"]  # moved, not changed
        elif str(path) == str(fingerprint.get("path", path)) or not any(
            d[0] == "data.path" for d in found
        ):
            problems.append(f"data file {path} changed since training ({change})")
    if found:
        problems.insert(0, f"{where} differs from its checkpoint in {describe_differences(found)}")
    if problems:
        raise WorkbenchError(
            "; ".join(problems) + "; undo the change, or train a new run in another folder"
        )


class MissingData(DataSet):
    """Stands in for a run's training data when its data file is gone: it knows the shape
    and the stored normaliser, which is all that sampling a trained model needs, and refuses
    to draw points (what needs the data themselves says so in one line)."""

    def __init__(self, name: str, normalizer: Normalizer, why: str, classes: int = 0) -> None:
        self._name = name
        super().__init__()
        self._shape = tuple(normalizer.sample_shape or ())
        self._normalizer = normalizer
        self.why = why
        self.is_image = len(self._shape) == 3
        self._classes = int(classes)

    @property
    def num_classes(self) -> int:
        """A conditional run's classes, read off its label embedding (the labels are gone)."""
        return self._classes

    @property
    def name(self) -> str:
        return self._name

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self._shape

    def _sample(self, n: int, generator: Any) -> Any:
        raise DataError(f"{self.why}: the run's training data are needed here; put it back")

    def fingerprint(self) -> dict[str, Any]:
        return {"name": self._name, "missing": self.why}


def run_dataset(
    config: ExperimentConfig, checkpoint: dict[str, Any], *, need_data: bool = False
) -> DataSet:
    """The data set of a trained run, mapping to model units by the checkpoint's stored
    normaliser. A data file that is gone gives :class:`MissingData` (unless ``need_data``:
    training needs the points); a checkpoint without a stored normaliser (written before they
    were stored) recomputes it from the data, as it always did, so it needs them."""
    normalizer = stored_normalizer(checkpoint)
    path = _data_path(config)
    if normalizer is not None and path is not None and not path.exists() and not need_data:
        label = (checkpoint.get("ema") or {}).get("net.label.weight")
        classes = int(label.shape[0]) - 1 if label is not None else 0  # the last row: null
        why = f"data file {str(path)!r} is gone"
        return MissingData(config.data.name, normalizer, why, classes)
    dataset = dataset_of(config)
    if normalizer is None:
        return dataset
    if tuple(dataset.sample_shape) != tuple(normalizer.sample_shape or ()):
        raise WorkbenchError(
            f"the data now have samples of shape {tuple(dataset.sample_shape)}, the checkpoint "
            f"was trained on {tuple(normalizer.sample_shape or ())}"
        )
    return dataset.with_normalizer(normalizer)


def checkpoint_state(trainer: Trainer, config: ExperimentConfig) -> dict[str, Any]:
    """The trainer's state with ``config`` (the experiment it trains) as TOML under
    ``config``, so a checkpoint read on its own still says what it was trained from. The TOML
    is written here, not by the trainer: core never imports the config."""
    return {**trainer.state_dict(), "config": to_toml(config)}
