"""Running a sampler: the prior draw, the fast path, and chunks of the batch in lockstep."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from workbench.core.samplers.base import Sampler, SamplerStep, ScoreFn
from workbench.errors import ConfigError

__all__ = ["sample", "auto_sample_chunk"]


def sample(
    sampler: Sampler,
    n: int,
    sample_shape: Sequence[int],
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    chunk_size: int | None = None,
    *,
    fast_path: str = "off",
    precision: str = "fp32",
) -> Iterator[SamplerStep]:
    """Draw x_T ~ p_T (``sde.prior_sample``) for ``n`` samples and run ``sampler`` on it.

    ``fast_path`` (:data:`workbench.core.fast.FAST_PATHS`; ``auto``: CUDA graphs on CUDA, on the
    CPU the MLP's layers fused by oneDNN (:mod:`workbench.core.cpu_fused`), plain for any other
    model) and ``precision`` (``bf16``: the network in bfloat16 with fp32 accumulation, as
    under autocast, and natively on the CPU's fused path; the states and the update stay in
    ``dtype``) change how the score network is evaluated, not the maths: with fp32 the
    samples equal the plain path's to float rounding (same seed, same noise).

    With ``chunk_size`` < n the batch is split into chunks that advance in lockstep, one step
    of each chunk in turn, and each row is yielded concatenated: the score model sees at most
    ``chunk_size`` samples at a time (so peak activation memory, the large part on a GPU,
    scales with the chunk), while the states of all n samples stay in memory (n x dim, needed
    for the rows anyway). The prior draw is the same as without chunks; the later noise is
    drawn chunk by chunk, so the samples differ from an unchunked run (same seed, same result).
    Fixed-grid samplers give rows that line up exactly. An adaptive sampler (``ode`` with
    ``rk45``) chooses different steps per chunk: chunks are then run one after another and
    only two rows come out, step 0 (the prior) and the final samples (its step is the largest
    step count of the chunks). ``sampler.nfe`` is then the largest count among the chunks.
    ``chunk_size = 0`` chooses the chunk from the device's free memory
    (:func:`workbench.core.fast.auto_chunk_size`): no chunks where everything fits.
    """
    from workbench.core import fast  # fast imports nothing of ours but errors; keep it lazy

    shape = (int(n), *(int(d) for d in sample_shape))
    dev = torch.device(device) if device is not None else torch.device("cpu")
    path = fast.resolve_fast_path(fast_path, dev, "sample.fast_path")
    if chunk_size is not None and chunk_size < 0:
        raise ConfigError("chunk_size", f"must be >= 0 (0: automatic), got {chunk_size!r}")
    if chunk_size == 0:
        chunk_size = auto_sample_chunk(sampler.score_model, n, shape[1:], dev, dtype)
    x_T = sampler.sde.prior_sample(shape, generator=generator, dtype=dtype, device=device)
    fast.autocast(dev, precision)  # checks the name
    scorer: nn.Module | ScoreFn | None = None
    if fast_path == "auto" and path == "off" and dev.type == "cpu":
        # auto on the CPU: the MLP's layers as oneDNN matmuls with bias and activation fused
        # (fp32: equal to the plain forward to float32 round-off; bf16: autocast's numerics);
        # any other model runs plainly (bf16: under autocast)
        from workbench.core.cpu_fused import fuse_for_cpu

        fused, _why_not = fuse_for_cpu(sampler.score_model, precision)
        scorer = fused if fused is not sampler.score_model else None
    if scorer is None and (path != "off" or precision != "fp32"):
        # under auto, a model that cannot be captured (one that reads values back) runs plainly
        scorer = fast.FastScore(
            sampler.score_model, path, precision, dev, fallback=fast_path == "auto"
        )
    if scorer is not None:
        runner = sampler.with_score_model(scorer)
        for row in _run_chunks(runner, x_T, n, generator, chunk_size):
            sampler.nfe = runner.nfe
            yield row
        sampler.nfe = runner.nfe
        return
    yield from _run_chunks(sampler, x_T, n, generator, chunk_size)


def auto_sample_chunk(
    score_model: nn.Module | ScoreFn,
    n: int,
    sample_shape: Sequence[int],
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> int:
    """How many samples one network call may take on ``device``: its free memory against the
    model's measured activation bytes per sample, beside the states of all ``n`` samples (the
    state, the noise, the mean and the next state: four copies of each)."""
    from workbench.core import fast

    shape = tuple(int(d) for d in sample_shape)
    per_sample = fast.activation_bytes_per_sample(score_model, shape, device, dtype)
    state = 4 * math.prod(shape) * torch.finfo(dtype).bits // 8
    return fast.auto_chunk_size(
        n, per_sample, fast.available_memory(device), state_bytes_per_sample=state
    )


def _run_chunks(
    sampler: Sampler,
    x_T: Tensor,
    n: int,
    generator: torch.Generator | None,
    chunk_size: int | None,
) -> Iterator[SamplerStep]:
    if chunk_size is None or chunk_size >= n:
        yield from sampler.run(x_T, generator)
        return
    slices = [slice(i, min(i + chunk_size, n)) for i in range(0, n, chunk_size)]
    chunks = [sampler._for_chunk(sl, x_T.ndim) for sl in slices]
    runs = [c.run(x_T[sl], generator) for c, sl in zip(chunks, slices, strict=True)]
    if sampler.adaptive:
        firsts: list[SamplerStep] = []
        lasts: list[SamplerStep] = []
        for run in runs:
            rows = iter(run)
            first = last = next(rows)
            for last in rows:  # noqa: B007
                pass
            firsts.append(first)
            lasts.append(last)
            sampler.nfe = max(c.nfe for c in chunks)
        yield SamplerStep(0, firsts[0].t, torch.cat([r.x for r in firsts]))
        step = max(r.step for r in lasts)
        yield SamplerStep(step, lasts[0].t, torch.cat([r.x for r in lasts]))
        return
    for same_step in zip(*runs, strict=True):
        sampler.nfe = max(c.nfe for c in chunks)
        yield SamplerStep(same_step[0].step, same_step[0].t, torch.cat([r.x for r in same_step]))
