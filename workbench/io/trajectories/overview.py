"""What ``inspect`` and the inspector show of a file without plotting it: the summary of a
trajectory file (identity, sizes, ranges, statistics of the final samples) and the list of
every group and dataset of any HDF5 file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from workbench.io.safety import open_beside
from workbench.io.trajectories.layout import FORMAT, as_plain, as_text

if TYPE_CHECKING:
    from workbench.io.trajectories.reader import TrajectoryFile

__all__ = ["nodes", "sample_stats", "summary"]

# Bytes of float64 samples per block when a reader scans the samples for statistics.
_STATS_BLOCK_BYTES = 32 * 1024 * 1024


def sample_stats(tf: TrajectoryFile) -> dict[str, Any] | None:
    """Per-dimension mean/std/min/max of the final samples over their finite values.

    Read in blocks of samples (a file may hold more than fits in memory comfortably);
    blocks are combined with Chan's parallel update, so the std does not cancel: for blocks
    A and B with counts n_A, n_B, means m_A, m_B and sums of squared deviations M_A, M_B,
    ``M = M_A + M_B + (m_B - m_A)^2 n_A n_B / (n_A + n_B)``.
    """
    if not tf.has_samples and tf.n_saved == 0:
        return None
    dim = tf.dim
    count = np.zeros(dim)
    mean = np.zeros(dim)
    m2 = np.zeros(dim)
    low = np.full(dim, np.inf)
    high = np.full(dim, -np.inf)
    nonfinite = 0
    step = max(1, _STATS_BLOCK_BYTES // (8 * dim))
    for start in range(0, tf.n_samples, step):
        block = tf.samples(particles=slice(start, start + step)).astype(np.float64)
        finite = np.isfinite(block)
        nonfinite += int(block.size - finite.sum())
        nb = finite.sum(0)
        safe = np.where(finite, block, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mb = np.where(nb > 0, safe.sum(0) / np.maximum(nb, 1), 0.0)
            m2b = np.where(finite, (block - mb) ** 2, 0.0).sum(0)
        total = count + nb
        delta = mb - mean
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(total > 0, mean + delta * nb / np.maximum(total, 1), 0.0)
            m2 = m2 + m2b + delta**2 * count * nb / np.maximum(total, 1)
        count = total
        low = np.minimum(low, np.where(finite, block, np.inf).min(0))
        high = np.maximum(high, np.where(finite, block, -np.inf).max(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(m2 / count)

    def listed(a: np.ndarray) -> list[float | None]:
        return [float(v) if math.isfinite(v) else None for v in a]

    return {
        "source": "samples" if tf.has_samples else "last_row",
        "mean": listed(np.where(count > 0, mean, np.nan)),
        "std": listed(std),
        "min": listed(low),
        "max": listed(high),
        "nonfinite": nonfinite,
    }


def summary(tf: TrajectoryFile) -> dict[str, Any]:
    """A JSON-able overview: identity, sizes, time range and final-sample statistics."""
    times, steps = tf.times, tf.steps
    normalizer = tf.normalizer
    out: dict[str, Any] = {
        "path": str(tf.path),
        "format": FORMAT,
        "format_version": tf.format_version,
        "software": tf.software,
        "created": tf.created,
        "complete": tf.complete,
        "sampler": tf.sampler,
        "direction": tf.direction,
        "nfe": tf.nfe,
        "n_saved": tf.n_saved,
        "n_samples": tf.n_samples,
        "dim": tf.dim,
        "sample_shape": list(tf.sample_shape),
        "t_range": [float(times[0]), float(times[-1])] if len(times) else None,
        "step_range": [int(steps[0]), int(steps[-1])] if len(steps) else None,
        "normalizer": None if normalizer is None else normalizer.mode,
        "has_logp": tf.has_logp,
        "file_size": tf.path.stat().st_size,
    }
    out["samples"] = sample_stats(tf)
    if tf.has_logp:
        lp = tf.logp()
        finite = lp[np.isfinite(lp)]
        out["logp_mean"] = float(finite.mean()) if len(finite) else None
    return out


def _attributes(obj: Any) -> list[tuple[Any, Any]]:
    """The attributes of ``obj``, (name, value) in the order h5py lists them.

    HDF5 cannot iterate over the attributes of a dataset opened with an external-file prefix
    (it reopens the dataset with the default one and refuses the mismatch), so those of the
    external datasets :func:`~workbench.io.safety.open_beside` opens are read by index.
    """
    try:
        return list(obj.attrs.items())
    except RuntimeError:
        names = [h5py.h5a.open(obj.id, index=i).name for i in range(h5py.h5a.get_num_attrs(obj.id))]
        return [(name, obj.attrs[name]) for name in names]


def nodes(h5: h5py.File, guard: Callable[[Callable[[], Any]], Any]) -> list[dict[str, Any]]:
    """Every group and dataset of ``h5``: name, kind, shape, dtype, chunks, compression and
    attributes (plain values). ``guard(fn)`` runs the walk, turning read failures into errors.
    """
    out: list[dict[str, Any]] = [
        {
            "name": "/",
            "kind": "group",
            "attrs": {as_text(k): as_plain(v) for k, v in h5.attrs.items()},
        }
    ]

    def visit(name: str, obj: Any) -> None:
        entry: dict[str, Any] = {"name": "/" + name}
        if isinstance(obj, h5py.Dataset):
            entry.update(
                kind="dataset",
                shape=list(obj.shape),
                dtype=str(obj.dtype),
                chunks=list(obj.chunks) if obj.chunks else None,
                compression=(
                    None
                    if obj.compression is None
                    else f"{obj.compression} ({obj.compression_opts})"
                    if obj.compression_opts is not None
                    else str(obj.compression)
                ),
            )
        else:
            entry["kind"] = "group"
        try:
            entry["attrs"] = {as_text(k): as_plain(v) for k, v in _attributes(obj)}
        except (OSError, TypeError):
            entry["attrs"] = {}
        out.append(entry)

    def walk() -> None:
        # each object opened through open_beside, as the reader opens it: HDF5 refuses a
        # default open of an external dataset the reader holds with its prefix
        names: list[str] = []
        h5.visit(names.append)
        for name in names:
            visit(name, open_beside(h5, name))

    guard(walk)
    return out
