"""The study file: one HDF5 file (NeXus) for a sampler or loss study, and its CSV twin.

Layout (docs/format.md, "Study files"): the root is an ``NXroot`` whose ``default`` entry
``/entry`` shows either ``/entry/samplers`` or ``/entry/losses`` (``NXdata`` groups). Every
entry (one sampler at one NFE budget, or one loss) is written and flushed as soon as it
finishes, with ``done`` set and its finishing time stored: an interrupted study keeps what it
finished, and rerunning it with the same arguments skips those entries. The arguments and the
experiment are stored on the root, so a rerun with other arguments is refused, naming the first
one that differs, rather than mixing two studies in one file.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from workbench.errors import WorkbenchError
from workbench.io.nexus import ENTRY, creator

__all__ = ["FORMAT", "FORMAT_VERSION", "SAMPLER_METRICS", "StudyFile", "csv_path"]

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

_STR = h5py.string_dtype()


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
        nfe: Sequence[int] = (),
        times: Sequence[float] = (),
        n_curve: int = 0,
    ) -> StudyFile:
        """Create ``path`` for a ``kind`` study ("samplers" or "losses"), or reopen the one
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
        nfe: Sequence[int],
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
        if kind == "samplers":
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

    def write_sampler_entry(
        self, i: int, j: int, values: Mapping[str, float], nfe: int, steps: int, finished: float
    ) -> None:
        """One sampler at one budget, flushed at once (``done`` last: a crash before the flush
        leaves the entry undone, to be rerun)."""
        g = self.group
        for name in SAMPLER_METRICS:
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
        if self.kind == "samplers":
            names = [s.decode() if isinstance(s, bytes) else str(s) for s in g["sampler"][()]]
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
            names = [s.decode() if isinstance(s, bytes) else str(s) for s in g["loss"][()]]
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
        fields = list(rows[0]) if rows else ["sampler" if self.kind == "samplers" else "loss"]
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


def read_study(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a study file holds, for a plot: ``kind``, ``names`` and, for samplers, ``nfe``,
    ``nfe_actual``, every :data:`SAMPLER_METRICS` array, ``done`` and ``floors`` (name ->
    (mean, std)); for losses ``t``, ``error`` and ``done``. Read-only."""
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise WorkbenchError(f"{path} is not a readable HDF5 file ({exc})") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise WorkbenchError(f"{path} is not a study file")
        kind = str(json.loads(str(f.attrs["arguments"]))["study"])
        g: Any = f[f"{ENTRY}/{kind}"]
        key = "sampler" if kind == "samplers" else "loss"
        names = [s.decode() if isinstance(s, bytes) else str(s) for s in g[key][()]]
        out: dict[str, Any] = {"kind": kind, "names": names, "done": g["done"][()]}
        if kind == "samplers":
            out["nfe"] = g["nfe"][()]
            out["nfe_actual"] = g["nfe_actual"][()]
            for name in SAMPLER_METRICS:
                out[name] = g[name][()]
            out["floors"] = {
                name: (float(g[f"{name}_floor"][()]), float(g[f"{name}_floor_std"][()]))
                for name in FLOORED
            }
        else:
            out["t"] = g["t"][()]
            out["error"] = g["error"][()]
        return out
