"""Solving the Fokker–Planck equation of an experiment into a file: the job behind
``sde-workbench fpk`` (the file format is :mod:`workbench.io.fpk_file`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.config import ExperimentConfig, to_toml
from workbench.core.experiment import dataset_of, sde_of
from workbench.core.sde import SDE
from workbench.errors import WorkbenchError
from workbench.io.fpk_file import EXISTS_HINT, write_fpk
from workbench.io.paths import check_destination

__all__ = ["AUTO_GRID_MAX", "DEFAULT_TIMES", "FPKFileResult", "solve_config_to_file"]

#: the output times, as fractions of T, when none are asked for
DEFAULT_TIMES = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)

#: the largest grid the default sizing picks for a pure diffusion (VE: one exact step per
#: output time, so a fine grid is cheap); SDEs with a drift keep the default grid and warn
AUTO_GRID_MAX = {1: 4096, 2: 512}


@dataclass
class FPKFileResult:
    """What a solve wrote: the file, its grid (cells per axis), the data's dimension, the
    stored times, the largest |mass - 1| over them, the mass clipped, the solver's warnings."""

    path: Path
    grid: int
    dim: int
    times: np.ndarray
    mass_error: float
    clipped: float
    warnings: list[str] = field(default_factory=list)


def solve_config_to_file(
    config: ExperimentConfig,
    out: str | Path,
    *,
    grid: int | None = None,
    times: Sequence[float] | None = None,
    progress: Callable[[float], None] | None = None,
) -> FPKFileResult:
    """Solve the Fokker–Planck equation of an experiment's SDE and data; write it to ``out``."""
    import torch

    from workbench.core.fpk import (
        density_from_data,
        feature_width,
        grid_bounds,
        resolution_check,
        solve_fpk,
    )
    from workbench.core.sde import check_times

    # checked before the solve, which may take minutes, and again when the file is moved in
    out = check_destination(out, False, force_hint=EXISTS_HINT)
    sde = sde_of(config)
    T = float(getattr(sde, "T", 1.0))
    if times is not None:  # refused now, not after minutes of solving towards a time past T
        times = check_times(times, T, "--times: time")
    dataset = dataset_of(config)
    if dataset.dim > 2:
        raise WorkbenchError(
            f"the Fokker–Planck solver works in 1-D and 2-D; data set {dataset.name!r} "
            f"has {dataset.dim} dimensions"
        )
    ts = tuple(times) if times is not None else tuple(t * T for t in DEFAULT_TIMES)
    n = grid or (256 if dataset.dim == 1 else 128)
    normalizer = dataset.normalizer()
    gen = torch.Generator().manual_seed(0)
    x = normalizer.to_model(dataset.sample(20000, generator=gen).to(torch.float64))
    bounds = grid_bounds(sde, x.reshape(len(x), -1).numpy(), max(ts))
    width0 = feature_width(dataset, normalizer)
    if grid is None and _pure_diffusion(sde):
        # VE spreads p_T over a range sigma_max wide while p_0 keeps the data's fine detail:
        # refine the grid (cheap without a drift) until every requested p_t is resolved
        while n < AUTO_GRID_MAX[dataset.dim]:
            spacing = [(hi - lo) / n for lo, hi in bounds]
            if resolution_check(sde, width0, spacing, ts)[1] is None:
                break
            n = min(2 * n, AUTO_GRID_MAX[dataset.dim])

    def initial(points: np.ndarray) -> np.ndarray:
        axes = [np.unique(points[:, i]) for i in range(points.shape[1])]
        return density_from_data(dataset, normalizer, axes).reshape(-1)

    solution = solve_fpk(sde, initial, n, ts, bounds=bounds, progress=progress, width0=width0)
    write_fpk(
        out,
        solution,
        sde_kind=config.sde.kind,
        config_toml=to_toml(config),
        normalizer=normalizer,
    )
    return FPKFileResult(
        path=out,
        grid=n,
        dim=dataset.dim,
        times=solution.times,
        mass_error=float(np.max(np.abs(solution.mass - 1.0))),
        clipped=solution.clipped,
        warnings=list(solution.warnings),
    )


def _pure_diffusion(sde: SDE) -> bool:
    """Whether f = 0 on [0, T] (VE), where the solver needs no time steps between outputs."""
    import torch

    from workbench.core.sde import LinearSDE

    if not isinstance(sde, LinearSDE):
        return False
    t = torch.linspace(0.0, float(sde.T), 17, dtype=torch.float64)
    return bool(torch.all(torch.as_tensor(sde.drift_coeff(t)) == 0))
