"""The guidance study: how far classifier-free guided samples land from the tilted density as
the guidance weight w grows. The job behind ``sde-workbench study --class K --guidance W,W``.

Classifier-free guidance samples with the field (1 + w) grad log p_t(x|c) - w grad log p_t(x).
At t = 0 that field is the score of the tilted density q_w = p(x|c)^(1+w) p(x)^(-w) / Z, and
guidance is often described as sampling q_w; it does not, because noising does not commute
with the powers (:mod:`workbench.core.guidance`). With Gaussian-mixture data q_w is known (its
normaliser on a grid), so the distance of the guided samples from it can be measured, beside
what a perfect sampler of q_w scores with the same n (the noise floor):

- the log-density gap E_samples[log q_w] - E_{q_w}[log q_w] (floor (0, sd(log q_w)/sqrt(n)))
  and the sliced Wasserstein distance to draws of q_w, with its floor (mean, sd);
- the same two against p(x|c) itself, which is what a user may expect guidance to sample.

For each sampler (the config's, or ``samplers``) and each w: n points from the same seeded x_T
for every w and sampler (and the same noise for a stochastic sampler at every w), so the
differences along w are the guidance's own. At w = 0 the target is p(x|c) and a good sampler
lands within the floor; for w > 0 the gap is the price of the guidance.

A sampler runs at the config's ``sample.steps``, or at the step count that costs ``nfe`` score
evaluations (as in the sampler study; a guided evaluation costs two network calls for w > 0).
The file (:class:`workbench.io.study_file.StudyFile`, kind "guidance") is written one entry
at a time, flushed; a rerun with the same arguments resumes, skipping finished entries.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from workbench.config import ExperimentConfig, to_toml
from workbench.core.data import DataSet
from workbench.core.guidance import TiltedGrid, guidance_gap, guide, tilted_grid
from workbench.core.samplers import build_sampler
from workbench.core.study import steps_for_nfe
from workbench.errors import ConfigError, WorkbenchError
from workbench.io.study_file import StudyFile
from workbench.jobs.study import (
    FIXED_INTEGRATOR,
    Progress_,
    StudyResult,
    _data_mixture,
    _finish,
    _label,
    _sampling_setup,
    _tick,
    _timed_samples,
    _write_entry,
    parse_samplers,
)

__all__ = ["DEFAULT_GUIDANCE", "check_class", "check_weights", "guidance_study"]

DEFAULT_GUIDANCE = (0.0, 0.5, 1.0, 2.0, 4.0)
#: pairs of exact draws the sliced Wasserstein floor's (mean, sd) is taken over: its sd from 3
#: (the sampler study's) swung by a factor of 10 from one w to the next; 1-D and 2-D draws of
#: n points cost little next to the sampling
FLOOR_REPEATS = 10


def check_weights(weights: Sequence[float], key: str = "--guidance") -> list[float]:
    """The guidance weights: finite, >= 0, each once, at least one (one-line errors that
    begin with ``key``, the option or field they came from)."""
    out: list[float] = []
    if not weights:
        raise WorkbenchError(f"{key}: give at least one weight, e.g. 0,0.5,1,2,4")
    for value in weights:
        w = float(value)
        if not math.isfinite(w) or w < 0:
            raise WorkbenchError(f"{key}: {w:g} is not a weight (a number >= 0)")
        if w in out:
            raise WorkbenchError(f"{key}: {w:g} is named twice")
        out.append(w)
    return out


def check_class(class_label: int, dataset: DataSet) -> int:
    """``class_label`` as a component of the data's mixture (one-line error otherwise; the
    data must be a Gaussian mixture in 1-D or 2-D, where the tilted density is normalised)."""
    mixture = _data_mixture(dataset)
    k = mixture.n_components
    if isinstance(class_label, bool) or not 0 <= int(class_label) < k:
        raise WorkbenchError(
            f"--class: the data's {k} classes are 0 .. {k - 1} (one per mixture component), "
            f"not {class_label}"
        )
    if mixture.dim not in (1, 2):
        raise WorkbenchError(
            f"a guidance study normalises the tilted density on a grid, in 1-D or 2-D; these "
            f"data have {mixture.dim} dimensions"
        )
    return int(class_label)


def guidance_study(
    config: ExperimentConfig,
    model: nn.Module,
    dataset: DataSet,
    out: str | os.PathLike[str],
    *,
    class_label: int,
    guidance: Sequence[float] = DEFAULT_GUIDANCE,
    samplers: Sequence[str] | None = None,
    nfe: int | None = None,
    n: int | None = None,
    seed: int | None = None,
    source: str = "",
    device: str | torch.device | None = None,
    progress: Progress_ | None = None,
    cancel: Callable[[], bool] | None = None,
) -> StudyResult:
    """Sample class ``class_label`` guided at every w of ``guidance`` with every sampler of
    ``samplers`` (default: the config's ``sample.sampler``) into ``out`` (resumed if it holds
    this study), measuring each against the tilted density at w and against p(x|c)."""
    started = time.perf_counter()
    weights = check_weights(guidance)
    specs = parse_samplers(samplers) if samplers else [(str(config.sample.sampler), None)]
    if nfe is not None and int(nfe) < 1:
        raise WorkbenchError(f"--nfe: must be a positive number of score evaluations, got {nfe}")
    c = check_class(class_label, dataset)
    try:
        guide(model, c, weights[-1])  # a network without classes fails before the file is made
    except ConfigError as exc:
        raise WorkbenchError(f"--class: {exc.message}") from None
    n, seed, mixture, dev, normalizer, sde, model, base, shape = _sampling_setup(
        config, model, dataset, n, seed, device
    )
    labels = [_label(s) for s in specs]
    arguments = {
        "source": source,
        "class_label": c,
        "guidance": weights,
        "samplers": labels,
        "nfe": None if nfe is None else int(nfe),
        "n": n,
        "seed": seed,
    }

    def params(spec: tuple[str, str | None], steps: int) -> dict[str, Any]:
        p = {**base, "sampler": spec[0], "steps": steps}
        if spec[1] is not None:
            p["integrator"] = spec[1]
        elif nfe is not None and base.get("integrator") == "rk45":
            p["integrator"] = FIXED_INTEGRATOR  # a budget needs a fixed grid
        return p

    steps_of: dict[int, int] = {}

    def sampler_for(i: int, score: nn.Module) -> Any:
        spec = specs[i]
        if nfe is None:
            return build_sampler(sde, score, params(spec, int(base["steps"])))
        if i not in steps_of:

            def make(steps: int, fn: Any) -> Any:
                return build_sampler(sde, fn, params(spec, steps))

            probe = make(1, score)
            steps_of[i] = -1 if probe.adaptive else steps_for_nfe(make, int(nfe), shape)[0]
        steps = steps_of[i]
        return build_sampler(sde, score, params(spec, 1 if steps < 0 else steps))

    conditional = tilted_grid(mixture, c, 0.0)
    grids: dict[float, TiltedGrid] = {}
    warnings: list[str] = []
    ran = skipped = 0
    total = len(specs) * len(weights)
    with StudyFile.open(
        out, "guidance", arguments, to_toml(config), names=labels, nfe=weights
    ) as study:
        done = study.done()
        x_T = None
        for j, w in enumerate(weights):
            todo = [i for i in range(len(specs)) if not done[i, j]]
            skipped += len(specs) - len(todo)
            if not todo:
                continue
            if x_T is None:
                # one prior draw for every w and every sampler
                prior = torch.Generator(device=dev).manual_seed(seed * 1009)
                x_T = sde.prior_sample(
                    (n, *shape), generator=prior, dtype=torch.float32, device=dev
                )
            score = guide(model, c, w).to(dev)
            for i in todo:
                what = f"{labels[i]} at w = {w:g}"
                _tick(progress, (ran + skipped) / total, what)
                sampler = sampler_for(i, score)
                # the same noise at every w: the curves along w differ by the guidance only
                noise = torch.Generator(device=dev).manual_seed(seed * 1009 + 7919 * (i + 1))
                timed = _timed_samples(sampler, x_T, noise, cancel, normalizer)
                if timed is None:
                    return _finish(study, out, "cancelled", ran, skipped, started, warnings)
                x, seconds = timed
                values: dict[str, float] = {"seconds": seconds}
                if bool(torch.isfinite(x).all()):
                    if w not in grids:
                        grids[w] = tilted_grid(mixture, c, w)
                    values.update(_measures(x, grids[w], conditional, seed, j))
                else:
                    warnings.append(f"{what}: samples not finite; its measurements are left NaN")
                steps = -1 if sampler.n_steps is None else int(sampler.n_steps)
                _write_entry(study, out, i, j, values, sampler, steps, x)
                ran += 1
        _tick(progress, 1.0, "done")
        return _finish(study, out, "done", ran, skipped, started, warnings)


def _measures(
    x: torch.Tensor, tilted: TiltedGrid, conditional: TiltedGrid, seed: int, j: int
) -> dict[str, float]:
    """The study's numbers for samples ``x`` (data units) at the j-th w. The tilted target's
    draws are seeded by j (each w has its own target, and every sampler at that w meets the
    same draws); p(x|c)'s by the seed alone (one target, the same draws at every w)."""
    to_tilted = guidance_gap(x, tilted, seed=seed + 3 + 17 * j, repeats=FLOOR_REPEATS)
    to_conditional = guidance_gap(x, conditional, seed=seed + 2, repeats=FLOOR_REPEATS)
    return {
        "log_density_gap": to_tilted["log_density_gap"],
        "log_density_gap_floor_std": to_tilted["log_density_gap_floor"][1],
        "sw": to_tilted["sw"],
        "sw_floor": to_tilted["sw_floor"][0],
        "sw_floor_std": to_tilted["sw_floor"][1],
        "conditional_log_density_gap": to_conditional["log_density_gap"],
        "conditional_log_density_gap_floor_std": to_conditional["log_density_gap_floor"][1],
        "sw_conditional": to_conditional["sw"],
        "sw_conditional_floor": to_conditional["sw_floor"][0],
        "sw_conditional_floor_std": to_conditional["sw_floor"][1],
    }
