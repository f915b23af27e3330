"""The study file: one HDF5 file (NeXus) for a sampler, loss or guidance study, and its CSV twin.

Layout (docs/format.md, "Study files"): the root is an ``NXroot`` whose ``default`` entry
``/entry`` shows ``/entry/samplers``, ``/entry/losses`` or ``/entry/guidance`` (``NXdata``
groups). A guidance study is laid out as a sampler study with the guidance weights w in
place of the NFE budgets (axes ``sampler`` x ``guidance``), and keeps its noise floors per
entry (they depend on w: each w has its own tilted target). Every
entry (one sampler at one NFE budget, or one loss) is written and flushed as soon as it
finishes, with ``done`` set and its finishing time stored: an interrupted study keeps what it
finished, and rerunning it with the same arguments skips those entries. The arguments and the
experiment are stored on the root, so a rerun with other arguments is refused, naming the first
one that differs, rather than mixing two studies in one file.

A sampler study also keeps each entry's final samples (data units, float32) in
``/entry/samplers/samples``, so a point of the error-vs-NFE plot can be opened as the sample set
it measures. The dataset is made at the first entry that stores samples (its size is known
then), so files written before it existed still open, resume and plot: they just have no
samples to show (:func:`read_samples` says so in one line).
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from workbench.errors import WorkbenchError
from workbench.io.nexus import ENTRY, creator

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "GUIDANCE_METRICS",
    "SAMPLER_METRICS",
    "StudySamples",
    "StudyFile",
    "csv_path",
    "read_samples",
    "read_study",
]

FORMAT = "sde-workbench/study"
FORMAT_VERSION = 1

#: the (n_samplers, n_nfe) float datasets of /entry/samplers, NaN until measured
SAMPLER_METRICS = (
    "log_density_gap",
    "proportion_tv",
    "sw",
    "mmd",
    "energy",
    "pathwise_error",
    "seconds",
)
#: the measurements that have a noise floor (stored as <name>_floor and <name>_floor_std)
FLOORED = ("log_density_gap", "proportion_tv", "sw", "mmd", "energy")
#: the (n_samplers, n_guidance) float datasets of /entry/guidance, NaN until measured: each
#: distance to the tilted density at that w (no prefix) and to p(x|c) (``conditional_``/
#: ``sw_conditional``), with the (mean, sd) floor of a perfect sampler of that target at this n
#: (a log-density gap's floor mean is 0, so only its sd is stored)
GUIDANCE_METRICS = (
    "log_density_gap",
    "log_density_gap_floor_std",
    "sw",
    "sw_floor",
    "sw_floor_std",
    "conditional_log_density_gap",
    "conditional_log_density_gap_floor_std",
    "sw_conditional",
    "sw_conditional_floor",
    "sw_conditional_floor_std",
    "seconds",
)

_STR = h5py.string_dtype()
#: the samples dataset's chunks hold about this many bytes (one chunk: part of one entry's
#: samples), so reading one entry touches only its own chunks and unwritten entries take no space
_CHUNK_BYTES = 4 << 20


def csv_path(out: str | os.PathLike[str]) -> Path:
    """The CSV beside a study file: the same name with ``.csv``."""
    return Path(out).with_suffix(".csv")


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


class StudyFile:
    """An open study file, created or resumed by :meth:`open`; a context manager."""

    def __init__(self, f: h5py.File, kind: str) -> None:
        self.f = f
        self.kind = kind
        self.group: Any = f[f"{ENTRY}/{kind}"]

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        kind: str,
        arguments: Mapping[str, Any],
        config_toml: str,
        *,
        names: Sequence[str],
        nfe: Sequence[float] = (),
        times: Sequence[float] = (),
        n_curve: int = 0,
    ) -> StudyFile:
        """Create ``path`` for a ``kind`` study ("samplers", "losses" or "guidance": then
        ``nfe`` are the guidance weights), or reopen the one
        there to resume it: refused (one line naming the first difference) when it was made
        with other arguments or another experiment."""
        path = Path(path)
        if path.exists():
            if not path.is_file():
                raise WorkbenchError(f"{path} exists and is not a file: choose another --out")
            return cls._resume(path, kind, arguments, config_toml)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            f = h5py.File(path, "w")
        except OSError as exc:
            raise WorkbenchError(f"cannot create {path}: {exc.strerror or exc}") from None
        try:
            cls._create(f, kind, arguments, config_toml, names, nfe, times, n_curve)
        except BaseException:
            f.close()
            path.unlink(missing_ok=True)
            raise
        f.flush()
        return cls(f, kind)

    @classmethod
    def _resume(
        cls, path: Path, kind: str, arguments: Mapping[str, Any], config_toml: str
    ) -> StudyFile:
        try:
            f = h5py.File(path, "a")
        except OSError as exc:
            raise WorkbenchError(f"{path} exists and is not a readable HDF5 file ({exc})") from None
        try:
            if f.attrs.get("format") != FORMAT:
                raise WorkbenchError(f"{path} exists and is not a study file: use another --out")
            stored = json.loads(str(f.attrs["arguments"]))
            wanted = {"study": kind, **arguments}
            for key in [*wanted, *(k for k in stored if k not in wanted)]:
                if stored.get(key) != json.loads(json.dumps(wanted.get(key))):
                    raise WorkbenchError(
                        f"{path} holds a study with {key} = {_show(stored.get(key))}, not "
                        f"{_show(wanted.get(key))}: rerun with the same arguments to resume it, "
                        "or choose another --out"
                    )
            if str(f.attrs["config"]) != config_toml:
                raise WorkbenchError(
                    f"{path} holds a study of another experiment (its config differs): rerun "
                    "with the same experiment to resume it, or choose another --out"
                )
        except BaseException:
            f.close()
            raise
        return cls(f, kind)

    @staticmethod
    def _create(
        f: h5py.File,
        kind: str,
        arguments: Mapping[str, Any],
        config_toml: str,
        names: Sequence[str],
        nfe: Sequence[float],
        times: Sequence[float],
        n_curve: int,
    ) -> None:
        now = datetime.datetime.now(datetime.UTC).isoformat()
        attrs: Any = f.attrs
        attrs["NX_class"] = "NXroot"
        attrs["default"] = ENTRY
        attrs["creator"] = creator()
        attrs["file_time"] = now
        attrs["format"] = FORMAT
        attrs["format_version"] = FORMAT_VERSION
        attrs["arguments"] = json.dumps({"study": kind, **arguments})
        attrs["config"] = config_toml
        entry = f.create_group(ENTRY)
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = kind
        g = entry.create_group(kind)
        g.attrs["NX_class"] = "NXdata"
        s = len(names)
        if kind == "guidance":
            g.attrs["signal"] = "log_density_gap"
            g.attrs["axes"] = ["sampler", "guidance"]
            g.attrs["sampler_indices"] = 0
            g.attrs["guidance_indices"] = 1
            g.create_dataset("sampler", data=list(names), dtype=_STR)
            g.create_dataset("guidance", data=np.asarray(nfe, dtype=np.float64))
            g.create_dataset("class_label", data=np.int64(arguments.get("class_label", -1)))
            shape = (s, len(nfe))
            for name in GUIDANCE_METRICS:
                g.create_dataset(name, data=np.full(shape, np.nan))
            g.create_dataset("nfe_actual", data=np.full(shape, -1, dtype=np.int64))
            g.create_dataset("steps", data=np.full(shape, -1, dtype=np.int64))
            g.create_dataset("finished_at", data=np.full(shape, np.nan))
            g.create_dataset("done", data=np.zeros(shape, dtype=bool))
        elif kind == "samplers":
            g.attrs["signal"] = "log_density_gap"
            g.attrs["axes"] = ["sampler", "nfe"]
            g.attrs["sampler_indices"] = 0
            g.attrs["nfe_indices"] = 1
            g.create_dataset("sampler", data=list(names), dtype=_STR)
            g.create_dataset("nfe", data=np.asarray(nfe, dtype=np.int64))
            shape = (s, len(nfe))
            for name in SAMPLER_METRICS:
                g.create_dataset(name, data=np.full(shape, np.nan))
            g.create_dataset("nfe_actual", data=np.full(shape, -1, dtype=np.int64))
            g.create_dataset("steps", data=np.full(shape, -1, dtype=np.int64))
            g.create_dataset("finished_at", data=np.full(shape, np.nan))
            g.create_dataset("done", data=np.zeros(shape, dtype=bool))
            for name in FLOORED:
                g.create_dataset(f"{name}_floor", data=np.nan)
                g.create_dataset(f"{name}_floor_std", data=np.nan)
        else:
            g.attrs["signal"] = "error"
            g.attrs["axes"] = ["loss", "t"]
            g.attrs["loss_indices"] = 0
            g.attrs["t_indices"] = 1
            g.create_dataset("loss", data=list(names), dtype=_STR)
            g.create_dataset("t", data=np.asarray(times, dtype=np.float64))
            g.create_dataset("error", data=np.full((s, len(times)), np.nan))
            g.create_dataset("loss_step", data=np.zeros(n_curve, dtype=np.int64))
            g.create_dataset("loss_curve", data=np.full((s, n_curve), np.nan))
            g.create_dataset("final_loss", data=np.full(s, np.nan))
            g.create_dataset("seconds", data=np.full(s, np.nan))
            g.create_dataset("finished_at", data=np.full(s, np.nan))
            g.create_dataset("done", data=np.zeros(s, dtype=bool))

    # -- state --------------------------------------------------------------------------------
    def done(self) -> np.ndarray:
        return np.asarray(self.group["done"][()], dtype=bool)

    def has_floors(self) -> bool:
        return bool(np.isfinite(self.group["sw_floor"][()]))

    def write_floors(self, values: Mapping[str, tuple[float, float]]) -> None:
        for name in FLOORED:
            mean, std = values[name]
            self.group[f"{name}_floor"][()] = mean
            self.group[f"{name}_floor_std"][()] = std
        self.f.flush()

    def _samples_dataset(self, n: int, dim: int) -> Any:
        """``samples`` (S, N, n, dim) float32, NaN where no entry wrote; made on first use."""
        g = self.group
        if "samples" in g:
            ds = g["samples"]
            if tuple(ds.shape[2:]) != (n, dim):
                raise WorkbenchError(
                    f"{self.f.filename} stores samples of shape {tuple(ds.shape[2:])}, not "
                    f"{(n, dim)}: choose another --out"
                )
            return ds
        rows = max(1, min(n, _CHUNK_BYTES // (4 * dim)))
        s, b = g["done"].shape
        ds = g.create_dataset(
            "samples",
            shape=(s, b, n, dim),
            dtype=np.float32,
            chunks=(1, 1, rows, dim),
            fillvalue=np.float32(np.nan),
        )
        ds.attrs["long_name"] = "final samples (data units)"
        ds.attrs["sample_shape"] = np.asarray([dim], dtype=np.int64)
        return ds

    def write_sampler_entry(
        self,
        i: int,
        j: int,
        values: Mapping[str, float],
        nfe: int,
        steps: int,
        finished: float,
        samples: np.ndarray | None = None,
        grid: str = "",
    ) -> None:
        """One sampler at one budget (a guidance study: at one w, with the values of
        :data:`GUIDANCE_METRICS`), flushed at once (``done`` last: a crash before the flush
        leaves the entry undone, to be rerun). ``samples`` (n, ...) in data units are stored
        as float32; ``grid`` is the time grid that ran ("" for an adaptive solver)."""
        g = self.group
        if samples is not None:
            flat = np.asarray(samples, dtype=np.float32).reshape(len(samples), -1)
            ds = self._samples_dataset(*flat.shape)
            ds[i, j] = flat
        if grid:
            if "grid" not in g:
                g.create_dataset(
                    "grid", data=np.full(g["done"].shape, "", dtype=object), dtype=_STR
                )
            g["grid"][i, j] = grid
        for name in GUIDANCE_METRICS if self.kind == "guidance" else SAMPLER_METRICS:
            g[name][i, j] = float(values.get(name, math.nan))
        g["nfe_actual"][i, j] = int(nfe)
        g["steps"][i, j] = int(steps)
        g["finished_at"][i, j] = finished
        g["done"][i, j] = True
        self.f.flush()

    def write_loss_entry(
        self,
        i: int,
        error: np.ndarray,
        curve_steps: np.ndarray,
        curve: np.ndarray,
        seconds: float,
        finished: float,
    ) -> None:
        g = self.group
        g["error"][i, :] = error
        k = min(len(curve), g["loss_curve"].shape[1])
        if k:
            g["loss_step"][:k] = curve_steps[:k]
            g["loss_curve"][i, :k] = curve[:k]
            g["final_loss"][i] = float(curve[k - 1])
        g["seconds"][i] = seconds
        g["finished_at"][i] = finished
        g["done"][i] = True
        self.f.flush()

    def rows(self) -> list[dict[str, Any]]:
        """One dict per finished run, as the CSV holds them."""
        g = self.group
        done = self.done()
        rows: list[dict[str, Any]] = []
        if self.kind == "guidance":
            names = _texts(g["sampler"])
            weights, c = g["guidance"][()], int(g["class_label"][()])
            data = {k: g[k][()] for k in (*GUIDANCE_METRICS, "nfe_actual", "steps")}
            for i, name in enumerate(names):
                for j, w in enumerate(weights):
                    if done[i, j]:
                        entry: dict[str, Any] = {
                            "sampler": name,
                            "class_label": c,
                            "guidance": float(w),
                            "nfe": int(data["nfe_actual"][i, j]),
                            "steps": int(data["steps"][i, j]),
                        }
                        entry.update({k: float(data[k][i, j]) for k in GUIDANCE_METRICS})
                        rows.append(entry)
        elif self.kind == "samplers":
            names = _texts(g["sampler"])
            budgets = g["nfe"][()]
            data = {k: g[k][()] for k in (*SAMPLER_METRICS, "nfe_actual", "steps")}
            for i, name in enumerate(names):
                for j, budget in enumerate(budgets):
                    if not done[i, j]:
                        continue
                    row: dict[str, Any] = {
                        "sampler": name,
                        "nfe_budget": int(budget),
                        "nfe": int(data["nfe_actual"][i, j]),
                        "steps": int(data["steps"][i, j]),
                    }
                    row.update({k: float(data[k][i, j]) for k in SAMPLER_METRICS})
                    rows.append(row)
        else:
            names = _texts(g["loss"])
            error, final, seconds = g["error"][()], g["final_loss"][()], g["seconds"][()]
            for i, name in enumerate(names):
                if done[i]:
                    rows.append(
                        {
                            "loss": name,
                            "mean_error": float(np.mean(error[i])),
                            "final_loss": float(final[i]),
                            "seconds": float(seconds[i]),
                        }
                    )
        return rows

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        """The finished runs as CSV (one row each; empty cells for NaN), written whole and
        renamed into place, so a reader never meets half a file."""
        path = Path(path)
        rows = self.rows()
        tmp = path.with_name(path.name + ".tmp")
        fields = list(rows[0]) if rows else ["loss" if self.kind == "losses" else "sampler"]
        with open(tmp, "w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=fields)
            writer.writeheader()
            for row in rows:
                writer.writerow(
                    {
                        k: ("" if isinstance(v, float) and not math.isfinite(v) else v)
                        for k, v in row.items()
                    }
                )
        os.replace(tmp, path)
        return path

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> StudyFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _texts(dataset: Any) -> list[str]:
    """A stored list of names (h5py gives variable-length strings as bytes or str)."""
    return [s.decode() if isinstance(s, bytes) else str(s) for s in dataset[()]]


@contextmanager
def _open_study(path: Path) -> Iterator[tuple[Any, str]]:
    """A study file opened read-only, with its kind ("samplers", "losses", "guidance");
    one-line WorkbenchError for a file that is not one."""
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise WorkbenchError(f"{path} is not a readable HDF5 file ({exc})") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise WorkbenchError(f"{path} is not a study file")
        yield f, str(json.loads(str(f.attrs["arguments"]))["study"])


def read_study(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a study file holds, for a plot: ``kind``, ``names`` and, for guidance,
    ``guidance`` (the w's), ``class_label``, ``nfe_actual``, every :data:`GUIDANCE_METRICS`
    array, ``done`` and ``has_samples``; for samplers, ``nfe``,
    ``nfe_actual``, every :data:`SAMPLER_METRICS` array, ``done``, ``floors`` (name ->
    (mean, std)) and ``has_samples`` (whether the entries' samples are stored, for
    :func:`read_samples`); for losses ``t``, ``error`` and ``done``. Read-only."""
    path = Path(path)
    with _open_study(path) as (f, kind):
        g: Any = f[f"{ENTRY}/{kind}"]
        key = "loss" if kind == "losses" else "sampler"
        names = _texts(g[key])
        out: dict[str, Any] = {"kind": kind, "names": names, "done": g["done"][()]}
        if kind == "guidance":
            out["guidance"] = g["guidance"][()]
            out["class_label"] = int(g["class_label"][()])
            out["nfe_actual"] = g["nfe_actual"][()]
            for name in GUIDANCE_METRICS:
                out[name] = g[name][()]
            out["has_samples"] = "samples" in g
        elif kind == "samplers":
            out["nfe"] = g["nfe"][()]
            out["nfe_actual"] = g["nfe_actual"][()]
            for name in SAMPLER_METRICS:
                out[name] = g[name][()]
            out["has_samples"] = "samples" in g
            out["floors"] = {
                name: (float(g[f"{name}_floor"][()]), float(g[f"{name}_floor_std"][()]))
                for name in FLOORED
            }
        else:
            out["t"] = g["t"][()]
            out["error"] = g["error"][()]
        return out


@dataclass(frozen=True)
class StudySamples:
    """One entry's final samples: ``points`` (n, dim) float32 in data units, with the sampler
    spec, the budget and the NFE it used, its time grid ("" when not recorded) and the
    study's experiment (TOML). A guidance study's entry also has its ``class_label`` and
    ``guidance`` w (None for the other studies; ``nfe_budget`` is then the NFE used)."""

    points: np.ndarray
    sampler: str
    nfe_budget: int
    nfe: int
    grid: str
    config_toml: str
    path: Path
    class_label: int | None = None
    guidance: float | None = None

    @property
    def title(self) -> str:
        grid = f", {self.grid} grid" if self.grid else ""
        if self.guidance is not None:
            return f"{self.sampler}, class {self.class_label} at w = {self.guidance:g}{grid}"
        return f"{self.sampler} at {self.nfe} NFE{grid}"


def read_samples(path: str | os.PathLike[str], sampler: int | str, budget: int) -> StudySamples:
    """The final samples of sampler ``sampler`` (index or spec) at the budget of index
    ``budget`` (a guidance study: at its ``budget``-th w), read-only. One-line WorkbenchError
    when the entry is not there: not run yet, or a file from before samples were stored."""
    path = Path(path)
    with _open_study(path) as (f, kind):
        if kind == "losses":
            raise WorkbenchError(f"{path} is a loss study: it holds no samples")
        g: Any = f[f"{ENTRY}/{kind}"]
        guided = kind == "guidance"
        names = _texts(g["sampler"])
        if isinstance(sampler, str):
            if sampler not in names:
                raise WorkbenchError(f"{path} has no sampler {sampler!r}")
            i = names.index(sampler)
        else:
            i = int(sampler)
        budgets = g["guidance"][()] if guided else g["nfe"][()]
        j = int(budget)
        if not (0 <= i < len(names) and 0 <= j < len(budgets)):
            raise WorkbenchError(f"{path} has no entry ({i}, {j})")
        what = f"{names[i]} at w = {budgets[j]:g}" if guided else f"{names[i]} at {budgets[j]} NFE"
        if not bool(g["done"][i, j]):
            raise WorkbenchError(f"{path}: {what} has not been run yet")
        if "samples" not in g:
            raise WorkbenchError(
                f"{path} was written before studies kept their samples: rerun the study into "
                "a new file to open its points"
            )
        points = np.asarray(g["samples"][i, j], dtype=np.float32)
        if np.isnan(points).all():
            raise WorkbenchError(f"{path}: {what} was stored without its samples")
        grid = ""
        if "grid" in g:
            raw = g["grid"][i, j]
            grid = raw.decode() if isinstance(raw, bytes) else str(raw)
        nfe = int(g["nfe_actual"][i, j])
        return StudySamples(
            points,
            names[i],
            nfe if guided else int(budgets[j]),
            nfe,
            grid,
            str(f.attrs["config"]),
            path,
            int(g["class_label"][()]) if guided else None,
            float(budgets[j]) if guided else None,
        )
