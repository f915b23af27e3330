"""Two sets of samples compared: each metric between them beside its noise floor.

A distance between finite samples is never zero, even between two draws of one law; the floor
(the same metric between pairs of fresh draws of the reference, mean and std over ``repeats``
pairs, :func:`workbench.core.metrics.noise_floor`) is the yardstick that says whether a value
is small.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from workbench.core.metrics import energy_distance, mmd2, noise_floor, sliced_wasserstein

__all__ = ["COMPARE_METRICS", "compare_samples", "subsample"]

COMPARE_REPEATS = 5  # noise floor: pairs of fresh reference samples
COMPARE_SEED = 0

COMPARE_METRICS = (
    ("sliced Wasserstein", sliced_wasserstein),
    ("MMD²", mmd2),
    ("energy distance", energy_distance),
)


def subsample(x: np.ndarray, n: int, seed: int = COMPARE_SEED) -> np.ndarray:
    """At most ``n`` rows of ``x`` flattened to (rows, values): a seeded choice without
    replacement, kept in file order."""
    x = x.reshape(len(x), -1)
    if len(x) <= n:
        return x
    keep = np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))
    return x[keep]


def compare_samples(
    a: np.ndarray,
    b: np.ndarray,
    reference: Any | None,
    *,
    repeats: int = COMPARE_REPEATS,
    seed: int = COMPARE_SEED,
    cancelled: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Each metric between ``a`` and ``b`` (n, d) beside its noise floor (mean, std) between
    fresh draws of ``reference`` (a data set with ``sample``; None: no floor)."""
    n = min(len(a), len(b))
    out: dict[str, Any] = {"n": n, "metrics": {}}
    for name, fn in COMPARE_METRICS:
        if cancelled():
            return out
        gen = torch.Generator().manual_seed(seed)
        value = float(fn(torch.from_numpy(a), torch.from_numpy(b), generator=gen))
        floor = None
        if reference is not None and n >= 2:
            fgen = torch.Generator().manual_seed(seed + 1)

            def draw(k: int, g: torch.Generator | None) -> Any:
                return reference.sample(k, g, dtype=torch.float64).reshape(k, -1)

            floor = noise_floor(fn, draw, n, repeats=repeats, generator=fgen)
        out["metrics"][name] = (value, floor)
    return out
